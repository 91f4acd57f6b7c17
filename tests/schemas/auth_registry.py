"""A Confluent-compatible Schema Registry fake that demands credentials, optionally over TLS.

Serves the bundled schemas (ScoringJob under id 1, RankedList under id 2, the static ids) and
accepts registrations of either (answering their id). Every request must carry the expected
``Authorization`` header, else 401; what each request carried is recorded for assertions.
"""

from __future__ import annotations

import base64
import json
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from schemas.parsed import bundled, parse

IDS = {1: "ScoringJob", 2: "RankedList"}


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


class AuthRegistry(ThreadingHTTPServer):
    def __init__(self, expected_authorization: str, context: ssl.SSLContext | None = None) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.expected = expected_authorization
        self.seen: list[str | None] = []  # the Authorization header of every request
        self.tls = context is not None
        if context is not None:
            self.socket = context.wrap_socket(self.socket, server_side=True)

    @property
    def url(self) -> str:
        scheme = "https" if self.tls else "http"
        return f"{scheme}://127.0.0.1:{self.server_address[1]}"

    def answer(self, method: str, path: str, body: bytes) -> tuple[int, dict[str, Any]]:
        if method == "GET" and path.startswith("/schemas/ids/"):
            schema_id = int(path.rsplit("/", 1)[1])
            if schema_id not in IDS:
                return 404, {"error_code": 40403, "message": "Schema not found"}
            return 200, {"schema": bundled(IDS[schema_id]).to_json()}
        if method == "POST" and path.endswith("/versions"):
            canonical = parse(json.loads(body)["schema"]).canonical
            for schema_id, name in IDS.items():
                if bundled(name).canonical == canonical:
                    return 200, {"id": schema_id}
            return 422, {"error_code": 42201, "message": "unknown schema"}
        return 404, {"error_code": 404, "message": "not found"}


class _Handler(BaseHTTPRequestHandler):
    server: AuthRegistry

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _serve(self, method: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        authorization = self.headers.get("Authorization")
        self.server.seen.append(authorization)
        if authorization != self.server.expected:
            status, payload = 401, {"error_code": 40101, "message": "Unauthorized"}
        else:
            status, payload = self.server.answer(method, self.path, body)
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/vnd.schemaregistry.v1+json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")


@contextmanager
def serving(registry: AuthRegistry) -> Iterator[AuthRegistry]:
    thread = threading.Thread(target=registry.serve_forever, daemon=True)
    thread.start()
    try:
        yield registry
    finally:
        registry.shutdown()
        registry.server_close()
        thread.join(5)
