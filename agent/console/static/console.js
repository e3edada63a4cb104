// Watchstander console: live incident list (server-sent events) and expiry countdowns.
// Served from the package; no inline script anywhere (Content-Security-Policy: script-src 'self').
(function () {
  "use strict";

  function live() {
    var url = document.body.getAttribute("data-events");
    var status = document.getElementById("live-status");
    if (!url || !window.EventSource) { return; }
    var source = new EventSource(url);
    source.onopen = function () { if (status) { status.textContent = "live"; status.className = "live ok"; } };
    source.onerror = function () { if (status) { status.textContent = "reconnecting…"; status.className = "live bad"; } };
    source.addEventListener("incidents", function () {
      // htmx re-fetches the rows partial (hx-trigger="incidents-changed from:body").
      document.body.dispatchEvent(new CustomEvent("incidents-changed"));
    });
  }

  function countdowns() {
    var items = document.querySelectorAll("[data-expires]");
    if (!items.length) { return; }
    var started = Date.now() / 1000;
    function tick() {
      var elapsed = Date.now() / 1000 - started;
      for (var i = 0; i < items.length; i++) {
        var el = items[i];
        var left = Math.floor(Number(el.getAttribute("data-expires")) - Number(el.getAttribute("data-now")) - elapsed);
        if (left <= 0) { el.textContent = "due"; continue; }
        var h = Math.floor(left / 3600), m = Math.floor((left % 3600) / 60), s = left % 60;
        el.textContent = h + "h " + m + "m " + s + "s";
      }
    }
    tick();
    window.setInterval(tick, 1000);
  }

  document.addEventListener("DOMContentLoaded", function () { live(); countdowns(); });
}());
