// Reading this node's public API (/api/v1), once for every page: the dashboard (a classic
// script) calls GridTokenXApi.get, the explorer and household pages (modules) through
// view.js. It is a classic script that index.html loads before both, so sharing it needs
// no build step, and it runs under the page's strict CSP (script-src 'self'). A refusal
// throws the API's code and message; a 404 throws NotFound, so a page can say "no such
// block" where another error is shown as one.
"use strict";
window.GridTokenXApi = (() => {
  const API = "/api/v1";

  class NotFound extends Error {}

  async function get(path, params = {}) {
    const url = new URL(API + path, location.origin);
    for (const [k, v] of Object.entries(params)) {
      if (v !== null && v !== undefined) url.searchParams.set(k, v);
    }
    const response = await fetch(url, { cache: "no-store" });
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
