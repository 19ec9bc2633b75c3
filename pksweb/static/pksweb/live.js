// Live pages: the htmx websocket extension swaps the HTML fragments the server
// sends. This glue adds what the extension lacks: every (re)connect asks for the
// events after the last one this page has shown, so nothing is missed, and a page
// that missed more than the server replays reloads.
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

  // A web process that stops (a rolling update, a pod scaled in) closes its pages' sockets with 1012, "service
  // restart", and the extension reconnects on that code (and on 1006, 1011, 1013). The first try comes at once, at
  // a random moment within a second, so that a whole process's pages do not arrive on the others at the same
  // instant; it replays what the page missed (the cursor above). Tries that fail back off, doubling up to 30 s,
  // each at a random moment below its bound.
  htmx.config.wsReconnectDelay = function (retryCount) {
    if (retryCount === 0) return 100 + Math.random() * 900;
    return Math.random() * Math.min(30000, 1000 * Math.pow(2, retryCount));
  };

  function setStatus(state, text) {
    var badge = document.getElementById("live-status");
    if (!badge || badge.dataset.state === "stale") return;
    badge.dataset.state = state;
    badge.textContent = text;
  }
  document.addEventListener("htmx:wsConnecting", function () { setStatus("connecting", "connecting…"); });
  document.addEventListener("htmx:wsOpen", function () { setStatus("live", "live"); });
  document.addEventListener("htmx:wsClose", function () { setStatus("offline", "reconnecting…"); });

  // A page away longer than the server replays is sent a "stale" badge (and its socket closed):
  // its state is too old to patch, so load it afresh. Not twice within a few seconds, though:
  // if a fresh page is already stale again, say so and leave the reload to the person.
  var RELOADED_AT = "pksweb.live.reloadedAt";
  function remembered() {
    try { return Number(window.sessionStorage.getItem(RELOADED_AT)) || 0; } catch (e) { return 0; }
  }
  document.addEventListener("htmx:wsAfterMessage", function () {
    var badge = document.getElementById("live-status");
    if (!badge || badge.dataset.state !== "stale") return;
    if (Date.now() - remembered() < 10000) {
      badge.textContent = "missed updates: reload the page";
      return;
    }
    try { window.sessionStorage.setItem(RELOADED_AT, String(Date.now())); } catch (e) { /* reload anyway */ }
    window.location.reload();
  });

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
