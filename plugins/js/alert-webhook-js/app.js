// alert-webhook-js: outbound HTTP from JavaScript with `fetch`
// (componentize-js 0.23 / StarlingMonkey). POSTs every `SystemAlert` on
// `alerts` (topics `system_alert:>`) to a webhook as JSON:
//   {"text": "ERROR alert disk-full: Disk full (node-1)", "alert_id", "severity",
//    "category", "title", "description", "source", "requires_ack"}
// with `authorization: Bearer <token>` when the secret `token` is set
// (`[secrets] token = { env = "..." }`, read through `wasi:config/store`).
//
// `fetch` returns a Promise, and `onMessage` is `async`: ComponentizeJS turns
// every export into a synchronous component function and, when it returns a
// Promise, runs the component's event loop (here: the wasi:http request and
// its response body) until the Promise settles; a rejection becomes the
// export's `error`. The build must keep StarlingMonkey's `http` feature (no
// `-d http`): without it `fetch` traps the instance.
//
// A 2xx answer is a delivery; any other status, or a request that got no
// answer (connection refused, timed out), fails the delivery (counted as
// `failed`; the bus does not redeliver it). A request the host refuses (no
// grant in `allowed_outbound_hosts`, over `http_requests_per_second`, the
// destination's breaker open) rejects the Promise with a `TypeError` too.
// Config: `url` (required, http:// or https://; `[wasi] allowed_outbound_hosts`
// must grant it).

import { log } from "exesdb:plugin/host@0.2.0";
import { get as secret } from "wasi:config/store@0.2.0-rc.1";

let url = "";
let token = undefined;

function failed(val) {
  return { tag: "failed", val };
}

async function send(message) {
  if (message.kind !== "SystemAlert") return;
  let alert;
  try {
    alert = JSON.parse(message.payload);
  } catch (e) {
    throw { tag: "invalid-payload", val: `SystemAlert payload: ${e}` };
  }
  const body = JSON.stringify({
    text: `${String(alert.severity).toUpperCase()} alert ${alert.alert_id}: ${alert.title} (${alert.source})`,
    alert_id: alert.alert_id,
    severity: alert.severity,
    category: alert.category,
    title: alert.title,
    description: alert.description,
    source: alert.source,
    requires_ack: alert.requires_ack,
  });
  const headers = { "content-type": "application/json", "user-agent": "exesdb-alert-webhook-js/0.1.0" };
  if (token) headers.authorization = `Bearer ${token}`;
  let response;
  try {
    response = await fetch(url, { method: "POST", headers, body });
  } catch (e) {
    // A dead receiver, a timeout: no answer.
    throw failed(`POST ${url}: no response: ${e}`);
  }
  // Read the answer to its end, so the exchange is complete.
  await response.text();
  if (!response.ok) throw failed(`POST ${url}: HTTP ${response.status}`);
  log("info", `alert ${alert.alert_id} sent (HTTP ${response.status})`);
}

function asError(e) {
  return e && e.tag ? e : failed(String(e));
}

export const handler = {
  init(config) {
    const cfg = JSON.parse(config || "{}");
    if (typeof cfg.url !== "string" || !/^https?:\/\/[^/]+/.test(cfg.url)) {
      throw failed(`config \`url\` must be an http:// or https:// URL, got ${JSON.stringify(cfg.url)}`);
    }
    url = cfg.url;
    token = secret("token");
  },
  async onMessage(message) {
    try {
      await send(message);
    } catch (e) {
      throw asError(e);
    }
  },
  async onBatch(messages) {
    const failures = [];
    for (const [index, m] of messages.entries()) {
      try {
        await send(m);
      } catch (e) {
        failures.push({ index, error: asError(e) });
      }
    }
    return failures;
  },
  shutdown() {},
};
