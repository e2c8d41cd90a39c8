// The explorer: block, transaction and address pages, reached by the header's search box
// (a height, a block or transaction hash, a gtx address) and by links, and routed by the
// URL's hash (#/block/12, #/tx/HASH, #/address/gtx..., #/household/gtx...) so every page
// can be linked to and the browser's back button works. While a page is shown the
// dashboard's own panels are hidden (body[data-view="explorer"]); "#/" goes back.
import {
  addressLink, blockLink, el, facts, get, kwh, link, maybe, namedLink, NotFound, params, row,
  section, short, table, thb, txLink, value, when,
} from "./view.js";
import { showHousehold } from "./household.js";

const TX_DETAILS = 50; // transactions of a block whose kind and sender are read

const $ = (id) => document.getElementById(id);
const TIME_FIELD = /(^|_)(interval|time|start|since|until|expires|at)(_|$)/;
/** A field's value, with a unix time also shown as local time (interval starts, expiries). */
const field = (k, v) => (TIME_FIELD.test(k) && Number.isInteger(v) && v > 1e9
  ? el("span", { title: String(v) }, when(v)) : value(v));
const eventRows = (events) => events.map((e) => row({ "data-event": e.kind }, e.kind,
  el("span", {}, ...Object.entries(e.attrs).flatMap(([k, v], i) => [i ? "; " : "", `${k} `, field(k, v)]))));

// --- block ---------------------------------------------------------------------------------
async function showBlock(id) {
  const block = await get(/^\d+$/.test(id) ? `/blocks/${id}` : `/blocks/hash/${id}`);
  const h = block.header;
  const bodies = await Promise.all(block.txs.slice(0, TX_DETAILS).map((hash) => maybe(`/txs/${hash}/body`)));
  const validators = await maybe("/validators", {}, { members: [] });
  const authority = new Map(validators.members.map((m) => [m.address, m.authority]));
  const named = (addr) => (authority.get(addr) ? `${authority.get(addr)} (${short(addr)})` : short(addr));
  return [
    el("h2", {}, `Block ${block.height}`, " ",
      block.height > 1 ? link(`#/block/${block.height - 1}`, "← older", { class: "nav" }) : "",
      " ", link(`#/block/${block.height + 1}`, "newer →", { class: "nav" })),
    section("Header", facts([
      ["height", block.height, { id: "block-height" }],
      ["hash", el("span", { class: "mono hash" }, block.hash), { id: "block-hash" }],
      ["time", `${when(h.time)} (local)`, { id: "block-time-local", "data-time": h.time }],
      ["proposer", addressLink(h.proposer, named(h.proposer)), { id: "block-proposer" }],
      ["transactions", block.tx_count, { id: "block-tx-count" }],
      ["previous", block.height > 1 ? link(`#/block/${block.height - 1}`, short(h.prev_hash)) : "genesis"],
      ["state root", value(h.state_root)], ["tx root", value(h.tx_root)],
      ["signed by", el("span", {}, ...block.signers.flatMap((s, i) => [i ? ", " : "", addressLink(s, named(s))]))],
    ])),
    section("Transactions", table("block-txs", ["#", "hash", "kind", "sender"],
      block.txs.map((hash, i) => row({ "data-tx": hash }, i, txLink(hash),
        bodies[i] ? bodies[i].kind : "…", bodies[i] ? namedLink(bodies[i].sender, bodies[i].sender_name) : "…")),
      "No transactions in this block.")),
    section("End-of-block events", table("block-events", ["event", "details"], eventRows(block.end_events),
      "None: no gate closed and no interval settled in this block.")),
  ];
}

// --- transaction ---------------------------------------------------------------------------
async function showTx(hash) {
  const t = await get(`/txs/${hash}/body`);
  const out = [el("h2", {}, "Transaction ", el("span", { class: "mono hash" }, hash))];
  const status = el("span", { class: `tx-status ${t.status}` }, t.status + (t.reason ? ` (${t.reason})` : ""));
  if (t.status !== "committed" && t.status !== "failed") return [...out, section("Status", facts([["status", status, { id: "tx-status" }]]))];
  out.push(section("Summary", facts([
    ["status", status, { id: "tx-status" }],
    ["kind", t.kind, { id: "tx-kind" }],
    ["block", blockLink(t.height), { id: "tx-block" }],
    ["position", `${t.index} in the block`],
    ["time", `${when(t.time)} (local)`],
    ["sender", addressLink(t.sender, t.sender_name ? `${t.sender_name} (${t.sender})` : t.sender),
      { id: "tx-sender", "data-address": t.sender }],
    ["nonce", t.nonce], ["fee", `${thb(t.fee)} THB`],
  ])));
  out.push(section(`Body: ${t.kind}`, table("tx-body", ["field", "value"],
    Object.entries(t.body).map(([k, v]) => row({ "data-field": k }, k, field(k, v))))));
  out.push(section("Events", table("tx-events", ["event", "details"], eventRows(t.events))));
  return out;
}

// --- address -------------------------------------------------------------------------------
async function txPage(address, before, box) {
  const page = await get(`/accounts/${address}/txs`, { limit: 25, before });
  const body = box.querySelector("tbody");
  if (before === null) body.replaceChildren();
  body.append(...page.items.map((t) => row({ "data-tx": t.hash }, blockLink(t.height), txLink(t.hash),
    t.kind, t.sender === address ? "sent" : el("span", {}, "by ", namedLink(t.sender, t.sender_name)))));
  if (!body.children.length) body.append(row({}, el("span", { class: "muted" }, "None.")));
  const more = box.querySelector("button.more");
  more.hidden = page.next === null;
  more.onclick = () => txPage(address, page.next, box);
}

async function showAddress(address) {
  const [account, who, meters, licences, orders, certs] = await Promise.all([
    maybe(`/accounts/${address}`), maybe(`/participants/${address}`), get("/meters", { owner: address }),
    get("/licences", { holder: address }), get("/orders", { account: address }),
    get("/certificates", { owner: address, limit: 20 }),
  ]);
  const meter = who ? null : await maybe(`/meters/${address}`);
  const length = (await params()).interval_seconds;
  const out = [el("h2", {}, who ? `${who.name} ` : "Address ", el("span", { class: "mono hash" }, address))];
  out.push(section("Account", facts([
    who && ["participant", `${who.name}: ${who.kind.toLowerCase()} in ${who.zone}`, { id: "addr-participant" }],
    who && ["household view", link(`#/household/${address}`, "meter, trades and bill"), { id: "addr-household" }],
    meter && ["meter of", addressLink(meter.owner, meter.owner), { id: "addr-meter-owner" }],
    ["GRID", account ? `${kwh(account.grid_wh)} kWh` : "–", { id: "addr-grid", "data-wh": account ? account.grid_wh : 0 }],
    ["THB", account ? `${thb(account.thb_satang)} THB` : "–", { id: "addr-thb", "data-satang": account ? account.thb_satang : 0 }],
    ["next nonce", account ? account.nonce : "–"],
    !account && !who && !meter && ["note", "Nothing on this chain has used this address yet."],
  ])));
  if (meters.items.length) {
    out.push(section("Meters", table("addr-meters", ["meter", "kind", "zone", "capacity kW", "last reading"],
      meters.items.map((m) => row({ "data-meter": m.address }, addressLink(m.address), m.kind.toLowerCase(),
        m.zone, kwh(m.rated_capacity_w), m.last_interval < 0 ? "none" : when(m.last_interval + length))))));
  }
  if (licences.items.length) {
    out.push(section("Licences", table("addr-licences", ["kind", "valid", "expires"],
      licences.items.map((l) => row({}, l.kind.toLowerCase(), l.valid ? "yes" : "no", when(l.expires_at))))));
  }
  out.push(section("Open orders", table("addr-orders", ["id", "side", "zone", "delivery", "kWh left", "THB/kWh"],
    orders.items.map((o) => row({ "data-order": o.id }, o.id, o.side.toLowerCase(), o.zone,
      when(o.interval_start).slice(0, 16), kwh(o.remaining_wh), thb(o.price))), "No open orders.")));
  if (certs.items.length) {
    out.push(section("Certificates held", table("addr-certificates", ["id", "source", "zone", "MWh", "status"],
      certs.items.map((c) => row({ "data-certificate-id": c.id }, c.id, c.source.toLowerCase(), c.zone,
        String(c.energy_wh / 1e6), c.retired ? "retired" : "active")))));
  }
  const txs = section("Transactions", table("addr-txs", ["block", "hash", "kind", "signed"], []),
    el("button", { type: "button", class: "more", hidden: "" }, "older"));
  out.push(txs);
  await txPage(address, null, txs);
  return out;
}

// --- routing and search --------------------------------------------------------------------
const ROUTES = [
  [/^#\/block\/(\d{1,19}|[0-9a-fA-F]{64})$/, showBlock],
  [/^#\/tx\/([0-9a-fA-F]{64})$/, showTx],
  [/^#\/address\/(gtx[a-z0-9]{20,60})$/, showAddress],
  [/^#\/household\/(gtx[a-z0-9]{20,60})(?:\?day=(\d{8}))?$/, showHousehold],
];

async function route() {
  const hash = location.hash;
  const view = $("explorer");
  if (!hash || hash === "#" || hash === "#/") {
    delete document.body.dataset.view;
    view.hidden = true;
    view.replaceChildren();
    return;
  }
  document.body.dataset.view = "explorer";
  view.hidden = false;
  delete view.dataset.route;
  const back = el("p", { class: "back" }, link("#/", "← dashboard"));
  const found = ROUTES.find(([pattern]) => pattern.test(hash));
  try {
    if (!found) throw new NotFound(`no page at ${hash}`);
    const [pattern, show] = found;
    await params();
    const parts = await show(...hash.match(pattern).slice(1));
    if (location.hash !== hash) return; // the user moved on while this page loaded
    view.replaceChildren(back, ...parts);
  } catch (err) {
    view.replaceChildren(back, el("p", { class: "error", id: "explorer-error" }, String(err.message || err)));
  }
  view.dataset.route = hash;
  window.scrollTo(0, 0);
}

/** Where a search leads: a height, a gtx address, or a 64-hex hash (a transaction's,
 * else a block's); null if it is none of these or nothing here has that hash. */
async function target(query) {
  const q = query.trim();
  if (/^\d{1,19}$/.test(q)) return `#/block/${Number(q)}`;
  if (/^gtx[a-z0-9]{20,60}$/.test(q.toLowerCase())) return `#/address/${q.toLowerCase()}`;
  if (/^[0-9a-fA-F]{64}$/.test(q)) {
    const h = q.toLowerCase();
    if (await maybe(`/txs/${h}/body`)) return `#/tx/${h}`;
    if (await maybe(`/blocks/hash/${h}`)) return `#/block/${h}`;
  }
  return null;
}

async function search(event) {
  event.preventDefault();
  const box = $("search-box");
  const message = $("search-message");
  message.textContent = "";
  try {
    const where = await target(box.value);
    if (where) location.hash = where;
    else message.textContent = "Not found: give a block height, a block or transaction hash, or a gtx… address.";
  } catch (err) {
    message.textContent = String(err.message || err);
  }
}

$("search").addEventListener("submit", search);
window.addEventListener("hashchange", route);
route();
