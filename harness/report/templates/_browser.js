/* Sample browser. All sample text goes into the page with textContent, never parsed as HTML. */
(function () {
  "use strict";
  var dataEl = document.getElementById("sample-data");
  var list = document.getElementById("sample-list");
  if (!dataEl || !list) { return; }
  var data = JSON.parse(dataEl.textContent);
  var colors = JSON.parse(document.getElementById("model-colors").textContent);
  var PAGE = 10;
  var limit = PAGE;
  var ui = {
    task: document.getElementById("f-task"), metric: document.getElementById("f-metric"),
    a: document.getElementById("f-a"), b: document.getElementById("f-b"), q: document.getElementById("f-q"),
    reg: document.getElementById("f-reg"),
    count: document.getElementById("sample-count"), more: document.getElementById("sample-more")
  };

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) { e.className = cls; }
    if (text !== undefined && text !== null) { e.textContent = String(text); }
    return e;
  }
  function option(sel, value, label) {
    var o = el("option", null, label);
    o.value = value;
    sel.appendChild(o);
  }
  function num(v) { return typeof v === "number" && isFinite(v) ? v : null; }
  function fmt(v) {
    if (v === null) { return "–"; }
    if (Math.round(v) === v && Math.abs(v) >= 10) { return String(v); }
    var a = Math.abs(v);
    return v.toFixed(a >= 100 ? 1 : a >= 10 ? 2 : 3);
  }
  function higherIsBetter(metric) {
    var d = (data.directions || {})[metric];
    return d === undefined ? true : d;
  }
  function metricValue(item, model, metric) {
    var ans = item.answers[model];
    return ans ? num(ans.metrics[metric]) : null;
  }

  option(ui.task, "", "all tasks (" + data.items.length + ")");
  data.tasks.forEach(function (t) { option(ui.task, t, t); });
  option(ui.metric, "", "(original order)");
  data.metrics.forEach(function (m) { option(ui.metric, m, m); });
  data.models.forEach(function (m) { option(ui.a, m, m); option(ui.b, m, m); });
  ui.a.value = data.models[0] || "";
  ui.b.value = data.models[data.models.length - 1] || "";
  ui.metric.value = data.default_metric || "";

  // state from the address: #samples?task=..&metric=..&a=..&b=..&q=..
  if (location.hash.indexOf("#samples?") === 0) {
    var params = new URLSearchParams(location.hash.slice(9));
    if (params.get("reg") === "1") { ui.reg.checked = true; }
    ["task", "metric", "a", "b", "q"].forEach(function (k) {
      var val = params.get(k);
      if (val === null) { return; }
      var ctl = ui[k];
      if (ctl.tagName === "SELECT" && !Array.prototype.some.call(ctl.options, function (o) { return o.value === val; })) { return; }
      ctl.value = val;
    });
  }

  var haystacks = data.items.map(function (it) {
    var parts = [it.id, it.instruction, it.input, it.reference];
    Object.keys(it.answers).forEach(function (m) {
      var a = it.answers[m];
      parts.push(a.response);
      Object.keys(a.judge || {}).forEach(function (j) { parts.push(a.judge[j].rationale || ""); });
    });
    return parts.join("\n").toLowerCase();
  });

  function metricLine(a, keys, metric, cls) {
    var mets = el("div", cls);
    keys.forEach(function (k) {
      if (mets.childNodes.length) { mets.appendChild(document.createTextNode(" · ")); }
      var s = el("span", k === metric ? "hl" : null, k + " ");
      s.appendChild(el("b", null, fmt(num(a.metrics[k]))));
      mets.appendChild(s);
    });
    return mets;
  }

  function card(it, d, metric) {
    var art = el("article", "sample");
    art.setAttribute("data-id", it.task + "/" + it.id);
    var head = el("header");
    head.appendChild(el("span", "pill", it.task));
    head.appendChild(el("span", "sid", it.id));
    if (it.lang) { head.appendChild(el("span", "dir", it.lang)); }
    if (d !== null) {
      var badge = el("span", "dbadge " + (d > 0 ? "pos" : d < 0 ? "neg" : ""),
        metric + ": " + ui.b.value + " − " + ui.a.value + " = " + (d > 0 ? "+" : "") + fmt(d));
      head.appendChild(badge);
    }
    art.appendChild(head);

    var dl = el("dl", "inputs");
    [["Instruction", it.instruction], ["Input", it.input], ["Reference", it.reference]].forEach(function (p) {
      if (!p[1]) { return; }
      dl.appendChild(el("dt", null, p[0]));
      dl.appendChild(el("dd", null, p[1]));
    });
    art.appendChild(dl);

    var models = data.models.filter(function (m) { return it.answers[m]; });
    var grid = el("div", "answers");
    grid.style.gridTemplateColumns = "repeat(" + Math.max(1, models.length) + ", minmax(0, 1fr))";
    models.forEach(function (m) {
      var a = it.answers[m];
      var sec = el("section", "answer");
      var h = el("h4");
      var sw = el("span", "sw");
      sw.style.background = colors[m] || "#6b7280";
      h.appendChild(sw);
      h.appendChild(el("span", null, m));
      if (a.truncated) { h.appendChild(el("span", "pill warnp", "truncated")); }
      sec.appendChild(h);
      sec.appendChild(el("div", "resp", a.response));
      var keys = ((data.key_metrics || {})[it.task] || []).filter(function (k) {
        return k in a.metrics && k.indexOf("judge:") !== 0;
      });
      if (metric && metric in a.metrics && keys.indexOf(metric) < 0) { keys.unshift(metric); }
      var all = Object.keys(a.metrics).filter(function (k) { return k.indexOf("judge:") !== 0; });
      if (!keys.length) { keys = all.slice(0, 4); }
      sec.appendChild(metricLine(a, keys, metric, "mets"));
      if (all.length > keys.length) {
        var more = el("details", "allm");
        more.appendChild(el("summary", null, "all " + all.length + " metrics"));
        more.appendChild(metricLine(a, all, metric, "mets"));
        sec.appendChild(more);
      }
      Object.keys(a.judge || {}).forEach(function (j) {
        var jv = a.judge[j];
        var jd = el("div", "judge");
        jd.appendChild(el("span", "dir", j + ": "));
        jd.appendChild(el("span", "score", jv.score === null ? "missing" : fmt(num(jv.score))));
        var why = jv.score === null ? (jv.error || "") : (jv.rationale || "");
        if (why) { jd.appendChild(el("span", "why", " — " + why)); }
        sec.appendChild(jd);
      });
      grid.appendChild(sec);
    });
    art.appendChild(grid);

    if (it.pairwise && it.pairwise.length) {
      var ul = el("ul", "pairwise");
      it.pairwise.forEach(function (p) {
        var text = p.judge + " · " + p.pair + ": " + (p.winner === null ? "missing" : "winner " + p.winner);
        var why = p.winner === null ? p.error : p.rationale;
        ul.appendChild(el("li", null, why ? text + " — " + why : text));
      });
      art.appendChild(ul);
    }
    return art;
  }

  function render() {
    var task = ui.task.value, metric = ui.metric.value, a = ui.a.value, b = ui.b.value;
    var q = ui.q.value.trim().toLowerCase();
    var rows = [];
    data.items.forEach(function (it, i) {
      if (task && it.task !== task) { return; }
      if (q && haystacks[i].indexOf(q) < 0) { return; }
      var d = null;
      if (metric) {
        var va = metricValue(it, a, metric), vb = metricValue(it, b, metric);
        if (va !== null && vb !== null) { d = vb - va; }
      }
      if (ui.reg.checked) {  // B worse than A on the metric, direction-aware
        if (d === null || d === 0 || (d > 0) === higherIsBetter(metric)) { return; }
      }
      rows.push({ it: it, d: d, i: i });
    });
    if (metric) {
      rows.sort(function (x, y) {
        if (x.d === null && y.d === null) { return x.i - y.i; }
        if (x.d === null) { return 1; }
        if (y.d === null) { return -1; }
        return Math.abs(y.d) - Math.abs(x.d) || x.i - y.i;
      });
    }
    list.replaceChildren();
    rows.slice(0, limit).forEach(function (r) { list.appendChild(card(r.it, r.d, metric)); });
    var shown = Math.min(limit, rows.length);
    ui.count.textContent = "Showing " + shown + " of " + rows.length + " samples" +
      (rows.length !== data.items.length ? " (" + data.items.length + " in all)" : "") +
      (ui.reg.checked && metric ? ", only where " + b + " is worse than " + a : "") +
      (metric ? ", sorted by |" + b + " − " + a + "| on " + metric : "");
    ui.more.hidden = rows.length <= limit;
    document.body.setAttribute("data-samples-shown", String(shown));
    var p = new URLSearchParams();
    if (task) { p.set("task", task); }
    p.set("metric", metric); p.set("a", a); p.set("b", b);
    if (q) { p.set("q", ui.q.value.trim()); }
    if (ui.reg.checked) { p.set("reg", "1"); }
    if (history.replaceState && (location.hash === "" || location.hash.indexOf("#samples?") === 0)) {
      history.replaceState(null, "", "#samples?" + p.toString());
    }
  }

  ["task", "metric", "a", "b", "reg"].forEach(function (k) {
    ui[k].addEventListener("change", function () { limit = PAGE; render(); });
  });
  var timer = null;
  ui.q.addEventListener("input", function () {
    clearTimeout(timer);
    timer = setTimeout(function () { limit = PAGE; render(); }, 150);
  });
  ui.more.addEventListener("click", function () { limit += PAGE; render(); });
  render();
})();
