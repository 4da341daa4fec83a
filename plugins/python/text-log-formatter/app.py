"""text-log-formatter: a Python log-formatter plugin (componentize-py).

Formats console lines as plain text:
    2025-07-27 11:30:00.123 WARNING n1 exesdb_host::store: disk almost full [store=s1]
Config (optional): `include_metadata` (bool, default true).
"""

import json
from datetime import datetime, timezone

from componentize_py_types import Err
from wit_world import exports
from wit_world.imports import types

_include_metadata = True


def _format(entry: types.LogEntry) -> str:
    ts = datetime.fromtimestamp(entry.timestamp_ms / 1000, tz=timezone.utc)
    stamp = ts.strftime("%Y-%m-%d %H:%M:%S.") + f"{entry.timestamp_ms % 1000:03d}"
    line = f"{stamp} {entry.level.name} {entry.node}"
    if entry.module is not None:
        line += f" {entry.module}"
    line += f": {entry.message}"
    if _include_metadata:
        try:
            metadata = json.loads(entry.metadata or "{}")
        except ValueError:
            metadata = {"metadata": entry.metadata}
        if metadata:
            pairs = " ".join(f"{k}={v if isinstance(v, str) else json.dumps(v)}" for k, v in sorted(metadata.items()))
            line += f" [{pairs}]"
    return line


class Formatter(exports.Formatter):
    def init(self, config: str) -> None:
        global _include_metadata
        cfg = json.loads(config or "{}")
        value = cfg.get("include_metadata", True)
        if not isinstance(value, bool):
            raise Err(types.Error_Failed("config `include_metadata` must be a boolean"))
        _include_metadata = value

    def format(self, entry: types.LogEntry) -> str:
        return _format(entry)

    def format_batch(self, entries):
        return [_format(e) for e in entries]
