// The household page (#/household/gtx...?day=YYYYMMDD): one participant's day, its meter
// readings, trades, open orders and certificates, and its bill against the TOU tariff
// interval by interval, as the node's /households route computes it from what settlement
// recorded. Every amount is shown as the API gives it, only turned into kWh and THB.
import {
  addressLink, blockLink, clock, el, facts, get, kwh, link, local, maybe, namedLink, rate, row,
  section, table, thb,
} from "./view.js";

const yyyymmdd = (iso) => iso.replaceAll("-", "");
const iso = (day) => String(day).replace(/^(\d{4})(\d{2})(\d{2})$/, "$1-$2-$3");
const money = (satang, id) => [`${thb(satang)} THB`, { id, "data-satang": satang }];
const energy = (wh, id) => [`${kwh(wh)} kWh`, { id, "data-wh": wh }];

function shiftDay(day, days) {
  const d = new Date(`${iso(day)}T00:00:00Z`);
  d.setUTCDate(d.getUTCDate() + days);
  return yyyymmdd(d.toISOString().slice(0, 10));
}

function dayPicker(address, day) {
  const input = el("input", { type: "date", id: "hh-day", value: iso(day) });
  input.addEventListener("change", () => {
    if (input.value) location.hash = `#/household/${address}?day=${yyyymmdd(input.value)}`;
  });
  return el("p", { class: "day-picker" },
    link(`#/household/${address}?day=${shiftDay(day, -1)}`, "← day before", { id: "hh-prev" }), " ",
    el("label", {}, "Day ", input), " ",
    link(`#/household/${address}?day=${shiftDay(day, 1)}`, "day after →", { id: "hh-next" }));
}

function summary(totals, account) {
  const t = totals;
  return section("The day against the tariff", facts([
    ["imported", ...energy(t.import_wh, "hh-import")],
    ["exported", ...energy(t.export_wh, "hh-export")],
    ["import at the tariff alone", ...money(t.tariff_only_satang, "hh-tariff-only")],
    ["paid the utility (TOU)", ...money(t.tou_satang, "hh-tou")],
    ["paid for P2P energy", ...money(t.p2p_paid_satang, "hh-p2p-paid")],
    ["earned selling P2P", ...money(t.p2p_earned_satang, "hh-p2p-earned")],
    ["buy-back of unsold export", ...money(t.buyback_satang, "hh-buyback")],
    ["imbalance charges", ...money(t.imbalance_satang, "hh-imbalance")],
    ["net cost of the day", ...money(t.net_satang, "hh-net")],
    ["saved on import", ...money(t.saved_satang, "hh-saved")],
    ["GRID now", account ? `${kwh(account.grid_wh)} kWh` : "–"],
    ["THB now", account ? `${thb(account.thb_satang)} THB` : "–", { id: "hh-thb" }],
  ]), el("p", { class: "muted note" }, "Import not covered by P2P energy is billed at the TOU "
    + "tariff with Ft and VAT; in intervals without trades the distributor bills it off the "
    + "chain (marked “off chain”). Saved: the import at the tariff alone less what was paid "
    + "for it (TOU bill and P2P)."));
}

function billTable(lines) {
  return section("Bill by interval", table("hh-bill",
    ["delivery", "status", "tariff THB/kWh", "import kWh", "export kWh", "bought / received kWh",
      "sold / delivered kWh", "P2P paid", "P2P earned", "TOU bill", "buy-back", "net THB"],
    lines.map((l) => row({ "data-interval": l.interval, "data-net": l.net_satang },
      clock(l.interval), l.on_chain ? l.status.toLowerCase() : "off chain", rate(l.tariff_msat_per_kwh),
      kwh(l.import_wh), kwh(l.export_wh), `${kwh(l.bought_wh)} / ${kwh(l.received_wh)}`,
      `${kwh(l.sold_wh)} / ${kwh(l.delivered_wh)}`, thb(l.p2p_paid_satang), thb(l.p2p_earned_satang),
      thb(l.tou_satang), thb(l.buyback_satang), thb(l.net_satang))),
    "No metered energy and no trades this day."));
}

export async function showHousehold(address, day) {
  const view = await get(`/households/${address}`, { day });
  const [account, orders, certs] = await Promise.all([
    maybe(`/accounts/${address}`), get("/orders", { account: address }),
    get("/certificates", { owner: address, limit: 20 }),
  ]);
  const p = view.participant;
  return [
    el("h2", { id: "hh-title" }, `${p.name}: ${p.kind.toLowerCase()} in ${p.zone} `,
      el("span", { class: "muted" }, local(view.from).slice(0, 10))),
    el("p", {}, "Address ", addressLink(address, address)),
    dayPicker(address, view.day),
    summary(view.bill.totals, account),
    billTable(view.bill.lines),
    section("Meter readings", table("hh-readings", ["meter", "interval", "import kWh", "export kWh", "GRID minted", "block"],
      view.readings.map((r) => row({ "data-interval": r.interval_start }, addressLink(r.meter),
        clock(r.interval_start), kwh(r.import_wh), kwh(r.export_wh), kwh(r.minted_wh), blockLink(r.height))),
      "No readings this day.")),
    section("Trades delivered this day", table("hh-trades", ["id", "delivery", "side", "with", "kWh", "THB/kWh", "status"],
      view.trades.map((t) => {
        const bought = t.buyer === address;
        return row({ "data-trade-id": t.id }, t.id, clock(t.interval_start), bought ? "bought" : "sold",
          bought ? namedLink(t.seller, t.seller_name) : namedLink(t.buyer, t.buyer_name),
          kwh(t.quantity_wh), thb(t.price),
          t.settled ? `settled ${kwh(t.delivered_wh)} kWh` : "matched");
      }), "No trades this day.")),
    section("Open orders", table("hh-orders", ["id", "side", "delivery", "kWh left", "THB/kWh"],
      orders.items.map((o) => row({ "data-order": o.id }, o.id, o.side.toLowerCase(),
        `${local(o.interval_start).slice(5, 10)} ${clock(o.interval_start)}`, kwh(o.remaining_wh), thb(o.price))),
      "No open orders.")),
    section("Certificates", table("hh-certificates", ["id", "source", "MWh", "status"],
      certs.items.map((c) => row({ "data-certificate-id": c.id }, c.id, c.source.toLowerCase(),
        String(c.energy_wh / 1e6), c.retired ? "retired" : "active")),
      "No certificates: every full MWh of renewable export issues one.")),
  ];
}
