"""The command line's one units module: quantities and times in, exact decimals out.

The ledger counts whole Wh, satang, W, basis points and unix seconds. On the command line an
amount always carries its unit (`1.5kWh`, `1500Wh`, `12.50THB`, `450satang/kWh`): a bare
number could mean a unit or a thousand of them, so it is refused (only `0` needs no unit).
Parsing is exact (`fractions.Fraction`): `1.0005kWh` is refused because it is not whole Wh,
never rounded. Times are unix seconds or ISO 8601 with an explicit offset, since a naive
local time means something different on every machine.

Formatting is integer arithmetic too: `kwh(1500)` is "1.5" and `thb(150)` "1.50" for any
size, where a float would round a large balance; nothing here formats a float.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone
from fractions import Fraction
from typing import Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from gridtokenx.cli.errors import BadInput

U64_MAX: Final = 2**63 - 1  # the ledger's amounts and times are below this
_QUANTITY: Final = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*([A-Za-z/%]+)\s*$")
ENERGY_UNITS: Final = {"wh": 1, "kwh": 1_000, "mwh": 1_000_000, "grid": 1_000}
MONEY_UNITS: Final = {"satang": 1, "thb": 100, "baht": 100}
PRICE_UNITS: Final = {"satang/kwh": 1, "thb/kwh": 100, "baht/kwh": 100}
POWER_UNITS: Final = {"w": 1, "kw": 1_000, "mw": 1_000_000}
LOSS_UNITS: Final = {"bp": 1, "%": 100}


# --- parsing --------------------------------------------------------------------------------
def _quantity(text: str, units: dict[str, int], base: str, example: str) -> int:
    """An integer count of `base` units from a number and an explicit unit, exactly."""
    if text.strip() == "0":
        return 0
    found = _QUANTITY.match(text) if len(text) <= 40 else None
    if found is None or found.group(2).lower() not in units:
        names = ", ".join(units)
        raise BadInput(f"{text!r}: expected a number with a unit ({names}), e.g. {example}")
    value = Fraction(found.group(1)) * units[found.group(2).lower()]
    if value.denominator != 1:
        raise BadInput(f"{text!r} is not a whole number of {base}")
    if value > U64_MAX:
        raise BadInput(f"{text!r} is too large (at most {U64_MAX} {base})")
    return int(value)


def energy_wh(text: str) -> int:
    return _quantity(text, ENERGY_UNITS, "Wh", "1.5kWh or 1500Wh")


def money_satang(text: str) -> int:
    return _quantity(text, MONEY_UNITS, "satang", "12.50THB or 1250satang")


def price_satang_per_kwh(text: str) -> int:
    return _quantity(text, PRICE_UNITS, "satang/kWh", "4.5THB/kWh or 450satang/kWh")


def power_w(text: str) -> int:
    return _quantity(text, POWER_UNITS, "W", "5kW or 5000W")


def loss_bp(text: str) -> int:
    value = _quantity(text, LOSS_UNITS, "basis points", "2.5% or 250bp")
    if value >= 10_000:
        raise BadInput(f"{text!r}: a loss must be below 100%")
    return value


def unix_time(text: str) -> int:
    """Unix seconds, or ISO 8601 with an offset (`2026-01-01T08:00+07:00`, `...Z`)."""
    if text.isdigit() and len(text) <= 19:
        return _u64(int(text), text)
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise BadInput(f"{text!r}: expected unix seconds or ISO 8601 time") from None
    if when.tzinfo is None:
        raise BadInput(f"{text!r} has no UTC offset: add one, e.g. {text}+07:00 for Bangkok")
    if when.microsecond:
        raise BadInput(f"{text!r}: times are whole seconds")
    return _u64(int(when.timestamp()), text)


def local_date(text: str, what: str) -> int:
    """A local date as YYYYMMDD, given as YYYYMMDD or YYYY-MM-DD."""
    digits = text.replace("-", "") if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text) else text
    try:
        if not re.fullmatch(r"\d{8}", digits):
            raise ValueError
        datetime(int(digits[:4]), int(digits[4:6]), int(digits[6:]))
    except ValueError:
        raise BadInput(f"{what} {text!r}: expected a date YYYYMMDD or YYYY-MM-DD") from None
    return int(digits)


def count(text: str, what: str) -> int:
    """A non-negative integer in the ledger's range: an id, a height, kW, mHz."""
    if not text.isdigit() or len(text) > 19:
        raise BadInput(f"{what} {text!r} must be a non-negative integer")
    return _u64(int(text), text)


def _u64(value: int, text: str) -> int:
    if not 0 <= value <= U64_MAX:
        raise BadInput(f"{text!r} is out of range (0 to {U64_MAX})")
    return value


# --- formatting -----------------------------------------------------------------------------
def decimal(value: int, places: int, *, trim: bool = True, group: bool = True) -> str:
    """`value` counted in 10**-places units as exact decimal text: (1500, 3) is "1.5", or
    "1.500" untrimmed; thousands separated unless `group` is off."""
    whole, part = divmod(abs(value), 10**places)
    text = f"{whole:,}" if group else str(whole)
    if places:
        text += f".{part:0{places}d}"
        if trim:
            text = text.rstrip("0").rstrip(".")
    return ("-" if value < 0 else "") + text


def kwh(wh: int, *, trim: bool = True) -> str:
    """Wh as kWh: 1500 is "1.5" (or "1.500" in a table's fixed column)."""
    return decimal(wh, 3, trim=trim)


def mwh(wh: int) -> str:
    return decimal(wh, 6)


def thb(satang: int) -> str:
    """Satang as baht, always with its two places: 150 is "1.50"."""
    return decimal(satang, 2, trim=False)


def value_thb(wh: int, satang_per_kwh: int) -> str:
    """The THB value of energy at a price, exact: 1234 Wh at 345 satang/kWh is "4.2573"
    (more than two places only where the value is not whole satang)."""
    whole, _, part = decimal(wh * satang_per_kwh, 5).partition(".")
    return f"{whole}.{part:0<2}"


def kg(grams: int) -> str:
    return decimal(grams, 3)


def percent(basis_points: int) -> str:
    return decimal(basis_points, 2)


def hz(millihertz: int) -> str:
    return decimal(millihertz, 3)


def seconds(nanoseconds: int, places: int = 2) -> str:
    """A duration measured in ns, rounded half up to `places` decimals of a second."""
    unit = 10 ** (9 - places)
    return decimal((nanoseconds + unit // 2) // unit, places, trim=False, group=False)


# --- local times ----------------------------------------------------------------------------
def _bangkok() -> timezone | ZoneInfo:
    """Asia/Bangkok from the system's tz database; its fixed +07:00 (no daylight saving
    since 1920) where the database is missing, so output never depends on the machine."""
    try:
        return ZoneInfo("Asia/Bangkok")
    except ZoneInfoNotFoundError:
        return timezone(timedelta(hours=7), "+07")


BANGKOK: Final = _bangkok()


def _local(unix: int) -> datetime:
    return datetime.fromtimestamp(unix, UTC).astimezone(BANGKOK)


def local_time(unix: int) -> str:
    """Unix seconds as Bangkok wall time, `2026-01-01 10:15:03`; the ledger's clock is
    UTC, the market's days and tariffs are local."""
    return _local(unix).strftime("%Y-%m-%d %H:%M:%S")


def local_minute(unix: int) -> str:
    """An interval start as `2026-01-01 10:00` (Bangkok): the same instant as the unix
    seconds or ISO time the commands take. Its end is not shown, as the interval's length
    is a governed parameter."""
    return _local(unix).strftime("%Y-%m-%d %H:%M")
