// Renders the embedded timeline: a chart with one lane per stream and the event table,
// filtered by text and stream. No network access: everything is in this file.
"use strict";
window.addEventListener("error", function (e) {
  var box = document.getElementById("error");
  box.style.display = "block";
  box.textContent = "This report failed to render: " + e.message;
  document.body.setAttribute("data-error", e.message);
});
(function () {
  var data = JSON.parse(document.getElementById("timeline-data").textContent);
  var lines = data.lines;
  var streams = ["audit", "network", "runtime"];
  var svgNS = "http://www.w3.org/2000/svg";

  function el(name, attrs, text) {
    var n = document.createElement(name);
    for (var k in attrs) n.setAttribute(k, attrs[k]);
    if (text !== undefined) n.textContent = text;
    return n;
  }
  function svg(name, attrs) {
    var n = document.createElementNS(svgNS, name);
    for (var k in attrs) n.setAttribute(k, attrs[k]);
    return n;
  }
  function clock(ms) { return new Date(ms).toISOString().replace("T", " ").slice(0, 19); }

  // The chart: x is time across the window, one lane per stream.
  var W = 1200, left = 80, right = 20, laneH = 34, top = 10;
  var from = data.window_from_ms, to = data.window_to_ms;
  var span = Math.max(1, to - from);
  var chart = svg("svg", { viewBox: "0 0 " + W + " " + (top + laneH * 3 + 30), role: "img",
                           "aria-label": "events per stream over time" });
  streams.forEach(function (s, i) {
    var y = top + i * laneH + laneH / 2;
    chart.appendChild(svg("line", { x1: left, x2: W - right, y1: y, y2: y, stroke: "#e5e7eb" }));
    var label = svg("text", { x: 8, y: y + 4, "class": "lane-label" });
    label.textContent = s;
    chart.appendChild(label);
  });
  for (var k = 0; k <= 6; k++) {
    var x = left + (W - left - right) * k / 6;
    var tick = svg("text", { x: x, y: top + laneH * 3 + 18, "class": "axis", "text-anchor": "middle" });
    tick.textContent = clock(from + span * k / 6).slice(11, 16);
    chart.appendChild(tick);
  }
  var dots = [];
  function xOf(ms) { return left + (W - left - right) * Math.min(1, Math.max(0, (ms - from) / span)); }
  lines.forEach(function (l, i) {
    var x = xOf(l.ms);
    var y = top + streams.indexOf(l.stream) * laneH + laneH / 2;
    var g = svg("g", {});
    if (l.count > 1 && l.last_ms > l.ms) {
      // A collapsed line spans its first to its last event.
      g.appendChild(svg("line", { x1: x, x2: xOf(l.last_ms), y1: y, y2: y, "class": "span " + l.stream }));
    }
    var r = Math.min(9, 4 + Math.log10(l.count));
    var d = svg("circle", { cx: x, cy: y, r: r, "class": "dot " + l.stream + (l.alerts.length ? " alerted" : "") });
    var title = svg("title", {});
    title.textContent = clock(l.ms) + "  " + l.summary;
    d.appendChild(title);
    d.addEventListener("click", function () { show(i); });
    g.appendChild(d);
    chart.appendChild(g);
    dots.push(g);
  });
  document.getElementById("chart").appendChild(chart);

  // The table.
  var body = document.getElementById("rows");
  var rows = lines.map(function (l, i) {
    var tr = el("tr", { id: "line-" + i, "class": l.alerts.length ? "alerted" : "" });
    var time = clock(l.ms);
    if (l.count > 1) time += "\n… " + clock(l.last_ms) + " (×" + l.count + ")";
    var td = el("td", { "class": "time" }, time);
    td.style.whiteSpace = "pre";
    tr.appendChild(td);
    var tag = el("td");
    tag.appendChild(el("span", { "class": "tag " + l.stream }, l.stream));
    tr.appendChild(tag);
    var what = el("td");
    what.appendChild(el("div", {}, l.summary));
    what.appendChild(el("div", { "class": "why" }, l.relation));
    l.alerts.forEach(function (a) { what.appendChild(el("div", { "class": "alert-id" }, "alert " + a)); });
    tr.appendChild(what);
    tr.appendChild(el("td", {}, l.pod || ""));
    tr.appendChild(el("td", {}, [l.src, l.dst].filter(Boolean).join(" → ")));
    tr.appendChild(el("td", { "class": "ev" }, l.evidence));
    body.appendChild(tr);
    l.haystack = [l.summary, l.relation, l.pod, l.src, l.dst, l.actor, l.target, l.evidence]
      .concat(l.alerts).join(" ").toLowerCase();
    return tr;
  });

  var search = document.getElementById("filter");
  var boxes = streams.map(function (s) { return document.getElementById("show-" + s); });
  function apply() {
    var q = search.value.trim().toLowerCase();
    var on = {};
    boxes.forEach(function (b, i) { on[streams[i]] = b.checked; });
    var shown = 0;
    lines.forEach(function (l, i) {
      var visible = on[l.stream] && (!q || l.haystack.indexOf(q) >= 0);
      rows[i].style.display = visible ? "" : "none";
      dots[i].style.display = visible ? "" : "none";
      if (visible) shown++;
    });
    document.getElementById("count").textContent = shown + " of " + lines.length + " lines";
  }
  function show(i) {
    var tr = rows[i];
    if (tr.style.display === "none") return;
    tr.scrollIntoView({ block: "center" });
    tr.classList.add("flash");
    setTimeout(function () { tr.classList.remove("flash"); }, 1200);
  }
  search.addEventListener("input", apply);
  boxes.forEach(function (b) { b.addEventListener("change", apply); });
  apply();
  document.body.setAttribute("data-rendered", String(lines.length));
})();
