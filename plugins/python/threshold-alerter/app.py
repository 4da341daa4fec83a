"""threshold-alerter: a Python subscriber plugin.

Watches store throughput (`ThroughputMetric` on `metrics`, topics
`store_metrics:>`) and publishes a `SystemAlert` (category performance) on
`alerts` when `rate_per_sec` goes above the configured threshold; it alerts
again only after the rate has come back under it.

Config (manifest `[config]`, all optional):
- `threshold` (number, default 1000): events per second that trigger an alert.
- `severity` ("info" | "warning" | "error" | "critical", default "warning").
"""

import json

from componentize_py_types import Err
from wit_world import exports
from wit_world.exports.handler import BatchFailure
from wit_world.imports import host, exesdb_plugin_types as types

SEVERITIES = ("info", "warning", "error", "critical")

_threshold = 1000.0
_severity = "warning"
_above = set()


def _fail(text):
    raise Err(types.Error_InvalidPayload(text))


class Handler(exports.Handler):
    def init(self, config: str) -> None:
        global _threshold, _severity
        try:
            cfg = json.loads(config or "{}")
        except ValueError as e:
            raise Err(types.Error_Failed(f"invalid config: {e}"))
        threshold = cfg.get("threshold", 1000)
        if not isinstance(threshold, (int, float)) or isinstance(threshold, bool) or threshold < 0:
            raise Err(types.Error_Failed(f"config `threshold` must be a non-negative number, got {threshold!r}"))
        severity = cfg.get("severity", "warning")
        if severity not in SEVERITIES:
            raise Err(types.Error_Failed(f"config `severity` must be one of {', '.join(SEVERITIES)}, got {severity!r}"))
        _threshold, _severity = float(threshold), severity
        _above.clear()

    def on_message(self, message: types.Message) -> None:
        if message.kind != "ThroughputMetric":
            return
        try:
            metric = json.loads(message.payload)
            operation = str(metric["operation"])
            rate = float(metric["rate_per_sec"])
        except (ValueError, KeyError, TypeError) as e:
            _fail(f"ThroughputMetric payload: {e!r}")
        key = (message.topic, operation)
        if rate <= _threshold:
            if key in _above:
                _above.discard(key)
                host.log(types.LogLevel.INFO, f"{operation} on {message.topic} back under {_threshold:g}/s")
            return
        if key in _above:
            return
        name = host.plugin_name()
        alert = {
            "alert_id": f"{name}-{message.id}",
            "severity": _severity,
            "category": "performance",
            "title": f"Throughput of {operation} above {_threshold:g}/s",
            "description": f"{operation} on {message.topic} runs at {rate:g}/s",
            "source": name,
            "metadata": {"rate_per_sec": rate, "threshold": _threshold, "message_id": message.id},
            "requires_ack": _severity in ("error", "critical"),
        }
        options = host.PublishOptions(correlation_id=message.correlation_id, causation_id=message.id)
        host.publish(types.Channel.ALERTS, "system_alert:performance", "SystemAlert", json.dumps(alert), options)
        _above.add(key)
        host.log(types.LogLevel.WARNING, f"alert: {operation} at {rate:g}/s (threshold {_threshold:g})")

    def on_batch(self, messages):
        failures = []
        for index, message in enumerate(messages):
            try:
                self.on_message(message)
            except Err as e:
                failures.append(BatchFailure(index=index, error=e.value))
        return failures

    def shutdown(self) -> None:
        pass
