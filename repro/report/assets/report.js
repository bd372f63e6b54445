// The sample browser of report.html (repro/report/html.py). Plain ES5-level JavaScript, no
// dependencies. Every value from the run is shown with textContent, never parsed as markup.
(function () {
  "use strict";
  var INDEX = JSON.parse(document.getElementById("report-index").textContent).benchmarks;
  var PAGE = 25;
  var loaded = {};   // benchmark -> its data (one data file, loaded once)
  var waiting = {};  // benchmark -> callbacks until its data file has run
  var state = {data: null, page: 0, cmpPage: 0, view: "list"};
  var $ = function (id) { return document.getElementById(id); };

  function el(tag, cls, text) {
    var node = document.createElement(tag);
    if (cls) { node.className = cls; }
    if (text !== undefined && text !== null) { node.textContent = String(text); }
    return node;
  }

  function status(text) { $("status").textContent = text; }

  // ------------------------------------------------------------ loading, one benchmark at a time
  // A page opened from file:// may not fetch() the files beside it, but it may run them as scripts:
  // each data file calls reproReportLoaded(<JSON>).
  window.reproReportLoaded = function (data) {
    if (!data || typeof data.benchmark !== "string") { return; }
    loaded[data.benchmark] = data;
    (waiting[data.benchmark] || []).forEach(function (cb) { cb(data); });
    delete waiting[data.benchmark];
  };

  function load(entry, cb) {
    if (loaded[entry.benchmark]) { cb(loaded[entry.benchmark]); return; }
    if (waiting[entry.benchmark]) { waiting[entry.benchmark].push(cb); return; }
    waiting[entry.benchmark] = [cb];
    var script = document.createElement("script");
    script.src = entry.file;
    script.onerror = function () { status("Could not load " + entry.file + " (is report_files/ beside report.html?)"); };
    status("Loading " + entry.benchmark + " …");
    document.head.appendChild(script);
  }

  // ------------------------------------------------------------ filters
  function fill(select, values, allLabel) {
    var keep = select.value;
    select.textContent = "";
    if (allLabel) { select.appendChild(option("", allLabel)); }
    values.forEach(function (v) { select.appendChild(option(v[0], v[1])); });
    if (Array.prototype.some.call(select.options, function (o) { return o.value === keep; })) { select.value = keep; }
  }

  function option(value, label) {
    var o = el("option", null, label);
    o.value = value;
    return o;
  }

  function distinct(values) {
    var seen = {}, out = [];
    values.forEach(function (v) {
      if (v !== null && v !== undefined && !Object.prototype.hasOwnProperty.call(seen, v)) { seen[v] = 1; out.push(v); }
    });
    return out.sort();
  }

  function pairs(values) { return values.map(function (v) { return [v, v === "" ? "(none)" : v]; }); }

  function show(data) {
    state.data = data;
    status("");
    fill($("f-row"), pairs(distinct(data.evals.map(function (e) { return e.row; }))), "all rows");
    fill($("f-judge"), pairs(distinct(data.evals.map(function (e) { return e.judge || ""; }))), "all judges");
    fill($("f-category"), pairs(distinct(data.samples.map(function (s) { return s.c; }))), "all categories");
    fill($("f-verdict"), pairs(distinct(data.samples.map(function (s) { return s.v; }))), "all verdicts");
    var evals = data.evals.map(function (e, i) { return [String(i), e.title]; });
    fill($("cmp-a"), evals);
    fill($("cmp-b"), evals);
    if ($("cmp-a").value === $("cmp-b").value && evals.length > 1) { $("cmp-b").value = evals[1][0]; }
    state.page = 0;
    state.cmpPage = 0;
    render();
  }

  function matches(data, s, f) {
    if (f.category && s.c !== f.category) { return false; }
    if (f.text && (data.strings[s.p] + "\n" + s.r).toLowerCase().indexOf(f.text) < 0) { return false; }
    return true;
  }

  function filters() {
    return {row: $("f-row").value, judge: $("f-judge").value, category: $("f-category").value,
            verdict: $("f-verdict").value, text: $("f-text").value.toLowerCase()};
  }

  // ------------------------------------------------------------ one sample
  function block(label, text, cls) {
    var box = el("div", "field " + (cls || ""));
    box.appendChild(el("div", "label", label));
    box.appendChild(el("pre", null, text));
    return box;
  }

  function badge(verdict) {
    return el("span", "verdict v-" + (/^[a-z_]+$/.test(verdict) ? verdict : "other"), verdict);
  }

  function thumb(s) {
    if (!s.i || !/^[0-9a-f]{64}\.jpg$/.test(s.i)) { return null; }
    var img = el("img", "thumb");
    img.loading = "lazy";
    img.alt = "image of " + s.id;
    img.src = "report_files/thumbs/" + s.i;
    return img;
  }

  function side(data, s) {
    var box = el("div", "side");
    var head = el("div", "head");
    head.appendChild(el("b", null, data.evals[s.e].title));
    head.appendChild(document.createTextNode(" "));
    head.appendChild(badge(s.v));
    box.appendChild(head);
    box.appendChild(block("response", s.r, "response"));
    box.appendChild(block("judge output (" + (data.evals[s.e].judge || "?") + ")", s.j || "(empty)", "judge"));
    if (s.d) { box.appendChild(el("div", "detail", s.d)); }
    if (s.k) { box.appendChild(el("div", "detail", "keyword refusal match: " + s.k)); }
    return box;
  }

  function item(data, s, others) {
    var card = el("article", "sample");
    var head = el("div", "head");
    head.appendChild(el("code", null, s.id));
    head.appendChild(el("span", "category", s.c || "(no category)"));
    if (s.h === true || s.h === false) { head.appendChild(el("span", "harm", s.h ? "harmful prompt" : "benign prompt")); }
    card.appendChild(head);
    var body = el("div", "body");
    var image = thumb(s);
    if (image) { body.appendChild(image); }
    var text = el("div", "text");
    text.appendChild(block("prompt", data.strings[s.p], "prompt"));
    if (s.q !== null && s.q !== undefined && data.strings[s.q] !== data.strings[s.p]) {
      text.appendChild(block("request the judge read", data.strings[s.q], "prompt"));
    }
    body.appendChild(text);
    card.appendChild(body);
    var sides = el("div", "sides");
    [s].concat(others || []).forEach(function (x) { sides.appendChild(side(data, x)); });
    card.appendChild(sides);
    return card;
  }

  // ------------------------------------------------------------ views
  function pager(node, page, total, set) {
    node.textContent = "";
    var pages = Math.max(1, Math.ceil(total / PAGE));
    var prev = el("button", null, "‹ previous"), next = el("button", null, "next ›");
    prev.disabled = page <= 0;
    next.disabled = page >= pages - 1;
    prev.onclick = function () { set(page - 1); };
    next.onclick = function () { set(page + 1); };
    node.appendChild(prev);
    node.appendChild(el("span", null, " page " + (page + 1) + " of " + pages + " "));
    node.appendChild(next);
  }

  function renderList(data) {
    var f = filters();
    var shown = data.samples.filter(function (s) {
      var ev = data.evals[s.e];
      return (!f.row || ev.row === f.row) && (!f.judge || (ev.judge || "") === f.judge) &&
             (!f.verdict || s.v === f.verdict) && matches(data, s, f);
    });
    state.page = Math.min(state.page, Math.max(0, Math.ceil(shown.length / PAGE) - 1));
    $("list-count").textContent = shown.length + " of " + data.samples.length + " samples of " + data.benchmark;
    pager($("list-pager"), state.page, shown.length, function (p) { state.page = p; render(); });
    var list = $("list");
    list.textContent = "";
    shown.slice(state.page * PAGE, (state.page + 1) * PAGE).forEach(function (s) { list.appendChild(item(data, s)); });
  }

  function renderCompare(data) {
    var f = filters(), a = Number($("cmp-a").value), b = Number($("cmp-b").value);
    var first = {}, shared = 0, differ = [];
    data.samples.forEach(function (s) { if (s.e === a) { first[s.id] = s; } });
    data.samples.forEach(function (s) {
      var other = s.e === b ? first[s.id] : undefined;
      if (other && a !== b) {
        shared += 1;
        if (other.v !== s.v && matches(data, other, f)) { differ.push([other, s]); }
      }
    });
    state.cmpPage = Math.min(state.cmpPage, Math.max(0, Math.ceil(differ.length / PAGE) - 1));
    $("cmp-count").textContent = a === b ? "Choose two different evaluations." :
      differ.length + " prompts where the verdicts differ, of " + shared + " prompts both were scored on";
    pager($("cmp-pager"), state.cmpPage, differ.length, function (p) { state.cmpPage = p; render(); });
    var list = $("compare");
    list.textContent = "";
    differ.slice(state.cmpPage * PAGE, (state.cmpPage + 1) * PAGE).forEach(function (pair) {
      list.appendChild(item(data, pair[0], [pair[1]]));
    });
  }

  function render() {
    if (!state.data) { return; }
    $("list-view").hidden = state.view !== "list";
    $("compare-view").hidden = state.view !== "compare";
    $("tab-list").className = state.view === "list" ? "on" : "";
    $("tab-compare").className = state.view === "compare" ? "on" : "";
    if (state.view === "list") { renderList(state.data); } else { renderCompare(state.data); }
  }

  // ------------------------------------------------------------ wiring
  function choose() {
    var entry = INDEX[Number($("f-bench").value)];
    if (entry) { load(entry, show); }
  }

  function restart() { state.page = 0; state.cmpPage = 0; render(); }

  fill($("f-bench"), INDEX.map(function (b, i) { return [String(i), b.benchmark + " (" + b.n + ")"]; }));
  $("f-bench").onchange = choose;
  ["f-row", "f-judge", "f-category", "f-verdict", "cmp-a", "cmp-b"].forEach(function (id) { $(id).onchange = restart; });
  $("f-text").oninput = restart;
  $("tab-list").onclick = function () { state.view = "list"; render(); };
  $("tab-compare").onclick = function () { state.view = "compare"; render(); };
  if (INDEX.length) { choose(); } else { status("This run has no evaluations."); }
}());
