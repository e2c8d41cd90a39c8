// Reading this node's public API (/api/v1), once for every page: the dashboard (a classic
// script) calls GridTokenXApi.get, the explorer and household pages (modules) through
// view.js. It is a classic script that index.html loads before both, so sharing it needs
// no build step, and it runs under the page's strict CSP (script-src 'self'). A refusal
// throws the API's code and message; a 404 throws NotFound, so a page can say "no such
// block" where another error is shown as one. A request the network dropped (fetch itself
// rejects: the laptop changed Wi-Fi, the browser saw an address come or go) is sent again
// twice, after 0.25 s and 0.5 s, before the page is told: a refusal is an answer and is not.
"use strict";
window.GridTokenXApi = (() => {
  const API = "/api/v1";

  class NotFound extends Error {}

  const RETRY_MS = [250, 500];
  const pause = (ms) => new Promise((done) => setTimeout(done, ms));

  async function send(url) {
    for (const wait of RETRY_MS) {
      try {
        return await fetch(url, { cache: "no-store" });
      } catch (dropped) { // a TypeError: no answer came, so nothing was refused
        await pause(wait);
      }
    }
    return fetch(url, { cache: "no-store" });
  }

  async function get(path, params = {}) {
    const url = new URL(API + path, location.origin);
    for (const [k, v] of Object.entries(params)) {
      if (v !== null && v !== undefined) url.searchParams.set(k, v);
    }
    const response = await send(url);
    const body = await response.json();
    if (!response.ok) {
      const e = body.error || {};
      const message = `${e.code || response.status}: ${e.message || path}`;
      throw response.status === 404 ? new NotFound(message) : new Error(message);
    }
    return body;
  }

  return Object.freeze({ API, NotFound, get });
})();
