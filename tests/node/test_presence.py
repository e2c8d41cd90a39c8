"""Presence: which validators a node has heard from, by height."""

from __future__ import annotations

from gridtokenx.node.presence import ABSENT_AFTER, Presence

EGAT, MEA = b"e" * 20, b"m" * 20


def test_nobody_is_absent_before_the_node_could_have_heard_them() -> None:
    presence = Presence(start_height=50)
    assert not presence.absent(EGAT, 50 + ABSENT_AFTER)
    assert presence.absent(EGAT, 51 + ABSENT_AFTER)


def test_a_signed_message_makes_a_validator_present_until_it_falls_silent() -> None:
    presence = Presence(start_height=1)
    presence.heard(EGAT, 10)
    presence.heard(EGAT, 7)  # an older, late message does not move it back
    assert not presence.absent(EGAT, 10 + ABSENT_AFTER)
    assert presence.absent(EGAT, 11 + ABSENT_AFTER)
    assert presence.absent(MEA, 11 + ABSENT_AFTER)  # heard of only at the start
