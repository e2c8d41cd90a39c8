"""Scenario files for `gridtokenx demo --scenario FILE`, in the manner of gsy-e's setups:
one TOML file names the day (date, season, hours, seed), who takes part (how many members,
in which zones) and whether the storyline runs, so that a demo can be rerun, shared and
compared. Every key is optional; a key the file does not set keeps the demo's default.

    name = "A hot April afternoon in Bangkok and the Northeast"
    participants = 120
    zones = ["BKK", "NEA"]
    date = 2026-04-22
    season = "hot"        # hot, cool or auto (auto: March-May is hot)
    hours = 4
    seed = 7
    storyline = true
    speed = 60            # optional: the command line's --speed wins when given

The file is read strictly (msgspec): an unknown key, a wrong type or a value out of range
is named with its key, and nothing starts.
"""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Literal

import msgspec

from gridtokenx.devnet.homes import devnet_genesis


class ScenarioError(ValueError):
    """A scenario file that cannot run, with the file and the key at fault."""


class Scenario(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    name: str = ""
    participants: int = 300
    zones: list[str] = msgspec.field(default_factory=list)
    date: datetime.date = datetime.date(2026, 4, 22)
    season: Literal["hot", "cool", "auto"] = "auto"
    hours: float = 6.0
    seed: int = 1
    storyline: bool = True
    speed: float | None = None

    @property
    def hot_season(self) -> bool | None:
        return {"hot": True, "cool": False, "auto": None}[self.season]

    def problems(self) -> list[str]:
        """What the file's values get wrong beyond their types (the demo checks the rest:
        hours, participants and speed, with the same rules as its flags)."""
        found = []
        codes = [z.code for z in devnet_genesis("scenario", 0).zones]
        if unknown := [z for z in self.zones if z not in codes]:
            found.append(f"zones: unknown {', '.join(unknown)} (known: {', '.join(codes)})")
        if len(set(self.zones)) != len(self.zones):
            found.append("zones: a zone is listed twice")
        if not 2000 <= self.date.year <= 2100:
            found.append("date: the year must be 2000 to 2100")
        return found


def load(path: Path) -> Scenario:
    """The scenario in `path`, or `ScenarioError` naming the file and what is wrong."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ScenarioError(f"{path}: cannot read it ({exc.strerror})") from None
    try:
        scenario = msgspec.toml.decode(raw, type=Scenario)
    except msgspec.ValidationError as exc:
        raise ScenarioError(f"{path}: {_readable(str(exc))}") from None
    except msgspec.DecodeError as exc:
        raise ScenarioError(f"{path}: not valid TOML: {exc}") from None
    if problems := scenario.problems():
        raise ScenarioError(f"{path}: " + "; ".join(problems))
    return scenario


def _readable(message: str) -> str:
    """msgspec says `$.hours`; a TOML file's reader knows the key as `hours`."""
    return message.replace("`$.", "`").replace(" - at `$`", "")


__all__ = ["Scenario", "ScenarioError", "load"]
