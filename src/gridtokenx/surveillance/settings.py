"""The ERC's knobs for market surveillance: one settings object per detector, with defaults.

Every threshold is an integer (Wh, satang/kWh, basis points, seconds, counts) so that a
detector's answer is the same on every machine. The defaults were tuned on seeded simulated
days (bench/surveillance_bench.py): each is named with the false-positive trade-off it makes
in the detector's module and in docs/surveillance.md. The ERC configures them in a TOML or
JSON document (`load`), never per node by accident: the settings are part of what an alert
is judged by, so `SurveillanceSettings.digest` is shown next to every alert list."""

from __future__ import annotations

import hashlib

import msgspec


class WashSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    min_funding_satang: int = 1_000  # a transfer at least this large links two accounts
    exclusive_share_bp: int = 8_000  # ... as does trading this share of volume with each other
    exclusive_min_trades: int = 3  # over at least this many trades
    lookback_intervals: int = 96  # the window links by trading are judged over
    min_cycle_wh: int = 1_000  # circular volume inside a linked group to raise an alert


class SpoofSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    large_order_wh: int = 20_000  # an order this large, or
    large_multiple: int = 5  # this many times the interval's median order, counts as large
    away_ticks: int = 5  # at least this far behind its side's best price when cancelled
    max_order_to_trade: int = 4  # orders per trade above which an account is layering
    min_cancelled_wh: int = 20_000  # large unfilled volume cancelled before an alert


class MarkingSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    late_seconds: int = 180  # the last minutes before gate closure
    move_bp: int = 1_000  # late trades' price this far from the earlier trades' VWAP
    min_late_wh: int = 100  # the account's late volume that can mark the price (one lot)
    min_earlier_trades: int = 3  # an earlier price needs this many trades to be a reference


class WithholdingSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    offered_bp: int = 5_000  # offered below this share of the metered export ...
    min_withheld_wh: int = 20_000  # ... by at least this much energy, or
    markup_bp: int = 5_000  # offered this far above the zone's trade price and left unsold
    min_unmet_bid_wh: int = 5_000  # the zone is short: bids left unfilled at gate closure


class MarketPowerSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    hhi_threshold: int = 2_500  # Herfindahl-Hirschman index (0-10,000) of a side's volume
    min_zone_wh: int = 10_000  # zones and intervals with less traded energy are not judged
    seller_price_index_bp: int = 7_000  # a pivotal seller's price within buy-back..bid cap
    buyer_price_index_bp: int = 3_000  # a pivotal buyer's price at or below this index


class SurveillanceSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    wash: WashSettings = WashSettings()
    spoofing: SpoofSettings = SpoofSettings()
    marking: MarkingSettings = MarkingSettings()
    withholding: WithholdingSettings = WithholdingSettings()
    market_power: MarketPowerSettings = MarketPowerSettings()

    @property
    def digest(self) -> str:
        """Names the settings alerts were raised under (first 16 hex of a SHA-256)."""
        return hashlib.sha256(msgspec.json.encode(self)).hexdigest()[:16]

    def problems(self) -> list[str]:
        """Negative thresholds make no sense; basis points above 10,000 would never fire."""
        found = []
        for group, values in msgspec.structs.asdict(self).items():
            for name, value in msgspec.structs.asdict(values).items():
                if value < 0:
                    found.append(f"{group}.{name} must not be negative")
                if (
                    name.endswith("_bp")
                    and name != "move_bp"
                    and name != "markup_bp"
                    and (value > 10_000)
                ):
                    found.append(f"{group}.{name} must be at most 10000")
        return found


def load(text: str, fmt: str = "toml") -> SurveillanceSettings:
    """Settings from a TOML or JSON document; unknown keys and bad values are refused with
    their name, so a typo never silently leaves a default in force."""
    try:
        if fmt == "toml":
            settings = msgspec.toml.decode(text.encode(), type=SurveillanceSettings)
        else:
            settings = msgspec.json.decode(text.encode(), type=SurveillanceSettings)
    except msgspec.DecodeError as exc:
        raise ValueError(f"invalid surveillance settings: {exc}") from None
    if problems := settings.problems():
        raise ValueError("invalid surveillance settings: " + "; ".join(problems))
    return settings
