"""`gridtokenx demo --export DIR`: the day's summary as CSV files and PNG plots, as gsy-e
exports its results, so a day can be compared, charted elsewhere or kept.

The CSV files hold only what the ledger says about the day (`summary.csv`, `prices.csv`,
`flows.csv`, `savings.csv`): none of it depends on the speed the day was replayed at, so
two runs of one seed give identical files (the demo's process test compares them). How the
devnet carried the day (speed, finality, wall time, heights) goes to `devnet.csv` apart.

The plots use matplotlib's Agg backend (no display): prices per zone against the retail
rate, energy flows per zone, and savings per zone.
"""

from __future__ import annotations

import csv
import datetime
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Final

from gridtokenx.simulator.summary import DaySummary, ZoneFlow

BANGKOK: Final = datetime.timezone(datetime.timedelta(hours=7))
CSV_FILES: Final = ("summary.csv", "prices.csv", "flows.csv", "savings.csv")
"""The speed-independent files; `devnet.csv` is the run's own."""
PLOTS: Final = ("prices.png", "flows.png", "savings.png")


def _local(unix_time: int) -> str:
    return datetime.datetime.fromtimestamp(unix_time, BANGKOK).strftime("%Y-%m-%d %H:%M")


def figures(s: DaySummary) -> list[tuple[str, int | str]]:
    """The day's figures in integer units (Wh, satang, grams): what any replay of the same
    scenario and seed must reproduce exactly, whatever its speed. Heights, the state root
    (it holds block times and heights) and wall times are left out on purpose."""
    rows: list[tuple[str, int | str]] = [
        (name, getattr(s, name))
        for name in (
            "first_interval", "intervals", "participants", "transactions", "orders", "trades",
            "trades_settled", "intervals_settled", "settled_at_deadline", "metered_export_wh",
            "metered_import_wh", "p2p_delivered_wh", "p2p_received_wh", "losses_wh",
            "cross_zone_delivered_wh", "bought_back_wh", "shortfall_wh", "grid_import_wh",
            "renewable_received_wh", "buyer_paid_satang", "buyer_savings_satang",
            "seller_income_satang", "seller_extra_satang", "imbalance_satang",
            "utility_bills_satang", "platform_fees_satang", "wheeling_satang", "debts_satang",
            "co2_avoided_g", "grid_minted_wh", "grid_burned_wh", "grid_held_wh",
            "thb_issued_satang", "thb_redeemed_satang", "thb_held_satang",
            "transmission_reports", "distribution_reports", "latest_frequency_mhz",
            "certificates_issued", "certificates_issued_wh", "certificates_retired",
            "certificates_retired_wh", "certificates_active", "beneficiaries",
            "claimed_avoided_g", "platform_fee_bp",
        )
    ]  # fmt: skip
    for line in s.proposals:
        rows += [(f"proposal_{line.id}_status", line.status), (f"proposal_{line.id}_yes", line.yes),
                 (f"proposal_{line.id}_ballots", line.ballots)]  # fmt: skip
    c = s.markets
    if c.auctions_cleared:  # the day-ahead auction next to continuous trading
        rows += [("auctions_cleared", c.auctions_cleared),
                 ("auction_certified_welfare_satang", c.certified_satang)]  # fmt: skip
        for name, m in (("auction", c.auction), ("continuous", c.continuous)):
            rows += [(f"{name}_trades", m.trades), (f"{name}_energy_wh", m.energy_wh),
                     (f"{name}_share_permille", c.share_permille(m)),
                     (f"{name}_welfare_satang", m.welfare_satang)]  # fmt: skip
            rows += [(f"{name}_vwap_{zone}", m.vwap(zone)) for zone in sorted(m.zones)]
    return rows


def _write(path: Path, header: Sequence[str], rows: Iterable[Sequence[object]]) -> None:
    with open(path, "w", newline="") as f:
        out = csv.writer(f)
        out.writerow(header)
        out.writerows(rows)


def write_csv(s: DaySummary, directory: Path, devnet: Sequence[tuple[str, object]] = ()) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    _write(directory / "summary.csv", ("figure", "value"), figures(s))
    _write(
        directory / "prices.csv",
        ("interval_start", "local_time", "buyer_zone", "trades", "energy_wh",
         "average_satang_per_kwh", "retail_satang_per_kwh"),
        ((start, _local(start), zone, c.trades, c.energy_wh, c.average,
          s.retail_msat_per_kwh.get(start, 0) // 1000)
         for (start, zone), c in sorted(s.interval_prices.items())),
    )  # fmt: skip
    _write(
        directory / "flows.csv",
        ("interval_start", "local_time", "zone", "delivered_wh", "received_wh", "losses_wh",
         "bought_back_wh"),
        ((start, _local(start), zone, f.delivered_wh, f.received_wh, f.losses_wh,
          f.bought_back_wh) for (start, zone), f in sorted(s.zone_flows.items())),
    )  # fmt: skip
    _write(
        directory / "savings.csv",
        ("zone", "buyer_savings_satang", "seller_extra_satang"),
        [(zone, saved, extra) for zone, (saved, extra) in sorted(_savings(s).items())],
    )
    _write(directory / "devnet.csv", ("figure", "value"), devnet)


def _savings(s: DaySummary) -> dict[str, tuple[int, int]]:
    out: dict[str, tuple[int, int]] = {}
    for (_, zone), f in s.zone_flows.items():
        saved, extra = out.get(zone, (0, 0))
        out[zone] = (saved + f.buyer_savings_satang, extra + f.seller_extra_satang)
    return out


def write_plots(s: DaySummary, directory: Path) -> None:
    """The three PNG plots (matplotlib, Agg: no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    directory.mkdir(parents=True, exist_ok=True)
    starts = sorted({start for start, _ in s.zone_flows} | set(s.retail_msat_per_kwh))
    labels = [_local(t)[11:] for t in starts]
    zones = sorted({zone for _, zone in s.zone_flows})

    fig, ax = plt.subplots(figsize=(9, 4.5))
    for zone in sorted({zone for _, zone in s.interval_prices}):
        points = [
            (i, s.interval_prices[(t, zone)].average / 100)
            for i, t in enumerate(starts)
            if (t, zone) in s.interval_prices and s.interval_prices[(t, zone)].energy_wh
        ]
        if points:
            ax.plot(*zip(*points, strict=True), marker="o", label=f"P2P, buyers in {zone}")
    retail = [s.retail_msat_per_kwh.get(t, 0) / 100_000 for t in starts]
    ax.step(range(len(starts)), retail, where="mid", color="black", linestyle="--",
            label="TOU retail rate (with Ft and VAT)")  # fmt: skip
    _axes(ax, labels, "THB/kWh", "Average P2P price per buyer zone against the tariff")
    _save(fig, directory / "prices.png")

    fig, ax = plt.subplots(figsize=(9, 4.5))
    bottom = [0.0] * len(starts)
    for zone in zones:
        kwh = [s.zone_flows.get((t, zone), ZoneFlow()).delivered_wh / 1000 for t in starts]
        ax.bar(range(len(starts)), kwh, bottom=bottom, label=f"sent from {zone}")
        bottom = [a + b for a, b in zip(bottom, kwh, strict=True)]
    losses = [
        sum(s.zone_flows.get((t, z), ZoneFlow()).losses_wh for z in zones) / 1000 for t in starts
    ]
    ax.plot(range(len(starts)), losses, color="black", marker=".", label="transmission losses")
    _axes(ax, labels, "kWh", "P2P energy delivered per interval, by seller zone")
    _save(fig, directory / "flows.png")

    fig, ax = plt.subplots(figsize=(7, 4))
    per_zone = _savings(s)
    names = sorted(per_zone)
    x = range(len(names))
    ax.bar([i - 0.2 for i in x], [per_zone[z][0] / 100 for z in names], width=0.4,
           label="buyers saved against the TOU rate")  # fmt: skip
    ax.bar([i + 0.2 for i in x], [per_zone[z][1] / 100 for z in names], width=0.4,
           label="sellers earned above the buy-back rate")  # fmt: skip
    _axes(ax, names, "THB", "Savings per zone over the day")
    _save(fig, directory / "savings.png")


def _axes(ax: object, labels: Sequence[str], unit: str, title: str) -> None:
    from matplotlib.axes import Axes

    assert isinstance(ax, Axes)
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right", fontsize=8)
    ax.set_ylabel(unit)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)


def _save(fig: object, path: Path) -> None:
    from matplotlib import pyplot as plt
    from matplotlib.figure import Figure

    assert isinstance(fig, Figure)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def export(s: DaySummary, directory: Path, devnet: Sequence[tuple[str, object]] = ()) -> None:
    write_csv(s, directory, devnet)
    write_plots(s, directory)


__all__ = ["CSV_FILES", "PLOTS", "export", "figures", "write_csv", "write_plots"]
