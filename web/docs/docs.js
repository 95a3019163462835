// Renders the service's own OpenAPI document. A file of its own, not an
// inline script: the page's Content-Security-Policy allows scripts from the
// service only.
window.addEventListener("load", function () {
  window.ui = SwaggerUIBundle({
    url: "/openapi.json",
    dom_id: "#swagger-ui",
    deepLinking: true,
  });
});
