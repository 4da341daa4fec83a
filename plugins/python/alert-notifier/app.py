"""alert-notifier: a Python subscriber plugin that sends escalated alerts to a
chat-style incoming webhook (Slack, Mattermost, Rocket.Chat, Teams
workflows, or any receiver that takes a JSON POST).

Subscribes to `AlertEscalation` messages on `alerts` (topics
`alert_escalation:>`) and POSTs each one to `url` as JSON:

    {"text": "LEVEL2 alert db-down escalated to level2 (from level1): ...",
     "alert_id": "db-down", "level": "level2", "from_level": "level1",
     "reason": "...", "escalated_by": "alert-escalator",
     "contacts": ["team-lead"]}

with `authorization: Bearer <token>`, the token being the secret `token`
(manifest `[secrets] token = { env = "..." }` or `{ file = "..." }`, read
through `wasi:config/store`). The request goes out through the standard
`wasi:http/outgoing-handler` bindings componentize-py generates, used
synchronously (no asyncio: the call waits on the response's pollable).

Each (alert, level) is sent once: after a 2xx answer the plugin records
`sent:<alert_id>:<level>` in its durable state (`wasi:keyvalue`, bucket
`default`), which survives traps, reloads and host restarts, and skips an
escalation already recorded there. A POST that gets no response or a
non-2xx status fails the delivery (the handler's error, counted as
`failed` in `plugin status`) and records nothing, so the same escalation
published again is sent again.

Config (manifest `[config]`):
- `url` (string, required): the webhook, `http://` or `https://`; the
  manifest's `[wasi] allowed_outbound_hosts` must grant its scheme, host and
  port.
Secret: `token` (required).
"""

import json
from urllib.parse import urlsplit

from componentize_py_types import Err
from wit_world import exports
from wit_world.exports.handler import BatchFailure
from wit_world.imports import host, exesdb_plugin_types as types
from wit_world.imports import outgoing_handler, streams, wasi_config_store, wasi_keyvalue_store
from wit_world.imports import wasi_http_types as http

USER_AGENT = b"exesdb-alert-notifier/0.1.0"
# `blocking-write-and-flush` takes at most 4096 bytes a call.
WRITE_CHUNK = 4096
BUCKET = "default"

_url = None  # (scheme, authority, path_with_query, destination without the path)
_token = None


def _failed(text):
    return Err(types.Error_Failed(text))


def _parse_url(url):
    if not isinstance(url, str) or not url:
        raise _failed("config `url` is required: the webhook's http:// or https:// URL")
    parts = urlsplit(url)
    if parts.scheme == "http":
        scheme = http.Scheme_Http()
    elif parts.scheme == "https":
        scheme = http.Scheme_Https()
    else:
        raise _failed(f"config `url` must be an http:// or https:// URL, got scheme {parts.scheme!r}")
    if not parts.netloc or "@" in parts.netloc:
        raise _failed("config `url` must have a host (and no user info)")
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return scheme, parts.netloc, path, f"{parts.scheme}://{parts.netloc}"


def _post(body):
    """POSTs `body` (bytes) to the webhook; returns the response status.

    Raises `Err(error)` when no response came (the error code is in the
    message). Child resources (streams, pollables) are dropped before their
    parents, as the component model requires.
    """
    scheme, authority, path, destination = _url
    try:
        headers = http.Fields.from_list([
            ("content-type", b"application/json"),
            ("content-length", str(len(body)).encode()),
            ("authorization", b"Bearer " + _token.encode()),
            ("user-agent", USER_AGENT),
        ])
    except Err as e:
        raise _failed(f"request headers: {e.value!r}")
    request = http.OutgoingRequest(headers)
    try:
        request.set_method(http.Method_Post())
        request.set_scheme(scheme)
        request.set_authority(authority)
        request.set_path_with_query(path)
    except Err:
        raise _failed(f"invalid request for {destination}")
    out_body = request.body()
    try:
        future = outgoing_handler.handle(request, None)
    except Err as e:
        out_body.__exit__(None, None, None)
        raise _failed(f"POST {destination}: {e.value!r}")
    with future:
        try:
            with out_body.write() as out:
                for start in range(0, len(body), WRITE_CHUNK):
                    out.blocking_write_and_flush(body[start:start + WRITE_CHUNK])
        except Err:
            # A refused request's body has nowhere to go: the response
            # future tells why.
            pass
        try:
            http.OutgoingBody.finish(out_body, None)
        except Err:
            pass
        while True:
            result = future.get()
            if result is not None:
                break
            with future.subscribe() as ready:
                ready.block()
    if isinstance(result, Err):
        raise _failed(f"POST {destination}: response already taken")
    if isinstance(result.value, Err):
        raise _failed(f"POST {destination}: {result.value.value!r}")
    with result.value.value as response:
        status = response.status()
        # Read the answer to its end so the exchange is complete; the host
        # bounds its size and its time.
        with response.consume() as incoming:
            with incoming.stream() as stream:
                while True:
                    try:
                        stream.blocking_read(64 * 1024)
                    except Err as e:
                        if not isinstance(e.value, streams.StreamError_Closed):
                            host.log(types.LogLevel.DEBUG, f"reading the answer of {destination}: cut short")
                        break
    return status


def _bucket():
    try:
        return wasi_keyvalue_store.open(BUCKET)
    except Err as e:
        raise _failed(f"plugin state: {e.value!r}")


def _text(alert_id, level, from_level, reason):
    text = f"{level.upper()} alert {alert_id} escalated to {level}"
    if from_level:
        text += f" (from {from_level})"
    return f"{text}: {reason}" if reason else text


class Handler(exports.Handler):
    def init(self, config: str) -> None:
        global _url, _token
        try:
            cfg = json.loads(config or "{}")
        except ValueError as e:
            raise _failed(f"invalid config: {e}")
        url = _parse_url(cfg.get("url"))
        try:
            token = wasi_config_store.get("token")
        except Err as e:
            raise _failed(f"secret `token` cannot be read: {e.value!r}")
        if not token:
            raise _failed("secret `token` is missing: add `[secrets] token = { env = \"…\" }` (or `{ file = \"…\" }`) to the manifest")
        _url, _token = url, token
        _bucket().__exit__(None, None, None)

    def on_message(self, message: types.Message) -> None:
        if message.kind != "AlertEscalation":
            return
        try:
            esc = json.loads(message.payload)
            alert_id = str(esc["alert_id"])
            level = str(esc["to_level"])
            from_level = esc.get("from_level")
            reason = str(esc.get("escalation_reason", ""))
            contacts = [str(c) for c in esc.get("notify_contacts") or []]
        except (ValueError, KeyError, TypeError, AttributeError) as e:
            raise Err(types.Error_InvalidPayload(f"AlertEscalation payload: {e!r}"))
        key = f"sent:{alert_id}:{level}"
        with _bucket() as bucket:
            try:
                if bucket.exists(key):
                    host.log(types.LogLevel.DEBUG, f"alert {alert_id} at {level} already sent")
                    return
            except Err as e:
                raise _failed(f"plugin state: {e.value!r}")
            body = json.dumps({
                "text": _text(alert_id, level, from_level, reason),
                "alert_id": alert_id,
                "level": level,
                "from_level": from_level,
                "reason": reason,
                "escalated_by": esc.get("escalated_by"),
                "contacts": contacts,
            }).encode()
            status = _post(body)
            if not 200 <= status < 300:
                raise _failed(f"POST {_url[3]}: HTTP {status}")
            record = json.dumps({"at_ms": host.now_ms(), "status": status, "message_id": message.id})
            try:
                bucket.set(key, record.encode())
            except Err as e:
                # Sent but not recorded: a repeat would be sent again.
                host.log(types.LogLevel.WARNING, f"alert {alert_id} at {level} sent but not recorded: {e.value!r}")
        host.log(types.LogLevel.INFO, f"alert {alert_id} at {level} sent to {_url[3]} ({len(contacts)} contacts)")

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
