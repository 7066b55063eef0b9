"""A small scriptable OpenAI-compatible chat server on 127.0.0.1, for tests and manual runs."""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import socket
import sys
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

DEFAULT_REPLY = """\
VERDICT: management
FOCUS: M1, M2
---
This is mostly **management**: the team lacks clear objectives (M1) and an agreed way to \
organise who does what (M2).

**This week**

1. List the open tasks with one named owner and a date each, and share the list on Monday.
2. Hold a 15-minute check-in on Thursday to move anything without an owner.

**Watch for** tasks that still have two owners, or none, by Friday.
---
CONFIDENCE: 0.82
CITATIONS: management-vs-leadership#management-2, management-vs-leadership#management-3
SUMMARY: Work slips because nobody owns it, which is a question of objectives and resources.
QUESTIONS:
"""


@dataclass
class Behaviour:
    """What the server does with one request.

    ``kind`` is ``reply`` (answer ``text``, or the default reply), ``status`` (an
    OpenAI-style error body with ``status``), ``garbage`` (a 200 whose body is not
    JSON or SSE) or ``cut`` (send about half the reply, then drop the connection;
    with ``clean`` the stream ends properly but without a finish reason or [DONE]) or
    ``forever`` (stream ``text``, then ``filler`` every ``interval`` seconds until the
    client goes away) or ``trickle`` (begin the body, then send ``filler`` every
    ``interval`` seconds without ever completing a JSON body or an event: only a client
    that watches the bytes themselves can stop it). ``delay`` seconds pass before the
    first byte is sent; ``piece_chars`` streams the text in pieces of that many
    characters instead of words.
    """

    kind: str = "reply"
    text: str | None = None
    status: int = 200
    message: str | None = None
    error_code: str | None = None
    finish_reason: str = "stop"
    delay: float = 0.0
    clean: bool = False
    headers: dict[str, str] = field(default_factory=dict)
    piece_chars: int | None = None
    filler: str = "and more "
    interval: float = 0.01


def reply(
    text: str | None = None,
    *,
    delay: float = 0.0,
    finish_reason: str = "stop",
    piece_chars: int | None = None,
) -> Behaviour:
    """Answer with ``text`` (the default well-formatted answer when None)."""
    return Behaviour(
        "reply", text=text, delay=delay, finish_reason=finish_reason, piece_chars=piece_chars
    )


def trickle(*, filler: str = "x", interval: float = 0.01) -> Behaviour:
    """Begin a reply, then trickle ``filler`` forever without finishing a JSON body or an SSE
    event; it ends only when the client disconnects (counted in ``client_gone``)."""
    return Behaviour("trickle", filler=filler, interval=interval)


def forever(text: str, *, filler: str = "and more ", interval: float = 0.01) -> Behaviour:
    """Stream ``text``, then ``filler`` every ``interval`` seconds, never finishing: a runaway
    generation. It ends only when the client disconnects (counted in ``client_gone``)."""
    return Behaviour("forever", text=text, filler=filler, interval=interval)


def status(
    code: int,
    message: str | None = None,
    *,
    error_code: str | None = None,
    headers: dict[str, str] | None = None,
) -> Behaviour:
    """Fail with HTTP status ``code`` and an OpenAI-style error body."""
    return Behaviour(
        "status", status=code, message=message, error_code=error_code, headers=headers or {}
    )


def sleep(seconds: float, text: str | None = None) -> Behaviour:
    """Wait ``seconds`` before answering (to trigger client timeouts)."""
    return Behaviour("reply", text=text, delay=seconds)


def garbage() -> Behaviour:
    """A 200 response whose body is neither JSON nor SSE."""
    return Behaviour("garbage")


def cut(text: str | None = None, *, clean: bool = False) -> Behaviour:
    """Send about half of the answer, then stop."""
    return Behaviour("cut", text=text, clean=clean)


@dataclass
class RecordedRequest:
    """One request the server received."""

    method: str
    path: str
    headers: dict[str, str]
    body: Any

    @property
    def route(self) -> str:
        """The path without its query string or a trailing slash."""
        return urlsplit(self.path).path.rstrip("/")

    @property
    def query(self) -> dict[str, str]:
        return dict(parse_qsl(urlsplit(self.path).query))

    @property
    def messages(self) -> list[dict[str, Any]]:
        return list((self.body or {}).get("messages") or [])

    def content(self, role: str) -> str:
        """The text of all messages with ``role``, joined by blank lines."""
        return "\n\n".join(str(m.get("content", "")) for m in self.messages if m["role"] == role)

    @property
    def system(self) -> str:
        return self.content("system")

    @property
    def user(self) -> str:
        return self.content("user")

    @property
    def stream(self) -> bool:
        return bool((self.body or {}).get("stream"))


_ERROR_TYPES = {
    400: ("invalid_request_error", "Bad request."),
    401: ("invalid_request_error", "Incorrect API key provided."),
    403: ("permission_denied", "You are not allowed to use this model."),
    404: ("invalid_request_error", "The model `{model}` does not exist."),
    429: ("rate_limit_exceeded", "Rate limit reached. Please try again later."),
}


def _pieces(text: str) -> list[str]:
    """Split like a tokenizer would, roughly: words with their trailing whitespace."""
    return re.findall(r"\S+\s*|\s+", text) or [""]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass

    @property
    def route(self) -> str:
        """The request's path without its query string or a trailing slash."""
        return urlsplit(self.path).path.rstrip("/")

    def do_GET(self) -> None:
        if self.route.endswith("/models"):
            model = self.server.owner.model_name
            self._json(200, {"object": "list", "data": [{"id": model, "object": "model"}]})
        else:
            self._json(404, {"error": {"message": "Not found.", "type": "not_found"}})

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body: Any = json.loads(raw or b"null")
        except ValueError:
            body = raw.decode("utf-8", "replace")
        owner = self.server.owner
        owner._record(
            RecordedRequest(
                "POST", self.path, {k.lower(): v for k, v in self.headers.items()}, body
            )
        )
        if not self.route.endswith("/chat/completions"):
            self._json(404, {"error": {"message": f"Unknown path {self.path}.", "type": "nf"}})
            return
        behaviour = owner._next()
        if behaviour.delay and owner._stopping.wait(behaviour.delay):
            return
        body = body if isinstance(body, dict) else {}
        model = str(body.get("model") or owner.model_name)
        # A client that gave up (a timeout test) has nobody left to answer.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            self._answer(behaviour, body, model)

    def _answer(self, behaviour: Behaviour, body: dict[str, Any], model: str) -> None:
        b = behaviour
        if behaviour.kind == "status":
            kind, default = _ERROR_TYPES.get(behaviour.status, ("server_error", "Server error."))
            message = behaviour.message or default.format(model=model)
            error = {"message": message, "type": kind, "param": None, "code": b.error_code}
            self._json(behaviour.status, {"error": error}, behaviour.headers)
            return
        if behaviour.kind == "garbage":
            self._send(
                200, b"<html><body>502 Bad Gateway (but sent as 200)</body></html>", "text/html"
            )
            return
        text = self.server.owner.default_reply if behaviour.text is None else behaviour.text
        if behaviour.kind == "trickle" or (behaviour.kind == "forever" and not body.get("stream")):
            self._trickle(behaviour, stream=bool(body.get("stream")))
            return
        if body.get("stream"):
            include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
            self._stream(text, body, model, include_usage, behaviour)
        else:
            self._complete(text, body, model, behaviour)

    def _usage(self, body: dict[str, Any], text: str) -> dict[str, int]:
        prompt = sum(len(str(m.get("content", "")).split()) for m in body.get("messages") or [])
        completion = len(_pieces(text))
        usage = {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
        }
        self.server.owner.reported_usage.append(usage)
        return usage

    def _complete(self, text: str, body: dict[str, Any], model: str, b: Behaviour) -> None:
        payload = {
            "id": "chatcmpl-test",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text},
                    "finish_reason": b.finish_reason,
                }
            ],
            "usage": self._usage(body, text),
        }
        data = json.dumps(payload).encode()
        if b.kind == "cut":
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data[: len(data) // 2])
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        self._send(200, data, "application/json")

    def _stream(
        self, text: str, body: dict[str, Any], model: str, include_usage: bool, b: Behaviour
    ) -> None:
        base = {"id": "chatcmpl-test", "object": "chat.completion.chunk", "model": model}
        base["created"] = int(time.time())
        size = b.piece_chars
        pieces = [text[i : i + size] for i in range(0, len(text), size)] if size else _pieces(text)
        events: list[dict[str, Any]] = [
            {**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]}
        ]
        events += [
            {**base, "choices": [{"index": 0, "delta": {"content": p}, "finish_reason": None}]}
            for p in pieces
        ]
        end = {"index": 0, "delta": {}, "finish_reason": b.finish_reason}
        events.append({**base, "choices": [end]})
        if include_usage and b.kind != "forever":
            events.append({**base, "choices": [], "usage": self._usage(body, text)})
        lines = [f"data: {json.dumps(e)}\n\n".encode() for e in events] + [b"data: [DONE]\n\n"]
        if b.kind == "cut":
            lines = lines[: max(2, len(pieces) // 2)]

        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        delay = self.server.owner.token_delay
        if b.kind == "forever":
            lines = lines[: 1 + len(pieces)]  # the role and the text; no finish, no [DONE]
        try:
            for line in lines:
                self._chunk(line)
                if delay:
                    time.sleep(delay)
            while b.kind == "forever" and not self.server.owner._stopping.is_set():
                more = {"index": 0, "delta": {"content": b.filler}, "finish_reason": None}
                self._chunk(f"data: {json.dumps({**base, 'choices': [more]})}\n\n".encode())
                time.sleep(b.interval)
        except (BrokenPipeError, ConnectionResetError):
            self.server.owner._gone()
            raise
        if b.kind == "cut" and not b.clean:
            # Drop the connection without the closing zero-length chunk: a broken stream.
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def _trickle(self, b: Behaviour, *, stream: bool) -> None:
        """An answer whose body never ends (nor its first event, when streamed)."""
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream" if stream else "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        opening = '{"id": "chatcmpl-test", "choices": [{"message": {"content": "'
        try:
            self._chunk((f"data: {opening}" if stream else opening).encode())
            while not self.server.owner._stopping.is_set():
                self._chunk(b.filler.encode())
                time.sleep(b.interval)
        except (BrokenPipeError, ConnectionResetError):
            self.server.owner._gone()
            raise

    def _json(self, code: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        self._send(code, json.dumps(payload).encode(), "application/json", headers)

    def _send(
        self, code: int, data: bytes, content_type: str, headers: dict[str, str] | None = None
    ) -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name.replace("_", "-"), value)
        self.end_headers()
        self.wfile.write(data)
        self.wfile.flush()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    owner: OpenAIServer

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # clients that time out or disconnect are part of the tests


class OpenAIServer:
    """An OpenAI-compatible ``/v1/chat/completions`` endpoint with a queue of behaviours.

    Each request takes the next queued ``Behaviour``; with an empty queue the server
    answers ``default_reply``. Every request is recorded in ``requests``.
    """

    def __init__(
        self,
        *,
        port: int = 0,
        default_reply: str = DEFAULT_REPLY,
        model_name: str = "test-model",
        token_delay: float = 0.0,
    ) -> None:
        self.port = port
        self.default_reply = default_reply
        self.model_name = model_name
        self.token_delay = token_delay
        self.requests: list[RecordedRequest] = []
        self.reported_usage: list[dict[str, int]] = []  # usage blocks sent, in order
        self.default_behaviour = reply()  # what a request gets when nothing is queued
        self.client_gone = 0  # answers the client stopped reading (the connection closed)
        self._queue: list[Behaviour] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def enqueue(self, *behaviours: Behaviour | str) -> OpenAIServer:
        """Queue behaviours; a plain string means ``reply(text)``."""
        with self._lock:
            self._queue.extend(reply(b) if isinstance(b, str) else b for b in behaviours)
        return self

    def start(self) -> OpenAIServer:
        self._httpd = _Server(("127.0.0.1", self.port), _Handler)
        self._httpd.owner = self
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> OpenAIServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def chat_requests(self) -> list[RecordedRequest]:
        return [r for r in self.requests if r.route.endswith("/chat/completions")]

    def _record(self, request: RecordedRequest) -> None:
        with self._lock:
            self.requests.append(request)

    def _gone(self) -> None:
        with self._lock:
            self.client_gone += 1

    def _next(self) -> Behaviour:
        with self._lock:
            return self._queue.pop(0) if self._queue else self.default_behaviour


def unused_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (for connection-refused tests)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=8999)
    parser.add_argument("--reply-file", type=Path, help="answer every request with this text")
    parser.add_argument("--model", default="test-model", help="model name for GET /v1/models")
    parser.add_argument(
        "--token-delay", type=float, default=0.0, help="seconds between streamed chunks"
    )
    parser.add_argument(
        "--forever", action="store_true", help="after the reply, keep streaming and never finish"
    )
    args = parser.parse_args(argv)
    text = args.reply_file.read_text(encoding="utf-8") if args.reply_file else DEFAULT_REPLY
    server = OpenAIServer(
        port=args.port, default_reply=text, model_name=args.model, token_delay=args.token_delay
    )
    if args.forever:
        server.default_behaviour = forever(text.rsplit("\n---\n", 1)[0] + "\n")
    server.start()
    print(f"OpenAI-compatible test server on {server.base_url} (Ctrl+C to stop)", file=sys.stderr)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        server.stop()


if __name__ == "__main__":
    main()
