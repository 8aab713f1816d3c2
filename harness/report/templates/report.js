(function () {
  "use strict";
  // Every string below comes from report data: it is only ever written with textContent / attributes,
  // never as HTML.
  var D = JSON.parse(document.getElementById("conform-data").textContent);
  var NB = D.backends.length;
  var OVERSCAN = 15;
  var rowHeight = 27;
  var SEV = D.severity;
  // A row is a (case, gradient): [label, file, line, parameter values, cells, source, description, spread,
  // gradient (null: the forward output; "x", "w", "b": a vjp), case id]. Gradient rows follow their case's.
  var HAS_GRADIENTS = D.cases.some(function (c) { return c[8]; });
  var state = {
    search: "", verdicts: {}, backends: {}, params: {}, sort: "file", sortBackend: -1, asc: false
  };
  D.verdicts.forEach(function (v, i) { state.verdicts[i] = true; });
  D.backends.forEach(function (b, i) { state.backends[i] = true; });

  // result index -> [case index, backend index]
  var resultCase = new Array(D.details.length);
  D.cases.forEach(function (c, ci) {
    c[4].forEach(function (cell, bi) { if (cell) { resultCase[cell[2]] = [ci, bi]; } });
  });

  // A registry entry named in a result: its id links to the evidence when the link is http(s) or file.
  // A registry entry on a result: its id links to the evidence (page_data resolved a safe href, or none).
  function registryNote(label, entry, rest, kind) {
    if (typeof entry !== "object") { return el("p", { className: "sub registry registry-note " + kind, text: label + String(entry) }); }
    var href = entry.href || "";
    var linked = /^(https?:|file:|[^:]*$)/.test(href) && href !== "";
    var id = linked ? el("a", { href: href, text: entry.id || "" }) : el("code", { text: entry.id || "" });
    return el("p", { className: "sub registry registry-note " + kind }, label, id, (rest || "") + (!linked && entry.link ? " (" + entry.link + ")" : ""));
  }

  function el(tag, attrs) {
    var node = document.createElement(tag);
    if (attrs) {
      Object.keys(attrs).forEach(function (k) {
        if (k === "text") { node.textContent = attrs[k]; }
        else if (k === "className") { node.className = attrs[k]; }
        else { node.setAttribute(k, attrs[k]); }
      });
    }
    for (var i = 2; i < arguments.length; i++) {
      var child = arguments[i];
      if (child === null || child === undefined) { continue; }
      node.appendChild(typeof child === "string" ? document.createTextNode(child) : child);
    }
    return node;
  }

  function vclass(v) { return "v-" + String(v).replace(/[^a-z_]/g, ""); }

  function fmtRatio(r) {
    if (r === null || r === undefined) { return null; }
    if (typeof r === "string") { return r === "inf" ? "inf" : r; }
    if (r === 0) { return "0"; }
    if (r < 100) { return Number(r.toPrecision(2)).toString(); }
    return r.toExponential(1).replace("e+", "e");
  }
  function ratioValue(r) {
    if (r === null || r === undefined) { return -1; }
    if (typeof r === "string") { return r === "inf" || r === "nan" ? Infinity : -1; }
    return r;
  }
  var SHORT = { pass: "pass", xpass: "xpass", xfail: "xfail", unsupported: "unsup.", skipped: "skip",
    shape_mismatch: "shape", value_mismatch: "value", missing_error: "no error", unexpected_error: "error",
    crash: "crash", timeout: "timeout" };

  // ---------------------------------------------------------------- filters
  function buildFilters() {
    var verdictBox = document.getElementById("f-verdicts");
    var counts = D.verdicts.map(function () { return 0; });
    D.cases.forEach(function (c) { c[4].forEach(function (cell) { if (cell) { counts[cell[0]]++; } }); });
    verdictBox.appendChild(el("span", { className: "chip-title", text: "verdict" }));
    D.verdicts.forEach(function (v, i) {
      var box = el("input", { type: "checkbox", "data-verdict": v });
      box.checked = true;
      box.addEventListener("change", function () { state.verdicts[i] = box.checked; update(); });
      verdictBox.appendChild(el("label", null, box, " ", el("span", { className: "badge " + vclass(v), text: v }),
        " " + counts[i]));
    });
    var backendBox = document.getElementById("f-backends");
    backendBox.appendChild(el("span", { className: "chip-title", text: "backend" }));
    D.backends.forEach(function (b, i) {
      var box = el("input", { type: "checkbox", "data-backend": b });
      box.checked = true;
      box.addEventListener("change", function () { state.backends[i] = box.checked; update(); });
      backendBox.appendChild(el("label", null, box, " ", el("code", { text: b })));
    });
    var paramBox = document.getElementById("f-params");
    D.param_keys.forEach(function (key, ki) {
      var values = D.param_values[key];
      if (values.length < 2) { return; }
      var select = el("select", { "data-param": key });
      select.appendChild(el("option", { value: "-1", text: "any" }));
      values.forEach(function (v, vi) { select.appendChild(el("option", { value: String(vi), text: v })); });
      select.addEventListener("change", function () {
        var vi = parseInt(select.value, 10);
        if (vi < 0) { delete state.params[ki]; } else { state.params[ki] = vi; }
        update();
      });
      paramBox.appendChild(el("label", null, key + " ", select));
    });
    var search = document.getElementById("f-search");
    var timer = null;
    search.addEventListener("input", function () {
      clearTimeout(timer);
      timer = setTimeout(function () { state.search = search.value; update(); }, 80);
    });
    document.getElementById("f-sort").addEventListener("change", function (e) {
      state.sort = e.target.value; state.sortBackend = -1; state.asc = false; update();
    });
    document.getElementById("f-failing").addEventListener("click", function () {
      D.verdicts.forEach(function (v, i) { state.verdicts[i] = D.failing.indexOf(v) >= 0; });
      syncChecks(); update();
    });
    document.getElementById("f-reset").addEventListener("click", function () {
      D.verdicts.forEach(function (v, i) { state.verdicts[i] = true; });
      D.backends.forEach(function (b, i) { state.backends[i] = true; });
      state.params = {}; state.search = ""; search.value = "";
      Array.prototype.forEach.call(paramBox.querySelectorAll("select"), function (s) { s.value = "-1"; });
      syncChecks(); update();
    });
    function syncChecks() {
      Array.prototype.forEach.call(verdictBox.querySelectorAll("input"), function (box, i) { box.checked = state.verdicts[i]; });
      Array.prototype.forEach.call(backendBox.querySelectorAll("input"), function (box, i) { box.checked = state.backends[i]; });
    }
  }

  function matcher(text) {
    text = text.trim().toLowerCase();
    if (!text) { return null; }
    if (/[*?]/.test(text)) {
      var re = new RegExp("^" + text.replace(/[.+^${}()|[\]\\]/g, "\\$&").replace(/\*/g, ".*").replace(/\?/g, ".") + "$");
      return function (s) { return re.test(s.toLowerCase()); };
    }
    return function (s) { return s.toLowerCase().indexOf(text) >= 0; };
  }

  var rows = [];
  var visibleBackends = [];

  function update() {
    visibleBackends = [];
    for (var b = 0; b < NB; b++) { if (state.backends[b]) { visibleBackends.push(b); } }
    var match = matcher(state.search);
    var paramFilters = Object.keys(state.params).map(function (k) { return [parseInt(k, 10), state.params[k]]; });
    var allVerdicts = D.verdicts.every(function (v, i) { return state.verdicts[i]; });
    rows = [];
    for (var ci = 0; ci < D.cases.length; ci++) {
      var c = D.cases[ci];
      if (match && !match(c[0]) && !match(c[9])) { continue; }
      var ok = true;
      for (var p = 0; p < paramFilters.length; p++) {
        if (c[3][paramFilters[p][0]] !== paramFilters[p][1]) { ok = false; break; }
      }
      if (!ok) { continue; }
      if (!allVerdicts) {
        ok = false;
        for (var k = 0; k < visibleBackends.length; k++) {
          var cell = c[4][visibleBackends[k]];
          if (cell && state.verdicts[cell[0]]) { ok = true; break; }
        }
        if (!ok) { continue; }
      }
      rows.push(ci);
    }
    sortRows();
    var counter = document.getElementById("matrix-count");
    var nResults = 0;
    rows.forEach(function (ci) {
      visibleBackends.forEach(function (b) { if (D.cases[ci][4][b]) { nResults++; } });
    });
    counter.textContent = "showing " + rows.length + " of " + D.cases.length + (HAS_GRADIENTS ? " rows (cases and their gradients, "
      : " cases (") + nResults + " results)";
    counter.setAttribute("data-count", String(rows.length));
    renderHead();
    var scroller = document.getElementById("matrix-scroll");
    scroller.scrollTop = 0;
    renderBody();
  }

  function worst(c, backends) {
    var sev = -2, ratio = -1;
    backends.forEach(function (b) {
      var cell = c[4][b];
      if (!cell) { return; }
      var s = SEV[D.verdicts[cell[0]]];
      if (s === undefined) { s = 99; }
      var r = ratioValue(cell[1]);
      if (s > sev || (s === sev && r > ratio)) { sev = s; ratio = r; }
    });
    return [sev, ratio];
  }

  function sortRows() {
    var key;
    if (state.sortBackend >= 0) {
      var b = state.sortBackend;
      key = function (ci) { return worst(D.cases[ci], [b]); };
    } else if (state.sort === "severity") {
      key = function (ci) { return worst(D.cases[ci], visibleBackends); };
    } else if (state.sort === "ratio") {
      key = function (ci) { var w = worst(D.cases[ci], visibleBackends); return [w[1], w[0]]; };
    } else if (state.sort === "id") {
      rows.sort(function (a, b) { return D.cases[a][0] < D.cases[b][0] ? -1 : D.cases[a][0] > D.cases[b][0] ? 1 : 0; });
      if (state.asc) { rows.reverse(); }
      return;
    } else {
      if (state.asc) { rows.reverse(); }
      return;
    }
    var keys = {};
    rows.forEach(function (ci) { keys[ci] = key(ci); });
    var dir = state.asc ? 1 : -1;
    rows.sort(function (a, b) {
      var ka = keys[a], kb = keys[b];
      if (ka[0] !== kb[0]) { return dir * (ka[0] - kb[0]); }
      if (ka[1] !== kb[1]) { return dir * (ka[1] - kb[1]); }
      return a - b;
    });
  }

  function renderHead() {
    var head = document.getElementById("matrix-head");
    head.textContent = "";
    var tr = el("tr");
    var caseTh = el("th", { className: "case-col" + (state.sort === "id" && state.sortBackend < 0 ? " sorted" + (state.asc ? " asc" : "") : ""),
      text: "case", title: "sort by case id" });
    caseTh.addEventListener("click", function () {
      if (state.sort === "id" && state.sortBackend < 0) { state.asc = !state.asc; } else { state.sort = "id"; state.asc = true; }
      state.sortBackend = -1;
      document.getElementById("f-sort").value = "id";
      update();
    });
    tr.appendChild(caseTh);
    tr.appendChild(el("th", { className: "param-col", text: "parameters" }));
    visibleBackends.forEach(function (b) {
      var th = el("th", { className: state.sortBackend === b ? "sorted" + (state.asc ? " asc" : "") : "",
        title: "sort by verdict, then bound_ratio", "data-backend": D.backends[b] }, el("code", { text: D.backends[b] }));
      th.addEventListener("click", function () {
        if (state.sortBackend === b) { state.asc = !state.asc; } else { state.sortBackend = b; state.asc = false; }
        update();
      });
      tr.appendChild(th);
    });
    head.appendChild(tr);
  }

  function paramSummary(c) {
    // Parameters that vary across the report and are not already spelled out in the case id.
    var parts = [];
    D.param_keys.forEach(function (key, ki) {
      var values = D.param_values[key];
      if (values.length < 2 || key === "gradient") { return; }   // a gradient row says so in its label
      var pair = key + "=" + values[c[3][ki]];
      if (c[0].indexOf(pair) < 0) { parts.push(pair); }
    });
    return parts.join(" ");
  }

  function spacer(height, cols) {
    var td = el("td", { colspan: String(cols) });
    td.style.height = height + "px";
    return el("tr", { className: "spacer" }, td);
  }

  function renderBody() {
    var scroller = document.getElementById("matrix-scroll");
    var body = document.getElementById("matrix-body");
    var cols = 2 + visibleBackends.length;
    var first = Math.max(0, Math.floor(scroller.scrollTop / rowHeight) - OVERSCAN);
    var viewport = Math.max(scroller.clientHeight, window.innerHeight || 0);
    var count = Math.ceil(viewport / rowHeight) + 2 * OVERSCAN;
    var last = Math.min(rows.length, first + count);
    var frag = document.createDocumentFragment();
    frag.appendChild(spacer(first * rowHeight, cols));
    for (var i = first; i < last; i++) {
      var ci = rows[i];
      var c = D.cases[ci];
      var tr = el("tr", { "data-case": String(ci), className: c[8] ? "grad-row" : "" });
      if (c[8]) { tr.setAttribute("data-gradient", c[8]); }
      tr.appendChild(el("td", { className: "case", title: c[0] + (c[8] ? " (vector–Jacobian product w.r.t. " + c[8] + ")" : "") +
        "\n" + D.files[c[1]] + ":" + c[2], text: c[0], "data-open-case": String(ci) }));
      var summary = paramSummary(c);
      tr.appendChild(el("td", { className: "params", title: summary, text: summary }));
      for (var k = 0; k < visibleBackends.length; k++) {
        var b = visibleBackends[k];
        var cell = c[4][b];
        if (!cell) { tr.appendChild(el("td", { className: "cell none", text: "–" })); continue; }
        var verdict = D.verdicts[cell[0]];
        var r = fmtRatio(cell[1]);
        var shown = r === null ? SHORT[verdict] || verdict : r;
        tr.appendChild(el("td", { className: "cell " + vclass(verdict), text: shown, "data-result": String(cell[2]),
          "data-verdict": verdict, "data-backend": D.backends[b], title: D.backends[b] + ": " + verdict + (r === null ? "" : " · bound_ratio " + r) }));
      }
      frag.appendChild(tr);
    }
    frag.appendChild(spacer(Math.max(0, rows.length - last) * rowHeight, cols));
    body.textContent = "";
    body.appendChild(frag);
    var sample = body.querySelector("tr[data-case]");
    if (sample) {
      var h = sample.getBoundingClientRect().height;
      if (h > 0 && Math.abs(h - rowHeight) > 0.5) { rowHeight = h; renderBody(); }
    }
  }

  // ---------------------------------------------------------------- details
  function kvTable(obj, keys) {
    var table = el("table", { className: "kv" });
    (keys || Object.keys(obj)).forEach(function (k) {
      if (obj[k] === undefined) { return; }
      var v = obj[k];
      table.appendChild(el("tr", null, el("th", { text: k }),
        el("td", { className: "mono", text: typeof v === "object" ? JSON.stringify(v) : String(v) })));
    });
    return table;
  }

  function codeBox(text) {
    var pre = el("pre", null, el("code", { text: text }));
    var button = el("button", { type: "button", text: "copy" });
    button.addEventListener("click", function () {
      var done = function () { button.textContent = "copied"; setTimeout(function () { button.textContent = "copy"; }, 1200); };
      var fallback = function () {
        var range = document.createRange();
        range.selectNodeContents(pre);
        var sel = window.getSelection();
        sel.removeAllRanges();
        sel.addRange(range);
        try { document.execCommand("copy"); done(); } catch (e) { button.textContent = "select + Ctrl-C"; }
      };
      try {
        if (navigator.clipboard && window.isSecureContext) {
          navigator.clipboard.writeText(text).then(done, fallback);
        } else { fallback(); }
      } catch (e) { fallback(); }
    });
    return el("div", { className: "codebox" }, pre, button);
  }

  // A registry entry (known divergence, or the one a failure resembles): id, reason, and its link as a
  // link when report.html could resolve one (``href``), else as text.
  function spreadBlock(s) {
    var box = el("div", { className: "spread" });
    box.appendChild(el("h3", { text: "framework spread" }));
    box.appendChild(el("p", { className: "spread-line", text: s.line }));
    box.appendChild(kvTable({ pair: s.pair.join(" vs "), tighter_ratio: s.tighter_ratio, ratio: s.ratio,
      max_abs_diff: s.max_abs_diff, frameworks: (s.frameworks || []).join(", ") }));
    box.appendChild(el("p", { className: "sub", text: D.spread_gloss }));
    return box;
  }

  function backendBlock(c, b, focus) {
    var cell = c[4][b];
    var verdict = D.verdicts[cell[0]];
    var d = D.details[cell[2]];
    var block = el("div", { className: "backend-block" + (focus ? " focus" : ""), "data-backend": D.backends[b] });
    var title = el("h3", null, el("code", { text: D.backends[b] }), el("span", { className: "badge " + vclass(verdict), text: verdict }));
    if (d.original_verdict) { title.appendChild(el("span", { className: "sub", text: "(was " + d.original_verdict + ")" })); }
    if (cell[1] !== null && cell[1] !== undefined) { title.appendChild(el("span", { className: "sub", text: "bound_ratio " + fmtRatio(cell[1]) })); }
    if (d.emulated) { title.appendChild(el("span", { className: "badge v-xfail", text: "emulated" })); }
    block.appendChild(title);
    if (d.reason) { block.appendChild(el("p", { text: d.reason })); }
    if (d.worst || d.gloss) {
      block.appendChild(el("p", { className: "gloss" }, d.worst ? el("span", { className: "worst mono", text: "worst element " + d.worst + ". " }) : null,
        d.gloss || ""));
    }
    if (d.divergence) { block.appendChild(registryNote("known divergence ", d.divergence, ": " + (d.divergence.reason || ""), "divergence")); }
    if (d.resembles) {
      var differs = (d.resembles.failed_conditions || []).join(", ");
      block.appendChild(registryNote("resembles known divergence ", d.resembles, differs ? " (differs in: " + differs + ")" : "", "resembles"));
    }
    if (d.error) { block.appendChild(el("p", { className: "warn mono", text: (d.error.type || "") + ": " + (d.error.message || "") })); }
    if (d.forward_failed) { block.appendChild(el("p", { className: "warn", text: "the forward call itself failed: no gradient to judge" })); }
    if (d.native_call) { block.appendChild(el("div", { className: "sub", text: c[8] ? "native call (forward)" : "native call" })); block.appendChild(codeBox(d.native_call)); }
    if (d.gradient_call) { block.appendChild(el("div", { className: "sub", text: "gradient call" })); block.appendChild(codeBox(d.gradient_call)); }
    if (d.notes && d.notes.length) {
      var ul = el("ul", { className: "notes" });
      d.notes.forEach(function (n) { ul.appendChild(el("li", { text: n })); });
      block.appendChild(ul);
    }
    var grid = el("div", { className: "detail-grid" });
    var facts = {};
    if (d.expected_shape) { facts.expected_shape = d.expected_shape; }
    if (d.actual_shape) { facts.actual_shape = d.actual_shape; }
    if (d.duration_ms !== undefined) { facts.duration_ms = d.duration_ms; }
    if (d.agrees_with) { facts.agrees_with = d.agrees_with.join(", ") || "none"; }
    if (d.suspect_oracle) { facts.suspect_oracle = "true: independent backends agree with each other, not with the oracle"; }
    if (Object.keys(facts).length) { grid.appendChild(kvTable(facts)); }
    if (d.metrics) {
      grid.appendChild(kvTable(d.metrics, ["max_abs_err", "max_rel_err", "max_ulp", "mismatch_fraction", "worst_index",
        "worst_actual", "worst_expected", "worst_bound", "bound_ratio", "nonfinite_mismatches"]));
    }
    if (d.heatmap) {
      var img = el("img", { src: d.heatmap, alt: "heatmap of |difference|" });
      var caption = (c[8] ? "|∂" + c[8] + " − ∂" + c[8] + "_ref| over " + (c[8] === "x" ? "the input plane (max over batch and channels)"
        : "the kernel window (max over the channel axes)") : "|y − y_ref| over the output plane (max over batch and channels)") +
        ": black 0, bright yellow the largest" +
        (d.metrics && d.metrics.max_abs_err !== undefined ? " (" + d.metrics.max_abs_err + ")" : "") + ".";
      grid.appendChild(el("div", { className: "heatmap" }, el("figure", null, img, el("figcaption", { text: caption }))));
    }
    block.appendChild(grid);
    if (d.tolerance) {
      block.appendChild(el("details", null, el("summary", { text: "tolerance" }), kvTable(d.tolerance)));
    }
    if (d.repro) {
      var a = el("a", { href: d.repro, text: d.repro });
      block.appendChild(el("p", { className: "repro" }, "reproducer: ", a, " (standalone: python repro.py; inputs.npz beside it)"));
    }
    return block;
  }

  function openCase(ci, focusBackend) {
    var c = D.cases[ci];
    var dialog = document.getElementById("detail");
    document.getElementById("detail-title").textContent = c[0];
    var body = document.getElementById("detail-body");
    body.textContent = "";
    body.appendChild(el("p", { className: "sub mono", text: D.files[c[1]] + ":" + c[2] }));
    if (c[5]) { body.appendChild(el("p", { className: "source", text: "source: " + c[5] })); }
    if (c[6]) { body.appendChild(el("p", { className: "description", text: c[6] })); }
    var params = {};
    D.param_keys.forEach(function (key, ki) { params[key] = D.param_values[key][c[3][ki]]; });
    body.appendChild(el("details", { open: "" }, el("summary", { text: "case parameters" }), kvTable(params)));
    if (c[7]) { body.appendChild(spreadBlock(c[7])); }
    var focusNode = null;
    for (var b = 0; b < NB; b++) {
      if (!c[4][b]) { continue; }
      var block = backendBlock(c, b, b === focusBackend);
      if (b === focusBackend) { focusNode = block; }
      body.appendChild(block);
    }
    if (!dialog.open) { dialog.showModal(); }
    if (focusNode) { focusNode.scrollIntoView({ block: "start" }); } else { dialog.scrollTop = 0; }
  }

  // ---------------------------------------------------------------- wiring
  document.getElementById("matrix-body").addEventListener("click", function (e) {
    var target = e.target.closest("td");
    if (!target) { return; }
    if (target.hasAttribute("data-result")) {
      var rc = resultCase[parseInt(target.getAttribute("data-result"), 10)];
      openCase(rc[0], rc[1]);
    } else if (target.hasAttribute("data-open-case")) {
      openCase(parseInt(target.getAttribute("data-open-case"), 10), -1);
    }
  });
  Array.prototype.forEach.call(document.querySelectorAll("button.open-detail"), function (button) {
    button.addEventListener("click", function () {
      var rc = resultCase[parseInt(button.getAttribute("data-result"), 10)];
      if (rc) { openCase(rc[0], rc[1]); }
    });
  });
  document.getElementById("detail-close").addEventListener("click", function () { document.getElementById("detail").close(); });
  document.getElementById("detail").addEventListener("click", function (e) {
    if (e.target === e.currentTarget) { e.currentTarget.close(); }
  });
  var pending = false;
  document.getElementById("matrix-scroll").addEventListener("scroll", function () {
    if (pending) { return; }
    pending = true;
    window.requestAnimationFrame(function () { pending = false; renderBody(); });
  });
  window.addEventListener("resize", function () { renderBody(); });

  buildFilters();
  update();
  document.body.setAttribute("data-ready", "1");
}());
