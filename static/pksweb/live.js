// Live pages: the htmx websocket extension swaps the HTML fragments the server
// sends. This glue adds the one thing the extension lacks: every (re)connect asks
// for the events after the last one this page has shown, so nothing is missed.
(function () {
  "use strict";
  // Forms answer 400 with the form and its error messages: swap those in like a success.
  htmx.config.responseHandling = [
    { code: "204", swap: false },
    { code: "[23]..", swap: true },
    { code: "400", swap: true },
    { code: "[45]..", swap: false, error: true },
  ];
  htmx.createWebSocket = function (url) {
    var cursor = document.getElementById("event-cursor");
    var full = new URL(url, window.location.href);
    if (cursor && cursor.dataset.last) {
      full.searchParams.set("after", cursor.dataset.last);
    }
    return new WebSocket(full.toString());
  };

  function setStatus(state, text) {
    var badge = document.getElementById("live-status");
    if (!badge) return;
    badge.dataset.state = state;
    badge.textContent = text;
  }
  document.addEventListener("htmx:wsConnecting", function () { setStatus("connecting", "connecting…"); });
  document.addEventListener("htmx:wsOpen", function () { setStatus("live", "live"); });
  document.addEventListener("htmx:wsClose", function () { setStatus("offline", "reconnecting…"); });

  // No inline handlers (the CSP forbids them): a form with data-confirm asks first.
  // Forms that arrived over the websocket were rendered without a request, so they carry
  // no CSRF token: add the page's own before they are sent.
  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (form.dataset.confirm && !window.confirm(form.dataset.confirm)) {
      event.preventDefault();
      return;
    }
    if (form.method.toLowerCase() === "post" && !form.querySelector("input[name=csrfmiddlewaretoken]")) {
      var headers = JSON.parse(document.body.getAttribute("hx-headers") || "{}");
      if (headers["X-CSRFToken"]) {
        var input = document.createElement("input");
        input.type = "hidden";
        input.name = "csrfmiddlewaretoken";
        input.value = headers["X-CSRFToken"];
        form.appendChild(input);
      }
    }
  }, true);
})();
