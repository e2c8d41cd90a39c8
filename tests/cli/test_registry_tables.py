"""The registry's tables read like the market's (cli/registry_views.py): `query account`
shows the participant, its meters and licences with names, Bangkok times and kW/kWh;
`query licences` names each holder; `query validators` names each validator by its
authority with its share of the power. Against a real one-validator node
(tests/api/test_api_harness.py); `--json` keeps the API's records."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta, timezone

import pytest

from gridtokenx.cli.registry_views import licence_status
from tests.api.test_api_harness import T0, running_cast, text
from tests.cli.test_cli_client import Live
from tests.cli.test_cli_market import wide

pytestmark = pytest.mark.process
ICT = timezone(timedelta(hours=7))


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    with running_cast(tmp_path_factory.mktemp("registry-tables")) as (node, api, cast):
        yield Live(node, api, cast, tmp_path_factory.mktemp("keys"))


def bangkok(unix: int) -> str:
    return datetime.fromtimestamp(unix, ICT).strftime("%Y-%m-%d %H:%M:%S")


def row(shown: str, *needles: str) -> str:
    """The one table line holding every needle."""
    found = [line for line in shown.splitlines() if all(n in line for n in needles)]
    assert len(found) == 1, (needles, shown)
    return found[0]


def cells(line: str) -> list[str]:
    return [c.strip() for c in line.replace("┃", "│").split("│")[1:-1]]


def test_account_shows_its_participant_and_meters_readably(live: Live) -> None:
    home = text(live.cast.home)
    data = live.query("account", home)
    meter = data["meters"][0]  # --json: the API's record, unchanged
    assert meter["rated_capacity_w"] == 5000 and meter["last_interval"] < 0
    shown = wide(live, "account", home)
    assert "Somchai" in row(shown, "name")
    assert row(shown, "kind", "household")
    assert cells(row(shown, "registered by"))[1] == data["participant"]["registered_by"] == "MEA"
    registered = data["participant"]["registered_at"]
    assert f"{bangkok(registered)} Bangkok" in row(shown, "│ registered    │")
    assert "gtx" in shown and str(registered) not in shown  # no unix seconds
    header = cells(row(shown, "rated kW"))
    assert header[:4] == ["meter", "kind", "zone", "rated kW"]
    line = cells(row(shown, text(live.cast.meter)[:8], "solar"))
    assert line[1:4] == ["solar", "BKK", "5"]  # 5,000 W as kW
    assert line[4] == bangkok(meter["registered_at"]) and line[5] == "none yet"
    assert line[6:] == ["0.000", "0.000"]
    assert "licences" in shown and "(none)" in shown  # a household holds none


def test_account_and_licences_show_a_licence_by_status_and_bangkok_times(live: Live) -> None:
    custodian = text(live.cast.custodian)
    [licence] = live.query("account", custodian)["licences"]
    shown = wide(live, "account", custodian)
    line = cells(row(shown, "custodian", "valid"))
    assert line == ["custodian", "valid", bangkok(licence["granted_at"]),
                    bangkok(licence["expires_at"]), "-"]  # fmt: skip
    assert licence["expires_at"] == T0 + 365 * 86_400
    listing = wide(live, "licences")
    held = cells(row(listing, "Siam Custody gtx"))
    assert held[1:3] == ["custodian", "valid"] and held[4] == bangkok(licence["expires_at"])
    assert live.query("licences")["items"][0]["holder"] == custodian  # --json unchanged


def test_licence_status_reads_revoked_before_expired() -> None:
    base = {"valid": False, "granted_at": T0, "expires_at": T0 + 10}
    assert licence_status({**base, "revoked_at": T0 + 5}) == "revoked"
    assert licence_status({**base, "revoked_at": 0}) == "expired"
    assert licence_status({**base, "valid": True, "revoked_at": 0}) == "valid"


def test_validators_are_named_with_their_share(live: Live) -> None:
    data = live.query("validators")
    [egat] = data["members"]
    assert egat["authority"] == "EGAT"  # --json: the API's record
    shown = wide(live, "validators")
    assert "validators at height" in shown  # the height may move on between the two reads
    line = cells(row(shown, "EGAT gtx"))
    assert line[1:5] == [f"{egat['power']:,}", "100", "active",
                         f"{egat['accountable_from']:,}"]  # fmt: skip
    assert f"power signing the next block: {data['total_power']:,}" in shown
