// Starts the vendored Swagger UI on this node's OpenAPI document. A file of its own,
// not an inline script, because the page's Content-Security-Policy allows only scripts
// served by this node.
"use strict";
(function () {
  const root = document.getElementById("swagger-ui");
  window.ui = SwaggerUIBundle({
    url: root.dataset.specUrl,
    dom_id: "#swagger-ui",
    deepLinking: true,
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout",
    validatorUrl: null,
  });
})();
