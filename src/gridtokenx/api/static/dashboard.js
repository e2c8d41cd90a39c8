// GridTokenX node dashboard: reads this node's public API (/api/v1) and its WebSocket
// (/api/v1/ws); falls back to polling while the WebSocket is down. No build step, no
// network beyond this origin. Amounts arrive as integers (Wh, satang, msat) and are only
// turned into kWh and THB for display.
"use strict";
(() => {
  const POLL_MS = 2000; // while the WebSocket is down
  const SLOW_MS = 10000; // validators, grid, flows, supply, prices: also refreshed on events
  const MAX_TRADES = 15; // rows of the trades table, newest first (GET /trades pages the rest)
  const MAX_CERTIFICATES = 10; // latest certificates shown
  const MAX_DECIDED = 5; // recently closed proposals shown
  const MAX_ALERTS = 20; // surveillance alerts shown
  const SVG = "http://www.w3.org/2000/svg";
  // Schematic positions (not a map): roughly where each zone lies in Thailand.
  const PLACES = {
    NTH: [170, 55], NEA: [320, 120], CEN: [170, 170], WST: [55, 235],
    BKK: [195, 305], EST: [325, 285], STH: [95, 415],
  };

  const $ = (id) => document.getElementById(id);
  const S = {
    length: 900, offset: 25200, gate: 300, horizon: 86400, now: 0, height: 0,
    zone: null, interval: null, day: null, scope: "interval", zones: [], links: [],
    flows: new Map(), auctionPrices: new Map(), // zone -> the selected interval's auction price
    halted: new Set(), ws: null, booked: null, arrivals: [], trades: [], chart: null,
    chartKey: null, pollTimer: null, retryMs: 1000, timers: new Map(), proposals: [],
    names: new Map(), // address -> registry name, or null where the registry has none
  };

  // --- formatting ----------------------------------------------------------------------
  const trim = (n, digits) => String(Number(n.toFixed(digits)));
  const kwh = (wh) => trim(wh / 1000, 3);
  const energy = (wh) => (Math.abs(wh) >= 1e6 ? `${trim(wh / 1e6, 2)} MWh` : `${kwh(wh)} kWh`);
  const thbKwh = (satang) => (satang / 100).toFixed(2);
  const thb = (satang) => `${(satang / 100).toLocaleString("en", { minimumFractionDigits: 2 })} THB`;
  const wall = (t) => new Date((t + S.offset) * 1000).toISOString(); // Bangkok wall time
  const clock = (t) => wall(t).slice(11, 16);
  const dayStart = (t) => Math.floor((t + S.offset) / 86400) * 86400 - S.offset;
  const isoDay = (t) => wall(t).slice(0, 10); // YYYY-MM-DD, the local day of t
  const fromIsoDay = (text) => Date.parse(`${text}T00:00:00Z`) / 1000 - S.offset;
  const ymd = (t) => isoDay(t).replaceAll("-", ""); // the API's YYYYMMDD
  const short = (addr) => (addr ? `${addr.slice(0, 9)}…${addr.slice(-4)}` : "–");
  const mwh = (wh) => `${trim(wh / 1e6, 3)} MWh`;
  const co2 = (g) => (g >= 1e6 ? `${trim(g / 1e6, 3)} tCO2e` : `${trim(g / 1000, 1)} kgCO2e`);
  const pct = (bp) => trim(bp / 100, 1);
  const day = (yyyymmdd) => String(yyyymmdd).replace(/^(\d{4})(\d{2})(\d{2})$/, "$1-$2-$3");

  function text(el, value) { el.textContent = value; return el; }
  function el(tag, attrs = {}, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs)) {
      if (k === "class") node.className = v; else node.setAttribute(k, v);
    }
    for (const c of children) node.append(c instanceof Node ? c : String(c));
    return node;
  }
  const link = (href, label) => el("a", { href }, label); // explorer.js routes #/...
  function svg(tag, attrs = {}, content) {
    const node = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
    if (content !== undefined) node.textContent = content;
    return node;
  }

  // --- API -----------------------------------------------------------------------------
  const { API, NotFound, get } = window.GridTokenXApi; // api.js, loaded before this script

  function later(name, fn, ms) { // one pending run per name: bursts of events cost one read
    if (S.timers.has(name)) return;
    S.timers.set(name, setTimeout(() => { S.timers.delete(name); guard(fn)(); }, ms));
  }
  function guard(fn) {
    return async (...args) => {
      try { await fn(...args); } catch (err) {
        text($("node-status"), String(err.message || err)).className = "status";
      }
    };
  }

  // --- chain facts ---------------------------------------------------------------------
  function onBlock(height, time) {
    if (height <= S.height) return;
    S.height = height;
    text($("height"), height);
    document.body.dataset.height = height;
    if (time) {
      const crossed = Math.floor(time / S.length) !== Math.floor(S.now / S.length);
      S.now = time;
      text($("block-time"), `${clock(time)} ICT`);
      if (crossed) fillIntervals();
    }
    if (S.proposals.length) renderProposals();
    S.arrivals.push(performance.now());
    if (S.arrivals.length > 11) S.arrivals.shift();
    if (S.arrivals.length > 2) {
      const span = S.arrivals[S.arrivals.length - 1] - S.arrivals[0];
      text($("finality"), `${(span / (S.arrivals.length - 1) / 1000).toFixed(2)} s`);
    }
  }

  async function refreshHealth() {
    const h = await get("/health");
    text($("peers"), h.peers);
    text($("mempool"), h.mempool_txs);
    const status = $("node-status");
    if (h.halted) text(status, "NODE HALTED: diverged from the chain").className = "status halted";
    else text(status, ""); // the node answers: an earlier read error is over
    if (h.height > S.height) onBlock(h.height, h.latest_time);
  }

  async function finalityFromHeaders() { // before the stream has seen enough blocks
    const page = await get("/blocks", { limit: 10 });
    const items = page.items;
    if (items.length > 1 && S.arrivals.length <= 2) {
      const span = items[0].header.time - items[items.length - 1].header.time;
      text($("finality"), `~${(span / (items.length - 1)).toFixed(1)} s`);
    }
  }

  async function refreshValidators() {
    const v = await get("/validators");
    const signing = new Set(v.signing_next.map((m) => m.address));
    const body = $("validators").tBodies[0];
    body.replaceChildren(...v.members.map((m) => {
      const status = m.jailed ? "jailed" : signing.has(m.address) ? "signing" : "no power";
      return el("tr", { "data-validator": m.authority || m.address },
        el("td", {}, m.authority || "–"), el("td", { title: m.address }, link(`#/address/${m.address}`, short(m.address))),
        el("td", {}, m.power.toLocaleString("en")),
        el("td", { class: m.jailed ? "jailed" : "active" }, status));
    }));
  }

  // --- selectors -----------------------------------------------------------------------
  function firstOpenInterval() {
    return (Math.floor((S.now + S.gate) / S.length) + 1) * S.length;
  }

  // The view the page opens on when its address names no interval, and the interval a
  // newly picked day opens on. The current interval is usually empty (orders are placed
  // ahead), and after a demo's day the accelerated clock runs on into an empty next day,
  // so the clock is the last resort: the delivery interval of the latest trade in the
  // zone, if one is named; else of the latest trade anywhere (its day, in the named zone);
  // only on a chain without trades the first open interval. A picked day opens on its
  // latest interval with trades into the zone, else the first open interval if it falls
  // on that day, or the day's noon. One function, so a caller that knows better has one
  // place to say so.
  async function defaultView(zone, day) {
    let latest = null; // the chain's latest trade, when the zone has none
    if (day === null) {
      [latest] = (await get("/trades", { zone, limit: 1 })).items;
      if (latest) {
        const interval = latest.interval_start;
        return { zone: zone || latest.buyer_zone, day: dayStart(interval), interval };
      }
      if (zone) [latest] = (await get("/trades", { limit: 1 })).items;
      day = dayStart(latest ? latest.interval_start : firstOpenInterval());
    }
    zone = zone || S.zones[0].code;
    const { intervals } = await get(`/prices/${zone}`, { from: day, to: day + 86400 });
    const traded = intervals.filter((r) => r.trades > 0).pop();
    const open = firstOpenInterval();
    let interval = day + 12 * 3600;
    if (traded) interval = traded.interval;
    else if (latest) interval = latest.interval_start;
    else if (open >= day && open < day + 86400) interval = open;
    return { zone, day, interval };
  }

  function fillIntervals() { // the selected day's intervals; other days through the picker
    const select = $("interval");
    const first = firstOpenInterval();
    const starts = [];
    for (let t = S.day; t < S.day + 86400; t += S.length) starts.push(t);
    select.replaceChildren(...starts.map((t) => {
      const state = t < first ? "closed" : t < S.now + S.horizon ? "open" : "not yet open";
      const option = el("option", { value: t }, `${clock(t)} (${state})`);
      option.selected = t === S.interval;
      return option;
    }));
    $("day").value = isoDay(S.day);
    $("day").max = isoDay(S.now + S.horizon); // no orders beyond the trading horizon
  }

  function fillZones() {
    const select = $("zone");
    if (!S.zone || !S.zones.some((z) => z.code === S.zone)) S.zone = S.zones[0].code;
    select.replaceChildren(...S.zones.map((z) => {
      const option = el("option", { value: z.code }, `${z.name} (${z.code})`);
      option.selected = z.code === S.zone;
      return option;
    }));
  }

  async function chooseDay(text) {
    const day = fromIsoDay(text);
    if (!Number.isFinite(day)) return;
    const view = await defaultView(S.zone, day);
    choose(view.zone, view.interval);
  }

  function setView(zone, interval) { // the selection, in the address bar as well
    S.zone = zone;
    S.interval = interval;
    S.day = dayStart(interval);
    const where = `?zone=${encodeURIComponent(zone)}&interval=${interval}${location.hash}`;
    history.replaceState(null, "", where); // the hash is kept: it names a page of its own
    document.body.dataset.selection = `${zone}-${ymd(interval)}-${clock(interval).replace(":", "")}`;
    document.body.dataset.interval = interval;
    fillZones();
    fillIntervals();
  }

  function choose(zone, interval) {
    const dayChanged = dayStart(interval) !== S.day;
    setView(zone, interval);
    subscribeBook();
    guard(refreshBook)();
    guard(refreshTrades)();
    guard(refreshPrices)();
    guard(refreshFlows)();
    guard(refreshAuction)();
    if (dayChanged) {
      guard(refreshCarbon)();
      guard(refreshCertificates)();
    }
    drawMap();
  }

  // --- order book ----------------------------------------------------------------------
  function renderBook(depth) {
    if (depth.zone !== S.zone || depth.interval !== S.interval) return;
    text($("book-title"), `${depth.zone}, delivery ${clock(depth.interval)}`);
    const most = Math.max(1, ...depth.bids.map((l) => l.quantity_wh),
      ...depth.asks.map((l) => l.quantity_wh));
    for (const side of ["bids", "asks"]) {
      const rows = depth[side].map((level) => {
        const bar = el("div", { class: "bar" });
        bar.style.width = `${Math.max(2, (100 * level.quantity_wh) / most)}%`;
        return el("tr", { "data-price": level.price, "data-quantity": level.quantity_wh },
          el("td", {}, thbKwh(level.price)), el("td", {}, kwh(level.quantity_wh)),
          el("td", {}, level.orders), el("td", {}, bar));
      });
      if (!rows.length) rows.push(el("tr", {}, el("td", { colspan: 4, class: "muted" }, "empty")));
      $(side).tBodies[0].replaceChildren(...rows);
    }
  }

  async function refreshBook() {
    renderBook(await get(`/book/${S.zone}/${S.interval}`, { levels: 15 }));
  }

  // --- trades --------------------------------------------------------------------------
  function settlement(t) { // the delivered energy only where it differs from the traded
    if (!t.settled) return "matched";
    if (t.delivered_wh === t.quantity_wh) return "settled";
    return `settled, ${kwh(t.delivered_wh)} delivered`;
  }
  function fromRecord(t) {
    return {
      id: t.id, height: t.height, interval: t.interval_start, path: t.path,
      buyer_zone: t.buyer_zone, seller_zone: t.seller_zone, quantity_wh: t.quantity_wh,
      price: t.price, status: settlement(t),
    };
  }
  function fromEvent(m) {
    const path = m.seller_zone === m.buyer_zone ? [m.buyer_zone] : [m.seller_zone, m.buyer_zone];
    return {
      id: m.trade, height: m.height, interval: m.interval, path, buyer_zone: m.buyer_zone,
      seller_zone: m.seller_zone, quantity_wh: m.quantity_wh, price: m.price, status: "matched",
    };
  }
  const wanted = (t) => (t.buyer_zone === S.zone || t.seller_zone === S.zone)
    && (S.scope === "recent" || t.interval === S.interval);

  function renderTrades(fresh) {
    const body = $("trades").tBodies[0];
    body.replaceChildren(...S.trades.map((t) => el("tr",
      { "data-trade-id": t.id, class: t.id === fresh ? "fresh" : "" },
      el("td", {}, t.id), el("td", {}, link(`#/block/${t.height}`, t.height)),
      el("td", { title: wall(t.interval).slice(0, 16) }, clock(t.interval)),
      el("td", {}, t.path.join("→")), el("td", {}, kwh(t.quantity_wh)),
      el("td", {}, thbKwh(t.price)), el("td", {}, t.status))));
    $("trades-empty").hidden = S.trades.length > 0;
    const scope = S.scope === "recent" ? "most recent" : `delivery ${clock(S.interval)}`;
    const bound = S.trades.length >= MAX_TRADES ? `, newest ${MAX_TRADES}` : "";
    text($("trades-title"), `${S.zone}, ${scope}${bound}`);
  }

  async function refreshTrades() {
    const params = { zone: S.zone, limit: MAX_TRADES };
    if (S.scope === "interval") Object.assign(params, { interval: S.interval, limit: 500 });
    const page = await get("/trades", params);
    const items = page.items.map(fromRecord);
    if (S.scope === "interval") items.reverse(); // an interval's trades come oldest first
    S.trades = items.slice(0, MAX_TRADES);
    renderTrades(null);
  }

  function onTrade(m) {
    later("market", refreshMarketViews, 800);
    const trade = fromEvent(m);
    if (!wanted(trade) || S.trades.some((t) => t.id === trade.id)) return;
    S.trades.unshift(trade);
    S.trades.length = Math.min(S.trades.length, MAX_TRADES);
    renderTrades(trade.id);
  }

  async function refreshMarketViews() {
    await Promise.all([refreshPrices(), refreshFlows(), refreshSupply()]);
  }

  // --- prices --------------------------------------------------------------------------
  async function refreshPrices() {
    const from = dayStart(S.interval);
    const data = await get(`/prices/${S.zone}`, { from, to: from + 86400 });
    const rows = data.intervals;
    const orNull = (v) => (v === null ? null : v / 100);
    const series = [
      rows.map((r) => r.interval),
      rows.map((r) => orNull(r.vwap)),
      rows.map((r) => orNull(r.low)),
      rows.map((r) => orNull(r.high)),
      rows.map((r) => r.tariff_msat_per_kwh / 100000),
      rows.map((r) => r.buyback_msat_per_kwh / 100000),
    ];
    const traded = rows.reduce((sum, r) => sum + r.trades, 0);
    text($("price-title"), `${data.zone}, ${wall(from).slice(0, 10)}: ${traded} trades`);
    document.body.dataset.pricedTrades = traded;
    drawChart(series, `${data.zone}/${from}`);
  }

  function drawChart(series, key) {
    const box = $("price-chart");
    const width = Math.max(320, box.clientWidth);
    if (S.chart && S.chartKey === key) { S.chart.setData(series); return; }
    if (S.chart) S.chart.destroy();
    S.chartKey = key;
    const offset = S.offset;
    const opts = {
      width, height: 300,
      tzDate: (ts) => { // Bangkok wall time whatever the browser's zone
        const d = new Date((ts + offset) * 1000);
        return new Date(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate(), d.getUTCHours(),
          d.getUTCMinutes());
      },
      scales: { y: { range: (u, lo, hi) => [0, Math.max(7, Math.ceil(hi || 0))] } },
      axes: [
        { values: (u, ticks) => ticks.map((t) => clock(t)) },
        { label: "THB/kWh", values: (u, vals) => vals.map((v) => v.toFixed(2)) },
      ],
      series: [
        {},
        { label: "P2P VWAP", stroke: "#1c7ed6", width: 2, spanGaps: false,
          points: { show: true, size: 6, fill: "#1c7ed6" } },
        { label: "low", stroke: "#74c0fc", width: 1, dash: [4, 4], points: { show: true, size: 3 } },
        { label: "high", stroke: "#4dabf7", width: 1, dash: [4, 4], points: { show: true, size: 3 } },
        { label: "TOU tariff", stroke: "#c92a2a", width: 2,
          paths: uPlot.paths.stepped({ align: 1 }), points: { show: false } },
        { label: "buy-back", stroke: "#2f9e44", width: 2, dash: [8, 4], points: { show: false } },
      ],
    };
    S.chart = new uPlot(opts, series, box);
  }

  // --- day-ahead auction ---------------------------------------------------------------
  // The zone's demand (bids, highest first) and supply (offers, lowest first) as step
  // curves of cumulative energy against price, and the clearing price once the validators
  // cleared it; every zone's auction price goes on the map, where congested or lossy links
  // show as prices that differ.
  function stepPath(levels, x, y) {
    let total = 0;
    const points = [];
    for (const level of levels) {
      points.push(`${x(total)},${y(level.price)}`);
      total += level.quantity_wh;
      points.push(`${x(total)},${y(level.price)}`);
    }
    return points.length ? `M${points.join(" L")}` : "";
  }

  function drawAuction(book, result) {
    const chart = $("auction-chart");
    const price = result ? result.zones.find((z) => z.zone === book.zone) : null;
    const total = (side) => side.reduce((sum, l) => sum + l.quantity_wh, 0);
    const most = Math.max(1, total(book.demand), total(book.supply));
    const prices = [...book.demand, ...book.supply].map((l) => l.price);
    const top = Math.max(100, ...prices, price ? price.price : 0,
      price && price.renewable_price ? price.renewable_price : 0) * 1.1;
    const [left, right, up, down] = [44, 410, 10, 230];
    const x = (wh) => (left + ((right - left) * wh) / most).toFixed(1);
    const y = (p) => (down - ((down - up) * p) / top).toFixed(1);
    const nodes = [
      svg("line", { x1: left, y1: down, x2: right, y2: down, class: "axis" }),
      svg("line", { x1: left, y1: up, x2: left, y2: down, class: "axis" }),
      svg("text", { x: left - 4, y: up + 8, "text-anchor": "end" }, thbKwh(top)),
      svg("text", { x: left - 4, y: down, "text-anchor": "end" }, "0"),
      svg("text", { x: right, y: down + 16, "text-anchor": "end" }, energy(most)),
      svg("path", { d: stepPath(book.demand, x, y), class: "demand" }),
      svg("path", { d: stepPath(book.supply, x, y), class: "supply" }),
    ];
    if (price) {
      nodes.push(svg("line", { x1: left, y1: y(price.price), x2: right, y2: y(price.price),
        class: "clearing", "data-price": price.price_exact }));
      nodes.push(svg("text", { x: right, y: Number(y(price.price)) - 4, "text-anchor": "end" },
        `${thbKwh(price.price)} THB/kWh`));
    }
    if (price && price.renewable_price !== undefined && price.renewable_price !== price.price) {
      const at = y(price.renewable_price);
      nodes.push(svg("line", { x1: left, y1: at, x2: right, y2: at, class: "clearing renewable",
        "data-renewable-price": price.renewable_price_exact }));
    }
    chart.replaceChildren(...nodes);
    document.body.dataset.auction = book.status;
  }

  async function refreshAuction() {
    const [zone, interval] = [S.zone, S.interval];
    const book = await get(`/auction/book/${zone}/${interval}`);
    let result = null;
    if (book.status === "CLEARED") result = await get(`/auction/results/${interval}`);
    if (zone !== S.zone || interval !== S.interval) return; // the selection moved on
    S.auctionPrices = new Map(result ? result.zones.map((z) => [z.zone, z.price]) : []);
    const gate = `gate ${isoDay(book.gate)} ${clock(book.gate)}`;
    text($("auction-title"), `${zone}, delivery ${clock(interval)}: ${book.status.toLowerCase()}, ${gate}`);
    const mine = result ? result.zones.find((z) => z.zone === zone) : null;
    let words = "No auction for this interval.";
    if (mine) {
      words = `Cleared by ${result.cleared_by} at ${thbKwh(mine.price)} THB/kWh in ${zone} `
        + `(welfare ${thb(Math.round(result.welfare_satang))}, ${result.trades.length} trades, `
        + `${result.flows.length} link flows).`;
      // Renewable-only bids pay, and renewable offers earn, the renewable price: above the
      // zone price only where renewable energy is short.
      if (mine.renewable_price !== undefined && mine.renewable_price !== mine.price) {
        words += ` Renewable energy: ${thbKwh(mine.renewable_price)} THB/kWh.`;
      }
    } else if (book.status === "CANCELLED") {
      words = "No clearing by the deadline: cancelled and refunded.";
    } else if (book.curves.length) {
      words = `${book.curves.length} curves; the validators clear it after the gate.`;
    }
    text($("auction-result"), words);
    drawAuction(book, result);
    drawMap();
  }

  // --- zones and interconnectors -------------------------------------------------------
  async function refreshGrid() {
    const grid = await get("/grid");
    S.zones = grid.zones;
    S.links = grid.interconnectors;
    S.halted = new Set(grid.zones.filter((z) => z.halted).map((z) => z.code));
    const list = $("halts");
    const halted = grid.zones.filter((z) => z.halted);
    list.replaceChildren(...(halted.length ? halted.map((z) => el("li",
      { class: "halted", "data-zone": z.code },
      `${z.name} (${z.code}) halted by ${z.halt.halted_by}: ${z.halt.reason || "no reason"}`))
      : [el("li", {}, "All zones trading: no halt in force.")]));
    drawMap();
  }

  async function refreshFlows() {
    const flows = await get(`/flows/${S.interval}`);
    S.flows = new Map(flows.interconnectors.map((f) => [`${f.zone_a}/${f.zone_b}`, f]));
    text($("flow-title"), `flows for delivery ${clock(S.interval)}`);
    drawMap();
  }

  function place(code, i, n) {
    if (PLACES[code]) return PLACES[code];
    const angle = (2 * Math.PI * i) / n; // a zone the schematic does not know: on a ring
    return [210 + 170 * Math.cos(angle), 235 + 200 * Math.sin(angle)];
  }

  // Boxes [left, top, right, bottom] and discs [x, y, r] in the diagram's units; text
  // sizes are estimated from the font size (11-12 px), close enough to keep labels apart.
  const MAP_BOX = [0, 0, 420, 470];
  const ZONE_R = 27;
  const overlaps = (p, q) => p[0] < q[2] && q[0] < p[2] && p[1] < q[3] && q[1] < p[3];
  const touches = (box, [x, y, r]) => Math.hypot(x - Math.max(box[0], Math.min(x, box[2])),
    y - Math.max(box[1], Math.min(y, box[3]))) < r;
  function zoneShapes(at) { // each zone's circle, and the name under it
    const discs = [];
    const boxes = [];
    for (const z of S.zones) {
      const [x, y] = at.get(z.code);
      const half = 3.4 * (S.halted.has(z.code) ? z.name.length + 9 : z.name.length) + 2;
      discs.push([x, y, ZONE_R + 2]); // with its outline
      boxes.push([x - half, y + 31, x + half, y + 47]);
    }
    return { discs, boxes };
  }

  function crosses(box, [a, b]) { // a line through a box, sampled every 3 units
    const steps = Math.ceil(Math.hypot(b[0] - a[0], b[1] - a[1]) / 3);
    for (let i = 0; i <= steps; i += 1) {
      const [x, y] = [a[0] + ((b[0] - a[0]) * i) / steps, a[1] + ((b[1] - a[1]) * i) / steps];
      if (x > box[0] && x < box[2] && y > box[1] && y < box[3]) return true;
    }
    return false;
  }

  // Where a flow label goes: centred beside its line, at the middle if that is free, else
  // further from the line or along it, either side; never on a zone, its name or another
  // label where any such spot is free, and off the other lines too where it can be (so a
  // label is not read as another line's).
  function labelSpot(a, b, words, taken, lines) {
    const [width, height] = [6.6 * words.length + 2, 13];
    const [dx, dy] = [b[0] - a[0], b[1] - a[1]];
    const norm = Math.hypot(dx, dy) || 1;
    const [nx, ny] = [-dy / norm, dx / norm];
    const clear = 3 + Math.abs(nx) * width / 2 + Math.abs(ny) * height / 2;
    const spots = [];
    for (const away of [0, 12, 24]) {
      for (const t of [0.5, 0.4, 0.6, 0.3, 0.7]) {
        for (const side of [1, -1]) {
          const cx = a[0] + t * dx + side * (clear + away) * nx;
          const cy = a[1] + t * dy + side * (clear + away) * ny;
          const box = [cx - width / 2, cy - height / 2, cx + width / 2, cy + height / 2];
          spots.push({ x: box[0], y: box[3] - 3, box });
        }
      }
    }
    const inside = (q) => q[0] >= MAP_BOX[0] && q[1] >= MAP_BOX[1] && q[2] <= MAP_BOX[2]
      && q[3] <= MAP_BOX[3];
    const free = (s) => inside(s.box) && !taken.discs.some((d) => touches(s.box, d))
      && !taken.boxes.some((q) => overlaps(s.box, q));
    const others = lines.filter(([p, q]) => !(p === a && q === b));
    const spot = spots.find((s) => free(s) && !others.some((l) => crosses(s.box, l)))
      || spots.find(free) || spots[0];
    taken.boxes.push(spot.box);
    return spot;
  }

  function drawMap() {
    const map = $("zone-map");
    if (!S.zones.length) return;
    const at = new Map(S.zones.map((z, i) => [z.code, place(z.code, i, S.zones.length)]));
    const nodes = [];
    const labels = []; // drawn over every line
    const taken = zoneShapes(at);
    const lines = S.links.map((l) => [at.get(l.zone_a), at.get(l.zone_b)])
      .filter(([p, q]) => p && q);
    for (const link of S.links) {
      const [a, b] = [at.get(link.zone_a), at.get(link.zone_b)];
      if (!a || !b) continue;
      const flow = S.flows.get(`${link.zone_a}/${link.zone_b}`);
      const net = flow ? flow.net_wh : 0;
      let kind = "idle";
      if (flow && flow.congested) kind = "congested";
      else if (flow && flow.utilisation_bp >= 8000) kind = "busy";
      else if (net !== 0) kind = "ok";
      const width = 2 + Math.min(6, link.capacity_kw / 150000);
      const title = svg("title", {}, `${link.zone_a}–${link.zone_b}: ${link.capacity_kw / 1000} MW, `
        + `loss ${link.loss_basis_points / 100} %` + (flow ? `, ${(flow.utilisation_bp / 100).toFixed(2)} % used` : ""));
      const line = svg("line", { x1: a[0], y1: a[1], x2: b[0], y2: b[1], class: `link ${kind}`,
        "stroke-width": width, "data-link": `${link.zone_a}-${link.zone_b}` });
      line.append(title);
      nodes.push(line);
      if (net !== 0) {
        const words = `${energy(Math.abs(net))} → ${net > 0 ? link.zone_b : link.zone_a}`;
        const spot = labelSpot(a, b, words, taken, lines);
        labels.push(svg("text", { x: spot.x.toFixed(1), y: spot.y.toFixed(1), class: "flow",
          "data-link": `${link.zone_a}-${link.zone_b}` }, words));
      }
    }
    nodes.push(...labels);
    for (const z of S.zones) {
      const [x, y] = at.get(z.code);
      const classes = ["zone", S.halted.has(z.code) ? "halted" : "", z.code === S.zone ? "selected" : ""];
      const group = svg("g", { class: classes.join(" ").trim(), "data-zone": z.code });
      group.append(svg("circle", { cx: x, cy: y, r: ZONE_R }),
        svg("text", { x, y: y + 4, class: "code" }, z.code),
        svg("text", { x, y: y + 42 }, S.halted.has(z.code) ? `${z.name} – HALTED` : z.name));
      if (S.auctionPrices.has(z.code)) { // the auction's zone price: separation shows here
        group.append(svg("text", { x, y: y - ZONE_R - 6, class: "auction-price",
          "data-zone-price": z.code }, `${thbKwh(S.auctionPrices.get(z.code))} THB`));
      }
      group.addEventListener("click", () => choose(z.code, S.interval));
      nodes.push(group);
    }
    map.replaceChildren(...nodes);
  }

  function onHalt(m) {
    const verb = m.halted ? "halted" : "resumed";
    $("halt-log").prepend(el("li", {}, `block ${m.height}: ${m.zone} ${verb} by ${m.by}`
      + (m.reason ? ` (${m.reason})` : "")));
    later("grid", refreshGrid, 300);
  }

  // --- supply and carbon ---------------------------------------------------------------
  async function refreshSupply() {
    const s = await get("/supply");
    text($("grid-outstanding"), energy(s.grid.outstanding_wh));
    text($("grid-minted"), `${energy(s.grid.minted_wh)} / ${energy(s.grid.burned_wh)}`);
    text($("thb-outstanding"), thb(s.thb.outstanding_satang));
    text($("thb-issued"), `${thb(s.thb.issued_satang)} / ${thb(s.thb.redeemed_satang)}`);
    await refreshCarbon();
  }

  async function refreshCarbon() {
    const from = dayStart(S.interval);
    const c = await get("/carbon", { from, to: from + 86400 });
    text($("traded-today"), energy(c.traded_wh));
    text($("renewable-today"), energy(c.renewable_received_wh));
    text($("co2-today"), co2(c.co2_avoided_g));
    text($("supply-day"), isoDay(from));
  }

  // --- names from the registry ----------------------------------------------------------
  async function learnNames(addresses) { // once per address and page: names rarely change
    const unknown = [...new Set(addresses)].filter((a) => a && !S.names.has(a));
    await Promise.all(unknown.map(async (a) => {
      try { S.names.set(a, (await get(`/participants/${a}`)).name || null); } catch (err) {
        S.names.set(a, null); // not a participant (a validator key, a contract, ...)
      }
    }));
  }
  function who(address) { // a name where the registry has one, the address on hover
    const name = S.names.get(address);
    return el("td", { title: address || "", class: name ? "name" : "addr" },
      link(`#/address/${address}`, name || short(address)));
  }

  // --- certificates and their carbon -----------------------------------------------------
  async function refreshCertificates() {
    const [carbon, latest] = await Promise.all([
      get("/carbon/zones", { from_day: ymd(S.day), to_day: ymd(S.day) }),
      get("/certificates", { limit: MAX_CERTIFICATES }),
    ]);
    await learnNames(latest.items.map((c) => c.owner));
    text($("cert-title"), day(carbon.from_day));
    text($("cert-issued"), mwh(carbon.issued_wh));
    text($("cert-retired"), mwh(carbon.retired_wh));
    text($("cert-co2"), co2(carbon.issued_avoided_g));
    text($("cert-co2-retired"), co2(carbon.retired_avoided_g));
    document.body.dataset.certIssuedWh = carbon.issued_wh;
    const zones = Object.entries(carbon.zones).filter(([, z]) => z.issued_wh || z.retired_wh);
    const rows = zones.map(([code, z]) => el("tr",
      { "data-zone": code, "data-issued-wh": z.issued_wh, "data-retired-wh": z.retired_wh },
      el("td", {}, code), el("td", {}, trim(z.issued_wh / 1e6, 3)),
      el("td", {}, trim(z.retired_wh / 1e6, 3)), el("td", {}, co2(z.issued_avoided_g))));
    const none = el("td", { colspan: 4, class: "muted" }, "none this day");
    if (!rows.length) rows.push(el("tr", {}, none));
    $("cert-zones").tBodies[0].replaceChildren(...rows);
    $("certificates").tBodies[0].replaceChildren(...latest.items.map((c) => el("tr",
      { "data-certificate-id": c.id, "data-status": c.retired ? "retired" : "active" },
      el("td", {}, c.id), el("td", {}, c.source.toLowerCase()), el("td", {}, c.zone),
      el("td", {}, trim(c.energy_wh / 1e6, 3)), el("td", {}, co2(c.avoided_g)),
      who(c.owner),
      el("td", { title: c.beneficiary }, c.retired ? `retired ${day(c.retire_day)}` : "active"))));
    $("certificates-empty").hidden = latest.items.length > 0;
  }

  // --- governance ----------------------------------------------------------------------
  function quorumCell(p) {
    const cast = p.yes + p.no + p.abstain;
    const met = cast * 10000 >= p.quorum_bp * p.total_weight;
    const share = p.total_weight ? Math.floor((cast * 10000) / p.total_weight) : 0;
    return el("td", { class: met ? "met" : "unmet", title: `${cast} of ${p.total_weight} voted` },
      `${pct(share)} / ${pct(p.quorum_bp)} %`);
  }
  function approvalCell(p) {
    const decided = p.yes + p.no;
    const share = decided ? Math.floor((p.yes * 10000) / decided) : 0;
    const met = p.yes > 0 && p.yes * 10000 >= p.approval_bp * decided;
    return el("td", { class: met ? "met" : "unmet", title: `${p.yes} yes of ${decided} yes + no` },
      `${pct(share)} / ${pct(p.approval_bp)} %`);
  }
  function heightCell(height) {
    const left = height - S.height;
    return el("td", { title: left > 0 ? `in ${left} blocks` : "reached" }, height);
  }

  function renderProposals() {
    const rows = S.proposals.map((p) => el("tr",
      { "data-proposal-id": p.id, "data-yes": p.yes, "data-status": p.status },
      el("td", {}, p.id), el("td", {}, p.title || "(untitled)", el("br"),
        el("span", { class: "muted kind" }, p.kind.toLowerCase().replace("_", " "))),
      el("td", {}, `${p.yes}/${p.no}/${p.abstain}`),
      quorumCell(p), approvalCell(p), heightCell(p.voting_end_height),
      p.execute_height ? heightCell(p.execute_height)
        : el("td", { class: "muted", title: "if it passes" },
          `≥${p.voting_end_height + p.timelock_heights}`)));
    $("proposals").tBodies[0].replaceChildren(...rows);
    $("proposals-empty").hidden = rows.length > 0;
  }

  async function refreshGovernance() {
    const [open, closed] = await Promise.all([
      get("/governance/proposals", { status: "active", limit: 50 }),
      get("/governance/proposals", { status: "closed", limit: MAX_DECIDED }),
    ]);
    S.proposals = open.items;
    renderProposals();
    text($("gov-title"), `${open.items.length} open`);
    $("decided").replaceChildren(...(closed.items.length ? closed.items.map((p) => el("li",
      { class: p.status, "data-proposal-id": p.id },
      `#${p.id} ${p.kind.toLowerCase().replace("_", " ")} “${p.title || "untitled"}”: `
      + `${p.status.toLowerCase()}${p.outcome ? ` (${p.outcome})` : ""}`))
      : [el("li", { class: "muted" }, "None yet.")]));
  }

  // --- surveillance --------------------------------------------------------------------
  const DETECTOR_NAMES = {
    wash_trading: "wash trading", spoofing: "spoofing", marking_the_gate: "marking the gate",
    capacity_withholding: "capacity withholding", market_power: "market power",
  };
  async function refreshSurveillance() {
    let page;
    try {
      page = await get("/surveillance/alerts", { limit: MAX_ALERTS });
    } catch (e) {
      if (!(e instanceof NotFound)) throw e;
      text($("surveillance-title"), "off on this node"); // the operator turned it off
      $("alerts").tBodies[0].replaceChildren();
      $("alerts-empty").hidden = true;
      return;
    }
    text($("surveillance-title"), `${page.total} alerts, heights ${page.followed_from}–${page.height}`);
    const rows = page.items.map((a) => el("tr",
      { "data-alert-id": a.id, "data-detector": a.detector },
      el("td", {}, `${isoDay(a.interval)} ${clock(a.interval)}`),
      el("td", {}, DETECTOR_NAMES[a.detector] || a.detector), el("td", {}, a.zone || "all"),
      el("td", {}, ...a.accounts.flatMap((who, i) => (i ? [el("br"), link(`#/address/${who}`,
        short(who))] : [link(`#/address/${who}`, short(who))]))),
      el("td", {}, `${pct(a.score)} %`), el("td", {}, a.summary),
      el("td", {}, ...a.evidence.slice(0, 3).flatMap((e, i) => {
        const label = `${e.kind}${e.id ? ` ${e.id}` : ""} @${e.height}`;
        const item = e.tx_hash ? link(`#/tx/${e.tx_hash}`, label) : label;
        return i ? [el("br"), item] : [item];
      }), a.evidence.length > 3 ? el("span", { class: "muted" }, ` +${a.evidence.length - 3}`) : "")));
    $("alerts").tBodies[0].replaceChildren(...rows);
    $("alerts-empty").hidden = rows.length > 0;
  }

  async function refreshSlow() {
    await Promise.all([refreshValidators(), refreshGrid(), refreshFlows(), refreshSupply(),
      refreshPrices(), refreshHealth(), refreshCertificates(), refreshGovernance(),
      refreshSurveillance(), refreshAuction()]);
  }

  // --- live feed -----------------------------------------------------------------------
  function setFeed(mode) {
    const feed = $("feed");
    text(feed, mode).className = `feed ${mode}`;
    document.body.dataset.feed = mode;
  }

  function send(message) {
    if (S.ws && S.ws.readyState === WebSocket.OPEN) S.ws.send(JSON.stringify(message));
  }

  function subscribeBook() {
    if (S.booked) send({ op: "unsubscribe", topic: "book", ...S.booked });
    S.booked = { zone: S.zone, interval: S.interval };
    send({ op: "subscribe", topic: "book", ...S.booked });
  }

  function onMessage(m) {
    switch (m.type) {
      case "block":
        onBlock(m.height, m.time);
        if (m.height % 5 === 0) later("health", refreshHealth, 100);
        break;
      case "trade": onTrade(m); break;
      case "book": renderBook(m); break;
      case "halt": onHalt(m); break;
      case "certificate": // a reading minted GRID too
        later("certificates", () => Promise.all([refreshCertificates(), refreshSupply()]), 300);
        break;
      case "governance": later("governance", refreshGovernance, 300); break;
      case "alert": later("surveillance", refreshSurveillance, 300); break;
      case "auction": later("auction", refreshAuction, 300); break;
      case "error": text($("node-status"), `${m.code}: ${m.message}`); break;
      default: break; // subscribed, tx, lagged (the server then closes; we reconnect)
    }
  }

  function connect() {
    const scheme = location.protocol === "https:" ? "wss://" : "ws://";
    let ws;
    try { ws = new WebSocket(`${scheme}${location.host}${API}/ws`); } catch (err) {
      startPolling();
      return;
    }
    ws.onopen = () => {
      S.ws = ws;
      S.retryMs = 1000;
      S.booked = null;
      setFeed("live");
      stopPolling();
      for (const topic of ["blocks", "trades", "halts", "certificates", "governance",
        "surveillance", "auction"]) {
        send({ op: "subscribe", topic });
      }
      subscribeBook();
      guard(refreshTrades)(); // anything missed while the feed was down
      guard(refreshCertificates)();
      guard(refreshGovernance)();
      guard(refreshSurveillance)();
    };
    ws.onmessage = (event) => onMessage(JSON.parse(event.data));
    ws.onclose = () => {
      if (S.ws === ws) S.ws = null;
      startPolling();
      setTimeout(connect, S.retryMs);
      S.retryMs = Math.min(15000, S.retryMs * 2);
    };
  }

  async function poll() {
    await Promise.all([refreshHealth(), refreshBook(), refreshTrades(), refreshCertificates(),
      refreshGovernance(), refreshSurveillance()]);
  }
  function startPolling() {
    setFeed("polling");
    if (S.pollTimer === null) S.pollTimer = setInterval(guard(poll), POLL_MS);
  }
  function stopPolling() {
    if (S.pollTimer !== null) clearInterval(S.pollTimer);
    S.pollTimer = null;
  }

  // --- start ---------------------------------------------------------------------------
  async function start() {
    const [chain, health, grid] = await Promise.all([get("/chain"), get("/health"), get("/grid")]);
    const p = chain.params;
    S.length = p.interval_seconds;
    S.offset = p.tariffs.utc_offset_seconds;
    S.gate = p.gate_closure_seconds;
    S.horizon = p.trading_horizon_seconds;
    text($("chain-id"), chain.chain_id);
    S.now = health.latest_time;
    S.zones = grid.zones;
    const query = new URLSearchParams(location.search);
    const interval = Number(query.get("interval"));
    const named = S.zones.some((z) => z.code === query.get("zone")) ? query.get("zone") : null;
    const view = Number.isInteger(interval) && interval > 0 && interval % S.length === 0
      ? { zone: named || S.zones[0].code, interval } : await defaultView(named, null);
    setView(view.zone, view.interval);
    onBlock(health.height, health.latest_time);
    $("zone").addEventListener("change", (e) => choose(e.target.value, S.interval));
    $("interval").addEventListener("change", (e) => choose(S.zone, Number(e.target.value)));
    $("day").addEventListener("change", (e) => guard(chooseDay)(e.target.value));
    $("trade-scope").addEventListener("change", (e) => {
      S.scope = e.target.value;
      guard(refreshTrades)();
    });
    new ResizeObserver(() => {
      if (S.chart) S.chart.setSize({ width: Math.max(320, $("price-chart").clientWidth), height: 300 });
    }).observe($("price-chart"));
    await Promise.all([refreshBook(), refreshTrades(), refreshSlow(), finalityFromHeaders()]);
    setInterval(guard(refreshSlow), SLOW_MS);
    connect();
    document.body.dataset.ready = "1";
  }

  guard(start)();
})();
