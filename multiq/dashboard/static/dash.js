// The dashboard's live parts, without any library: confirmations of dangerous buttons,
// and the overview's throughput chart (an SVG polyline) and counters, refreshed from
// /api/overview every two seconds. Text goes in with textContent only, never as markup.
"use strict";
(function () {
  var SVG = "http://www.w3.org/2000/svg";

  function confirmations() {
    document.querySelectorAll("form[data-confirm]").forEach(function (form) {
      form.addEventListener("submit", function (event) {
        if (!window.confirm(form.getAttribute("data-confirm"))) { event.preventDefault(); }
      });
    });
  }

  function seconds(value) {
    if (value === null || value === undefined) { return "-"; }
    return value < 1 ? (value * 1000).toFixed(1) + " ms" : value.toFixed(2) + " s";
  }

  function setText(id, text) {
    var node = document.getElementById(id);
    if (node) { node.textContent = String(text); }
  }

  function sum(values) { return values.reduce(function (a, b) { return a + b; }, 0); }

  function line(svg, values, top, cls) {
    var width = 900, height = 200, n = values.length, points = [];
    for (var i = 0; i < n; i++) {
      var x = n > 1 ? (i * width) / (n - 1) : 0;
      var y = height - 4 - ((height - 8) * values[i]) / top;
      points.push(x.toFixed(1) + "," + y.toFixed(1));
    }
    var path = document.createElementNS(SVG, "polyline");
    path.setAttribute("points", points.join(" "));
    path.setAttribute("class", cls);
    svg.appendChild(path);
  }

  function draw(svg, tp) {
    while (svg.firstChild) { svg.removeChild(svg.firstChild); }
    var top = Math.max(1, Math.max.apply(null, tp.succeeded.concat(tp.failed)));
    var label = document.createElementNS(SVG, "text");
    label.setAttribute("x", "4"); label.setAttribute("y", "14");
    label.textContent = "max " + top + "/s";
    svg.appendChild(label);
    line(svg, tp.succeeded, top, "ok");
    line(svg, tp.failed, top, "fail");
    svg.setAttribute("data-total", String(sum(tp.succeeded) + sum(tp.failed)));
  }

  function refresh(svg, url) {
    fetch(url, {credentials: "same-origin", headers: {"Accept": "application/json"}})
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (snap) {
        if (!snap) { return; }
        var tp = snap.throughput;
        draw(svg, tp);
        setText("ok-60", sum(tp.succeeded.slice(-60)));
        setText("fail-60", sum(tp.failed.slice(-60)));
        var last = tp.succeeded.length - 2;  // the second before the current one
        setText("rate-now", last >= 0 ? tp.succeeded[last] + tp.failed[last] : 0);
        var w = snap.percentiles.wait, r = snap.percentiles.runtime;
        setText("wait-pct", [w.p50, w.p90, w.p99].map(seconds).join(" / "));
        setText("run-pct", [r.p50, r.p90, r.p99].map(seconds).join(" / "));
        setText("history-count", snap.history);
        svg.setAttribute("data-updated", String(Date.now()));
      })
      .catch(function () { /* the next refresh tries again */ });
  }

  document.addEventListener("DOMContentLoaded", function () {
    confirmations();
    var svg = document.getElementById("throughput");
    if (svg) {
      var url = svg.getAttribute("data-live");
      refresh(svg, url);
      window.setInterval(function () { refresh(svg, url); }, 2000);
    }
  });
})();
