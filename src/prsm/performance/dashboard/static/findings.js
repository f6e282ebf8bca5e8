/* The findings panel's data from GET /admin/analytics: the same shaping as the terminal's
 * (prsm/performance/dashboard/_findings.py, shape_findings); a test runs both on the same
 * analyses and compares them. Pure functions, no DOM: window.PRSMFindings in the page,
 * module.exports under Node. */
(function (root) {
  "use strict";

  var MAX_ROWS = 8;
  var BOUNDS = { cpu: "the gateway's CPU", coherency: "coherency", contention: "contention" };

  function isNum(v) { return typeof v === "number" && isFinite(v); }

  function figure(v) {
    if (v === null || v === undefined) return "–";
    if (typeof v === "boolean") return v ? "true" : "false";
    if (typeof v === "number") {
      if (!isFinite(v)) return "–";
      if (Number.isInteger(v)) return String(v);
      var a = Math.abs(v);
      return v.toFixed(a >= 100 ? 0 : a >= 1 ? 2 : 4);
    }
    return String(v);
  }

  function impactLine(rec) {
    var impact = rec.potential_savings || rec.estimated_impact || {};
    return Object.keys(impact).filter(function (k) {
      var v = impact[k];
      return !(v !== null && typeof v === "object");
    }).map(function (k) { return k + "=" + figure(impact[k]); }).join(", ");
  }

  function capacityLine(capacity) {
    var nodes = capacity.nodes || {}, best = null;
    Object.keys(nodes).sort().forEach(function (id) {
      var info = nodes[id], model = info.model;
      if (model && model.binding && isNum(model.ceiling)) {
        if (best === null || (info.rate_now || 0) > (best[1].rate_now || 0)) best = [id, info];
      }
    });
    if (best === null) return null;
    var model = best[1].model;
    var line = "node " + best[0] + ": bound by " + (BOUNDS[model.binding] || model.binding) + " at " +
      model.ceiling.toFixed(0) + " req/s";
    if (isNum(model.knee_concurrency)) line += ", knee at " + model.knee_concurrency.toFixed(0) + " in flight";
    var cpu = model.cpu;
    if (cpu && isNum(cpu.cpu_seconds_per_request)) {
      line += ", " + (cpu.cpu_seconds_per_request * 1e6).toFixed(1) + " µs CPU a request";
    }
    return line;
  }

  function shape(analysis) {
    var bottleneck = analysis.bottleneck || {}, anomalies = analysis.anomalies || {};
    var insights = analysis.insights || [], recs = analysis.recommendations || [];
    var marks = {}, total = 0;
    Object.keys(anomalies).sort().forEach(function (key) {
      marks[key] = anomalies[key].map(function (a) { return [a.ts, a.value]; });
      total += anomalies[key].length;
    });
    return {
      sentence: bottleneck.sentence || "No findings yet.",
      saturates_first: bottleneck.saturates_first === undefined ? null : bottleneck.saturates_first,
      capacity: capacityLine(analysis.capacity || {}),
      insights: insights.slice(0, MAX_ROWS).map(function (i) {
        return { severity: i.severity, type: i.type, message: i.message };
      }),
      recommendations: recs.slice(0, MAX_ROWS).map(function (r) {
        return { priority: r.priority, action: r.action, reason: r.reason || "", impact: impactLine(r) };
      }),
      anomalies: marks,
      counts: { insights: insights.length, recommendations: recs.length, anomalies: total },
    };
  }

  var api = { shape: shape, figure: figure, MAX_ROWS: MAX_ROWS };
  if (typeof module === "object" && module.exports) module.exports = api;
  else root.PRSMFindings = api;
})(this);
