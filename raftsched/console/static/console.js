// raftsched console: keeps parts of server-rendered pages current. Every page works without it.
//
//   <div data-live="URL" data-every="MS">   fetch URL (the page's live region, ?partial=1) every MS
//                                            milliseconds and swap it in; skipped while the tab is
//                                            hidden or while focus is inside the region
//   <div data-live="URL" data-once>          fetch it once (a slow part, such as the dependents search)
//   <div data-watch="URL">                   a server-sent event stream of the region's HTML (a job
//                                            following WatchJob); event "end": the job finished
//
// The HTML comes from the console's own templates, escaped there like every page.
"use strict";
(function () {
  function focusedIn(region) {
    var active = document.activeElement;
    return active && active !== document.body && region.contains(active);
  }

  function poll(region) {
    var url = region.getAttribute("data-live");
    var every = parseInt(region.getAttribute("data-every"), 10) || 1000;
    var once = region.hasAttribute("data-once");
    function later(ms) { if (!once) { window.setTimeout(tick, ms); } }
    function tick() {
      if (!once && (document.hidden || focusedIn(region))) { later(every); return; }
      fetch(url, { credentials: "same-origin", redirect: "manual", headers: { "Accept": "text/html" } })
        .then(function (response) {
          if (response.status === 401 || response.type === "opaqueredirect") {
            region.classList.add("stale");  // signed out: stop; a reload shows the sign-in page
            return;
          }
          return response.text().then(function (html) {
            region.innerHTML = html;
            region.classList.toggle("stale", !response.ok);
            later(every);
          });
        })
        .catch(function () { region.classList.add("stale"); later(2 * every); });
    }
    if (once) { tick(); } else { later(every); }
  }

  function watch(region) {
    var source = new EventSource(region.getAttribute("data-watch"));
    source.onmessage = function (event) {
      region.innerHTML = event.data;
      region.classList.remove("stale");
    };
    source.onerror = function () { region.classList.add("stale"); };  // the browser reconnects by itself
    source.addEventListener("end", function () {
      source.close();
      document.querySelectorAll("[data-hide-when-final]").forEach(function (el) { el.hidden = true; });
    });
    source.addEventListener("problem", function (event) {
      source.close();
      region.insertAdjacentHTML("afterbegin", event.data);
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-live]").forEach(poll);
    document.querySelectorAll("[data-watch]").forEach(watch);
  });
})();
