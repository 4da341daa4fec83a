// logfmt-formatter: a JavaScript log-formatter plugin (componentize-js).
//
// Formats each console line as logfmt:
//   ts=2025-07-27T11:30:00.123Z level=info node=n1 module=exesdb_host msg="started" store=s1
// Values with spaces, quotes or `=` are quoted with JSON escaping.
// Config (manifest [config], optional): `include_metadata` (default true),
// `time_key` (default "ts").

let includeMetadata = true;
let timeKey = "ts";

function quote(value) {
  const text = typeof value === "string" ? value : JSON.stringify(value);
  return /^[^\s"=]+$/.test(text) ? text : JSON.stringify(text);
}

function formatOne(entry) {
  const pairs = [
    [timeKey, new Date(Number(entry.timestampMs)).toISOString()],
    ["level", entry.level],
    ["node", entry.node],
  ];
  if (entry.module !== undefined && entry.module !== null) pairs.push(["module", entry.module]);
  pairs.push(["msg", entry.message]);
  if (includeMetadata) {
    let metadata = {};
    try {
      metadata = JSON.parse(entry.metadata || "{}");
    } catch (_) {
      metadata = { metadata: entry.metadata };
    }
    for (const [k, v] of Object.entries(metadata)) pairs.push([k, v]);
  }
  return pairs.map(([k, v]) => `${k}=${quote(v)}`).join(" ");
}

export const formatter = {
  init(config) {
    const cfg = JSON.parse(config || "{}");
    if (cfg.include_metadata !== undefined && typeof cfg.include_metadata !== "boolean") {
      throw { tag: "failed", val: "config `include_metadata` must be a boolean" };
    }
    if (cfg.time_key !== undefined && !/^[a-z_]+$/.test(cfg.time_key)) {
      throw { tag: "failed", val: "config `time_key` must match [a-z_]+" };
    }
    includeMetadata = cfg.include_metadata ?? true;
    timeKey = cfg.time_key ?? "ts";
  },
  format(entry) {
    return formatOne(entry);
  },
  formatBatch(entries) {
    return entries.map(formatOne);
  },
};
