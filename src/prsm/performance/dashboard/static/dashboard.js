/* PRSM gateway dashboard: polls the gateway's admin JSON every monitoring interval and draws
 * it with uPlot. Same-origin requests only (the page's Content-Security-Policy allows nothing
 * else). The admin key, when the gateway needs one, is asked for once, kept in this tab's
 * sessionStorage and sent as "Authorization: Bearer"; it is never put in a URL. Everything is
 * written with textContent (no HTML from the server is ever parsed). */
(function () {
  "use strict";

  var KEY_STORE = "prsm-admin-key";
  var WINDOW_S = 900; // the charts keep the last 15 minutes
  var MIN_POLL_MS = 500;
  var STAGES = ["parse", "auth", "cache", "route", "queue", "upstream", "respond"];
  var FINDINGS_SINCE = "15m", FINDINGS_EVERY_MS = 60000; // as dashboard/_findings.py

  // --- numbers as the page writes them (the tests read them back)
  function num(v) { return typeof v === "number" && isFinite(v); }
  function fixed(v, d) { return num(v) ? v.toFixed(d) : "–"; }
  function ms(v) { return num(v) ? fmtMs(v * 1000) : "–"; }
  function fmtMs(x) { return x >= 100 ? x.toFixed(0) + " ms" : x >= 1 ? x.toFixed(1) + " ms" : x.toFixed(3) + " ms"; }
  function pct(v) { return num(v) ? (v * 100).toFixed(1) + " %" : "–"; }
  function money(v) { return num(v) ? "$" + (v >= 0.01 ? v.toFixed(4) : v.toPrecision(3)) : "–"; }
  function scaled(f) { return function (v) { return num(v) ? v * f : null; }; }
  function same(v) { return num(v) ? v : null; }

  // --- the admin key and fetching
  function adminKey() { return window.sessionStorage.getItem(KEY_STORE); }

  function getJSON(path) {
    var headers = { accept: "application/json" };
    var key = adminKey();
    if (key) headers.authorization = "Bearer " + key;
    return fetch(path, { headers: headers, cache: "no-store", credentials: "omit" }).then(function (r) {
      return r.text().then(function (text) {
        var body = null;
        try { body = text ? JSON.parse(text) : null; } catch (e) { body = { error: { message: text } }; }
        return { status: r.status, body: body };
      });
    });
  }

  function errorText(reply) {
    var e = reply.body && reply.body.error;
    return (e && e.message) || ("HTTP " + reply.status);
  }

  function el(id) { return document.getElementById(id); }

  function setStatus(kind, text) {
    var s = el("status");
    s.className = "status " + kind;
    s.textContent = text;
  }

  function askForKey(reason) {
    el("key-reason").textContent = reason;
    el("key-form").hidden = false;
    el("key-input").focus();
  }

  el("key-form").addEventListener("submit", function (ev) {
    ev.preventDefault();
    var value = el("key-input").value.trim();
    if (!value) return;
    window.sessionStorage.setItem(KEY_STORE, value);
    el("key-input").value = "";
    el("key-form").hidden = true;
    start();
  });
  el("forget-key").addEventListener("click", function () {
    window.sessionStorage.removeItem(KEY_STORE);
    el("forget-key").hidden = true;
    stop();
    askForKey("Key forgotten. Enter an admin key to continue.");
  });

  // --- charts: each is uPlot over [times, series...], fed from history, then every poll
  var CHARTS = [
    { id: "chart-rate", series: [
      { label: "requests/s", metric: "application.request_rate", pick: function (c) { return c.application.request_rate; }, f: same, stroke: "#2f6fde" },
      { label: "tokens/s ÷ 100", metric: "business.tokens_per_s", pick: function (c) { return c.business.throughput.tokens_per_s; }, f: scaled(0.01), stroke: "#9e77ed" } ] },
    { id: "chart-latency", series: [
      { label: "p50", metric: "application.response_time_p50", pick: function (c) { return c.application.response_time_p50; }, f: scaled(1000), stroke: "#12805c" },
      { label: "p95", metric: "application.response_time_p95", pick: function (c) { return c.application.response_time_p95; }, f: scaled(1000), stroke: "#b25e09" },
      { label: "p99", metric: "application.response_time_p99", pick: function (c) { return c.application.response_time_p99; }, f: scaled(1000), stroke: "#c4320a" } ] },
    { id: "chart-stages", series: STAGES.map(function (name, i) {
      var colors = ["#667085", "#9e77ed", "#2f6fde", "#0e9384", "#b25e09", "#c4320a", "#12805c"];
      return { label: name, metric: "stage.mean", labels: "stage=" + name, stroke: colors[i], f: scaled(1000),
               pick: function (c) { var s = c.application.stages[name]; return s ? s.mean : null; } };
    }) },
    { id: "chart-ratios", series: [
      { label: "errors", metric: "application.error_rate", pick: function (c) { return c.application.error_rate; }, f: scaled(100), stroke: "#c4320a" },
      { label: "cache hits", metric: "application.cache_hit_rate", pick: function (c) { return c.application.cache_hit_rate; }, f: scaled(100), stroke: "#2f6fde" },
      { label: "within SLA", metric: "business.sla_compliance", pick: function (c) { return c.business.sla_compliance; }, f: scaled(100), stroke: "#12805c" } ] },
    { id: "chart-queue", series: [
      { label: "queue depth", metric: "application.queue_depth", pick: function (c) { return c.application.queue_depth; }, f: same, stroke: "#b25e09" },
      { label: "in flight", metric: "application.in_flight", pick: function (c) { return c.application.in_flight; }, f: same, stroke: "#2f6fde" } ] },
    { id: "chart-cost", series: [
      { label: "$/s", metric: "business.cost_per_s", pick: function (c) { return c.business.cost_per_s; }, f: same, stroke: "#0e9384" } ] },
  ];

  // anomalies of the last findings, per history series key ("metric" or "metric{k=v}")
  var anomalyMarks = {};

  function seriesKey(s) { return s.metric + (s.labels ? "{" + s.labels + "}" : ""); }

  // red rings on each anomaly the analytics found in a series the chart draws
  function markAnomalies(spec) {
    return function (u) {
      var ctx = u.ctx, lo = u.scales.x.min, hi = u.scales.x.max;
      ctx.save();
      ctx.strokeStyle = "#c4320a";
      ctx.lineWidth = 2 * devicePixelRatio;
      spec.series.forEach(function (s) {
        (anomalyMarks[seriesKey(s)] || []).forEach(function (p) {
          var y = s.f(p[1]);
          if (y === null || p[0] < lo || p[0] > hi) return;
          ctx.beginPath();
          ctx.arc(u.valToPos(p[0], "x", true), u.valToPos(y, "y", true), 5 * devicePixelRatio, 0, 2 * Math.PI);
          ctx.stroke();
        });
      });
      ctx.restore();
    };
  }

  function makeChart(spec) {
    var box = el(spec.id);
    spec.data = [[]].concat(spec.series.map(function () { return []; }));
    var opts = {
      hooks: { draw: [markAnomalies(spec)] },
      width: Math.max(300, box.clientWidth), height: 200,
      scales: { x: { time: true } },
      legend: { live: true },
      series: [{}].concat(spec.series.map(function (s) {
        return { label: s.label, stroke: s.stroke, width: 1.5, spanGaps: false };
      })),
      axes: [{}, { size: 55 }],
    };
    spec.plot = new uPlot(opts, spec.data, box);
    new ResizeObserver(function () {
      spec.plot.setSize({ width: Math.max(300, box.clientWidth), height: 200 });
    }).observe(box);
  }

  function trim(spec, now) {
    var xs = spec.data[0], cut = 0;
    while (cut < xs.length && xs[cut] < now - WINDOW_S) cut++;
    if (cut) spec.data = spec.data.map(function (col) { return col.slice(cut); });
  }

  function publish(spec) {
    spec.plot.setData(spec.data);
    var box = el(spec.id), n = spec.data[0].length;
    // what the chart shows last, for people reading the DOM (and the browser test)
    box.dataset.points = String(n);
    box.dataset.last = JSON.stringify(spec.data.slice(1).map(function (col) { return n ? col[n - 1] : null; }));
    box.dataset.lastTime = n ? String(spec.data[0][n - 1]) : "";
  }

  function addPoint(spec, c) {
    var xs = spec.data[0], t = c.timestamp;
    if (xs.length && t <= xs[xs.length - 1]) return;
    xs.push(t);
    spec.series.forEach(function (s, i) { spec.data[i + 1].push(s.f(s.pick(c))); });
    trim(spec, t);
    publish(spec);
  }

  // history since WINDOW_S ago, merged on time; charts start empty when history is off
  function backfill(spec) {
    var queries = spec.series.map(function (s) {
      var q = "/admin/metrics/history?metric=" + encodeURIComponent(s.metric) + "&since=" + WINDOW_S;
      if (s.labels) q += "&labels=" + encodeURIComponent(s.labels);
      return getJSON(q);
    });
    return Promise.all(queries).then(function (replies) {
      var rows = {};
      replies.forEach(function (r, i) {
        var found = r.status === 200 && r.body.series && r.body.series[0];
        if (!found) return;
        found.points.forEach(function (p) {
          var row = rows[p[0]] || (rows[p[0]] = spec.series.map(function () { return null; }));
          row[i] = spec.series[i].f(p[1]);
        });
      });
      var times = Object.keys(rows).map(Number).sort(function (a, b) { return a - b; });
      if (!times.length) return;
      spec.data = [times].concat(spec.series.map(function (_, i) {
        return times.map(function (t) { return rows[t][i]; });
      }));
      publish(spec);
    });
  }

  // --- tiles and tables
  function tile(id, text, value) {
    var t = el(id), v = t.querySelector(".value");
    v.textContent = text;
    t.dataset.value = value === undefined || value === null ? "" : String(value);
  }

  function cell(row, text, cls) {
    var td = document.createElement("td");
    if (cls) td.className = cls;
    if (text instanceof Node) td.appendChild(text); else td.textContent = text;
    row.appendChild(td);
    return td;
  }

  function badge(text, kind) {
    var b = document.createElement("span");
    b.className = "badge " + kind;
    b.textContent = text;
    return b;
  }

  function bar(fraction) {
    var b = document.createElement("span");
    b.style.width = Math.max(0, Math.min(1, fraction)) * 100 + "%";
    return b;
  }

  function fill(tableId, rows, empty, columns) {
    var body = el(tableId).tBodies[0];
    body.replaceChildren();
    if (!rows.length) {
      var tr = document.createElement("tr");
      tr.className = "empty";
      var td = cell(tr, empty);
      td.colSpan = columns;
      body.appendChild(tr);
      return;
    }
    rows.forEach(function (r) { body.appendChild(r); });
  }

  function renderCurrent(c) {
    var a = c.application, b = c.business;
    document.body.dataset.timestamp = String(c.timestamp);
    tile("tile-request-rate", fixed(a.request_rate, 1) + " req/s", a.request_rate);
    tile("tile-latency", ms(a.response_time_p50) + " / " + ms(a.response_time_p95) + " / " + ms(a.response_time_p99), a.response_time_p95);
    tile("tile-error-rate", pct(a.error_rate) + " (" + a.errors + ")", a.error_rate);
    tile("tile-cache-hit-rate", pct(a.cache_hit_rate), a.cache_hit_rate);
    tile("tile-queue", a.queue_depth + " / " + a.in_flight, a.queue_depth);
    tile("tile-sla", pct(b.sla_compliance) + " ≤ " + b.sla_objective_s + " s", b.sla_compliance);
    tile("tile-cost", money(b.cost_per_request) + " · " + money(b.cost_per_s), b.cost_per_s);
    tile("tile-tokens", fixed(b.throughput.tokens_per_s, 0) + " · " + b.active_users, b.throughput.tokens_per_s);

    var stages = STAGES.filter(function (s) { return a.stages[s]; });
    var longest = Math.max.apply(null, stages.map(function (s) { return a.stages[s].mean || 0; }).concat([1e-12]));
    fill("stages", stages.map(function (name) {
      var s = a.stages[name], tr = document.createElement("tr");
      tr.dataset.stage = name;
      cell(tr, name); cell(tr, bar((s.mean || 0) / longest), "bar");
      cell(tr, ms(s.mean)); cell(tr, ms(s.p50)); cell(tr, ms(s.p95));
      return tr;
    }), "no requests in the last interval", 5);

    var tiers = Object.keys(a.cache_hit_rates).sort();
    fill("cache-tiers", tiers.map(function (name) {
      var v = a.cache_hit_rates[name], tr = document.createElement("tr");
      cell(tr, name); cell(tr, bar(v || 0), "bar"); cell(tr, pct(v));
      return tr;
    }), a.cache_lookups ? "no hits" : "no cache look-ups in the last interval", 3);
  }

  function breakerKind(state) { return state === "closed" ? "ok" : state === "half_open" ? "warn" : "bad"; }

  function renderNodes(c, nodes) {
    var byId = {};
    (nodes || []).forEach(function (n) { byId[n.id] = n; });
    var ids = Object.keys(c.application.nodes).sort();
    fill("nodes", ids.map(function (id) {
      var m = c.application.nodes[id], n = byId[id] || {}, load = n.load || {}, tr = document.createElement("tr");
      tr.dataset.node = id;
      cell(tr, id);
      cell(tr, badge(m.state, m.state === "active" ? "ok" : "warn"));
      cell(tr, badge(m.breaker || "?", breakerKind(m.breaker)));
      cell(tr, num(load.load) ? load.load.toFixed(2) + (load.state && load.state !== "fresh" ? " (" + load.state + ")" : "") : "–");
      cell(tr, fixed(m.score, 3)); cell(tr, String(m.in_flight)); cell(tr, String(m.queue_depth));
      cell(tr, pct(m.cpu)); cell(tr, pct(m.memory)); cell(tr, fixed(m.request_rate, 1));
      cell(tr, ms(m.latency_p95)); cell(tr, pct(m.error_rate)); cell(tr, fixed(m.cost_per_1k_tokens, 4));
      return tr;
    }), "no nodes", 13);
  }

  function renderReplicas(scaling, nodes) {
    var rows = [];
    if (scaling) {
      var last = scaling.steps.length ? scaling.steps[scaling.steps.length - 1] : null;
      el("replicas-source").textContent = "auto-scaling: " + scaling.policy + " (" + (scaling.running ? "running" : "stopped") + ")";
      el("replicas-what").textContent = "deployment";
      if (last) {
        var tr = document.createElement("tr");
        cell(tr, scaling.deployment); cell(tr, String(last.ready)); cell(tr, String(last.starting));
        cell(tr, String(last.draining)); cell(tr, String(last.target));
        rows.push(tr);
      }
    } else {
      el("replicas-source").textContent = "auto-scaling is off: nodes serving each model";
      el("replicas-what").textContent = "model";
      var count = {};
      (nodes || []).forEach(function (n) {
        n.models.forEach(function (m) {
          var k = count[m] || (count[m] = { ready: 0, draining: 0, all: 0 });
          k.all++;
          if (n.state === "active") k.ready++; else k.draining++;
        });
      });
      Object.keys(count).sort().forEach(function (m) {
        var tr = document.createElement("tr"), k = count[m];
        tr.dataset.model = m;
        cell(tr, m); cell(tr, String(k.ready)); cell(tr, "–"); cell(tr, String(k.draining)); cell(tr, String(k.all));
        rows.push(tr);
      });
    }
    fill("replicas", rows, "nothing to show yet", 5);
  }

  function renderAlerts(alerts) {
    var rows = (alerts.active || []).map(function (a) {
      var tr = document.createElement("tr"), labels = Object.keys(a.labels || {}).filter(function (k) {
        return k !== "alertname" && k !== "severity"; // already in their own columns
      }).map(function (k) { return k + "=" + a.labels[k]; });
      tr.title = a.summary || "";
      cell(tr, a.name + (labels.length ? " {" + labels.join(", ") + "}" : ""));
      cell(tr, badge(a.state, a.state === "firing" ? "bad" : "warn"));
      cell(tr, a.severity); cell(tr, num(a.value) ? a.value.toPrecision(4) : "–");
      cell(tr, num(a.since) ? new Date(a.since * 1000).toLocaleTimeString() : "–");
      return tr;
    });
    var note = alerts.rules + alerts.slos ? "none firing or pending" : "no alert rules configured";
    fill("alerts", rows, note, 5);
  }

  // --- the findings panel (GET /admin/analytics, shaped by findings.js)
  function severityKind(s) { return s === "critical" || s === "high" ? "bad" : s === "medium" ? "warn" : "ok"; }

  function renderFindings(f, when) {
    var panel = el("findings");
    el("findings-sentence").textContent = f.sentence;
    el("findings-capacity").textContent = f.capacity || "";
    el("findings-when").textContent = "(last " + FINDINGS_SINCE + ", analysed " + when.toLocaleTimeString() + ")";
    panel.dataset.saturatesFirst = f.saturates_first || "";
    panel.dataset.anomalies = String(f.counts.anomalies);
    fill("insights", f.insights.map(function (i) {
      var tr = document.createElement("tr");
      tr.dataset.type = i.type;
      cell(tr, badge(i.severity, severityKind(i.severity))); cell(tr, i.type); cell(tr, i.message);
      return tr;
    }), "no insights: nothing moved", 3);
    fill("recommendations", f.recommendations.map(function (r) {
      var tr = document.createElement("tr");
      tr.dataset.action = r.action;
      tr.title = r.reason;
      cell(tr, badge(r.priority, severityKind(r.priority))); cell(tr, r.action); cell(tr, r.impact);
      return tr;
    }), "no recommendations", 3);
    anomalyMarks = f.anomalies;
    CHARTS.forEach(function (spec) { spec.plot.redraw(false, false); });
  }

  var findingsTimer = null, findingsDue = true; // due: asked for at the next good poll

  function pollFindings() {
    getJSON("/admin/analytics?since=" + FINDINGS_SINCE).then(function (r) {
      if (!running) return;
      if (r.status === 200) renderFindings(window.PRSMFindings.shape(r.body), new Date());
      else el("findings-sentence").textContent = "analytics: " + errorText(r);
      findingsTimer = window.setTimeout(pollFindings, FINDINGS_EVERY_MS);
    }).catch(function (e) {
      el("findings-sentence").textContent = "analytics unreachable: " + e.message;
      if (running) findingsTimer = window.setTimeout(pollFindings, FINDINGS_EVERY_MS);
    });
  }

  // --- the poll loop
  var timer = null, running = false, backfilled = false, lastStamp = null;

  function stop() {
    running = false;
    if (timer) window.clearTimeout(timer);
    if (findingsTimer) window.clearTimeout(findingsTimer);
    timer = findingsTimer = null;
  }

  function start() {
    stop();
    running = true;
    findingsDue = true;
    poll();
  }

  // auto-scaling off (404): asked again only every SCALING_RECHECK polls, not each interval
  var SCALING_RECHECK = 30, scalingSkips = 0;
  var NO_SCALING = Promise.resolve({ status: 404, body: null });

  function scalingReply() {
    if (scalingSkips > 0) { scalingSkips--; return NO_SCALING; }
    return getJSON("/admin/scaling").then(function (r) {
      if (r.status === 404) scalingSkips = SCALING_RECHECK;
      return r;
    });
  }

  function poll() {
    var paths = ["/admin/metrics/current", "/admin/alerts", "/admin/nodes"];
    Promise.all(paths.map(getJSON).concat([scalingReply()])).then(function (r) {
      var current = r[0];
      if (current.status === 401 || current.status === 403) {
        stop();
        window.sessionStorage.removeItem(KEY_STORE);
        setStatus("error", "admin key needed");
        askForKey(errorText(current));
        return;
      }
      if (current.status !== 200) {
        setStatus("error", errorText(current));
        return schedule(5000);
      }
      var c = current.body;
      el("forget-key").hidden = !adminKey();
      var nodes = r[2].status === 200 ? r[2].body.nodes : null;
      var scaling = r[3].status === 200 ? r[3].body.scaling : null;
      var fresh = c.timestamp !== lastStamp;
      lastStamp = c.timestamp;
      var first = !backfilled;
      backfilled = true;
      if (findingsDue) { findingsDue = false; pollFindings(); }
      var ready = first ? Promise.all(CHARTS.map(backfill)) : Promise.resolve();
      return ready.then(function () {
        renderCurrent(c);
        CHARTS.forEach(function (spec) { addPoint(spec, c); });
        renderNodes(c, nodes);
        renderReplicas(scaling, nodes);
        if (r[1].status === 200) renderAlerts(r[1].body);
        setStatus(fresh ? "live" : "stale", fresh ? "live" : "waiting for the next collection");
        var every = num(c.interval) ? c.interval : 1;
        el("updated").textContent = "collected " + new Date(c.timestamp * 1000).toLocaleTimeString() +
          ", every " + every.toFixed(1) + " s";
        schedule(Math.max(MIN_POLL_MS, Math.round(every * 1000)));
      });
    }).catch(function (e) {
      setStatus("error", "gateway unreachable: " + e.message);
      schedule(5000);
    });
  }

  function schedule(delay) { if (running) timer = window.setTimeout(poll, delay); }

  CHARTS.forEach(makeChart);
  start();
})();
