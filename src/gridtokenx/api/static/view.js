// What the explorer and household pages share: reading this node's API, building DOM
// nodes (never HTML strings: a record may hold hostile text), and turning the ledger's
// integers (Wh, satang, milli-satang) into kWh and THB, with times in the chain's local
// zone (Asia/Bangkok unless the chain's parameters say otherwise).
// The fetch helper is api.js's (a classic script index.html loads first), shared with
// the dashboard.
export const { API, NotFound, get } = window.GridTokenXApi;
const chain = { offset: 25200, loaded: null };

/** The answer, or `fallback` when the record is not there (404). */
export async function maybe(path, params = {}, fallback = null) {
  try { return await get(path, params); } catch (err) {
    if (err instanceof NotFound) return fallback;
    throw err;
  }
}

/** The chain's parameters, read once: the local offset, the interval, the tariffs. */
export async function params() {
  if (!chain.loaded) {
    chain.loaded = get("/chain").then((c) => { chain.offset = c.params.tariffs.utc_offset_seconds; return c.params; });
  }
  return chain.loaded;
}

// --- formatting ----------------------------------------------------------------------------
const trim = (n, digits) => String(Number(n.toFixed(digits)));
export const kwh = (wh) => trim(wh / 1000, 3);
export const thb = (satang) => (satang / 100).toFixed(2);
export const rate = (msatPerKwh) => (msatPerKwh / 100000).toFixed(2); // THB/kWh
export const local = (t) => new Date((t + chain.offset) * 1000).toISOString();
export const when = (t) => `${local(t).slice(0, 10)} ${local(t).slice(11, 19)}`;
export const clock = (t) => local(t).slice(11, 16);
export const short = (text) => (text && text.length > 16 ? `${text.slice(0, 9)}…${text.slice(-4)}` : text || "–");

// --- DOM -----------------------------------------------------------------------------------
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null) continue;
    if (k === "class") node.className = v; else node.setAttribute(k, v);
  }
  for (const c of children) {
    if (c !== null && c !== undefined) node.append(c instanceof Node ? c : String(c));
  }
  return node;
}

export const link = (href, label, attrs = {}) => el("a", { href, ...attrs }, label);
export const addressLink = (addr, label) => (addr
  ? link(`#/address/${addr}`, label || short(addr), { title: addr, class: "mono" }) : "–");
/** An address as a link, labelled with its name (participant or authority) when known. */
export const namedLink = (addr, name) => addressLink(addr, name ? `${name} (${short(addr)})` : short(addr));
export const blockLink = (height) => link(`#/block/${height}`, height);
export const txLink = (hash) => link(`#/tx/${hash}`, short(hash), { title: hash, class: "mono" });

/** A value of a decoded record: an address or a hash becomes a link, a list is joined. */
export function value(v) {
  if (typeof v === "string" && /^gtx[a-z0-9]{20,}$/.test(v)) return addressLink(v);
  if (Array.isArray(v)) return v.length ? el("span", {}, ...v.flatMap((x, i) => (i ? [", ", value(x)] : [value(x)]))) : "–";
  if (v !== null && typeof v === "object") return el("code", {}, JSON.stringify(v));
  if (typeof v === "string" && /^[0-9a-f]{40,}$/.test(v)) return el("span", { class: "mono hash", title: v }, short(v));
  return v === null || v === undefined ? "–" : String(v);
}

/** Label/value pairs as a definition list (`id` on a value lets a test read it). */
export function facts(pairs) {
  return el("dl", { class: "facts-list" }, ...pairs.filter(Boolean).map(([label, v, attrs]) =>
    el("div", {}, el("dt", {}, label), el("dd", attrs || {}, v))));
}

/** A table inside a box that scrolls sideways on a narrow screen (the page never does),
 * with the dashboard's CSV button (tables.js downloads what the table shows). */
export function table(id, headers, rows, empty = "None.") {
  const body = rows.length ? rows
    : [el("tr", {}, el("td", { colspan: headers.length, class: "muted" }, empty))];
  const csv = el("button", { type: "button", class: "csv", "data-table": id,
    title: "Download this table as CSV" }, "CSV");
  return el("div", { class: "scroll" }, csv, el("table", { id },
    el("thead", {}, el("tr", {}, ...headers.map((h) => el("th", {}, h)))),
    el("tbody", {}, ...body)));
}

export const row = (attrs, ...cells) => el("tr", attrs, ...cells.map((c) => el("td", {}, c)));
export const section = (title, ...children) => el("section", { class: "panel" }, el("h2", {}, title), ...children);
