// threshold-alerter-js: the JavaScript twin of the Python threshold-alerter
// (componentize-js). Watches store throughput (`ThroughputMetric` on
// `metrics`, topics `store_metrics:>`) and publishes a performance
// `SystemAlert` on `alerts` when `rate_per_sec` goes above the threshold;
// alerts again only after the rate has come back under it.
// Config: `threshold` (number, default 1000), `severity` (default "warning").

import { log, pluginName, publish } from "exesdb:plugin/host@0.2.0";

const SEVERITIES = ["info", "warning", "error", "critical"];
let threshold = 1000;
let severity = "warning";
const above = new Set();

function fmt(n) {
  return Number.isInteger(n) ? String(n) : String(n);
}

function handle(message) {
  if (message.kind !== "ThroughputMetric") return;
  let metric;
  try {
    metric = JSON.parse(message.payload);
  } catch (e) {
    throw { tag: "invalid-payload", val: `ThroughputMetric payload: ${e}` };
  }
  const operation = String(metric.operation);
  const rate = Number(metric.rate_per_sec);
  const key = `${message.topic}|${operation}`;
  if (rate <= threshold) {
    if (above.delete(key)) log("info", `${operation} on ${message.topic} back under ${fmt(threshold)}/s`);
    return;
  }
  if (above.has(key)) return;
  const name = pluginName();
  const alert = {
    alert_id: `${name}-${message.id}`,
    severity,
    category: "performance",
    title: `Throughput of ${operation} above ${fmt(threshold)}/s`,
    description: `${operation} on ${message.topic} runs at ${fmt(rate)}/s`,
    source: name,
    metadata: { rate_per_sec: rate, threshold, message_id: message.id },
    requires_ack: severity === "error" || severity === "critical",
  };
  publish("alerts", "system_alert:performance", "SystemAlert", JSON.stringify(alert), {
    correlationId: message.correlationId,
    causationId: message.id,
  });
  above.add(key);
  log("warning", `alert: ${operation} at ${fmt(rate)}/s (threshold ${fmt(threshold)})`);
}

export const handler = {
  init(config) {
    const cfg = JSON.parse(config || "{}");
    const t = cfg.threshold ?? 1000;
    if (typeof t !== "number" || t < 0) {
      throw { tag: "failed", val: `config \`threshold\` must be a non-negative number, got ${JSON.stringify(t)}` };
    }
    const s = cfg.severity ?? "warning";
    if (!SEVERITIES.includes(s)) {
      throw { tag: "failed", val: `config \`severity\` must be one of ${SEVERITIES.join(", ")}, got ${JSON.stringify(s)}` };
    }
    threshold = t;
    severity = s;
    above.clear();
  },
  onMessage(message) {
    handle(message);
  },
  onBatch(messages) {
    const failures = [];
    messages.forEach((m, index) => {
      try {
        handle(m);
      } catch (error) {
        failures.push({ index, error: error && error.tag ? error : { tag: "failed", val: String(error) } });
      }
    });
    return failures;
  },
  shutdown() {},
};
