"""Client for a Confluent-compatible Schema Registry over HTTP (stdlib ``urllib`` only).

Used calls: ``GET /schemas/ids/{id}`` to resolve a writer schema and
``POST /subjects/{subject}/versions`` to register a schema (idempotent: an already registered
schema returns its existing id).

Authentication (`schemas.registry_auth`): HTTP basic auth or a bearer token, each from a value or
a re-read file; credentials in the URL (``https://user:pass@host``) are accepted, taken out of it
and sent as basic auth. TLS with a custom CA and client certificates through ``ssl_context``.

Invariants: every request has a timeout; successful answers are cached for the life of the
object (ids are immutable in a registry), failures are not; transport failures, 5xx answers and
unparseable bodies raise :class:`RegistryError` (retriable), a 404 for an id raises
:class:`UnknownSchemaIdError`; nothing else escapes. ``url`` never holds credentials, so no
error, ``repr`` or log line can print them; a 401 re-reads a credentials file and retries once.
"""

from __future__ import annotations

import json
import ssl
import threading
import urllib.error
import urllib.parse
import urllib.request
from typing import Any, TypeVar

from schemas.errors import InvalidSchemaError, RegistryError, UnknownSchemaIdError
from schemas.parsed import ParsedSchema, parse
from schemas.registry_auth import CredentialsUnavailable, RegistryAuth, split_user_info

CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"
#: Confluent error code for "schema not found".
SCHEMA_NOT_FOUND = 40403

_T = TypeVar("_T")


class HttpSchemaRegistry:
    """Resolves and registers schemas on a Schema Registry, caching what it learns."""

    def __init__(
        self,
        url: str,
        timeout_s: float = 5.0,
        *,
        auth: RegistryAuth | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        if timeout_s <= 0:
            raise ValueError("timeout_s must be positive")
        clean, user_info = split_user_info(url)
        if user_info is not None:
            if auth is not None:
                raise ValueError("the registry URL carries credentials and auth is given too")
            auth = RegistryAuth.basic(user_info)
        self.url = clean.rstrip("/")
        self.timeout_s = timeout_s
        self._auth = auth
        self._ssl = ssl_context
        self._lock = threading.Lock()
        self._by_id: dict[int, ParsedSchema] = {}
        self._ids: dict[tuple[str, str], int] = {}

    def __repr__(self) -> str:
        return (
            f"HttpSchemaRegistry(url={self.url!r}, timeout_s={self.timeout_s}, auth={self._auth!r})"
        )

    def schema_for_id(self, schema_id: int) -> ParsedSchema:
        cached = self._by_id.get(schema_id)
        if cached is not None:
            return cached
        status, body = self._request("GET", f"/schemas/ids/{int(schema_id)}")
        url = f"{self.url}/schemas/ids/{schema_id}"
        if status == 404 and _error_code(body) == SCHEMA_NOT_FOUND:
            raise UnknownSchemaIdError(schema_id)
        self._raise_for_status(status, body, url)
        schema = self._parse_schema_answer(body, url)
        with self._lock:
            self._by_id[schema_id] = schema
        return schema

    def id_for(self, subject: str, schema: ParsedSchema) -> int:
        """Register ``schema`` under ``subject`` (or find it) and return its id."""
        key = (subject, schema.canonical)
        cached = self._ids.get(key)
        if cached is not None:
            return cached
        path = f"/subjects/{urllib.parse.quote(subject, safe='')}/versions"
        status, body = self._request("POST", path, {"schema": schema.to_json()})
        url = self.url + path
        self._raise_for_status(status, body, url)
        schema_id = _field(_json(body, url), "id", int, url)
        with self._lock:
            self._ids[key] = schema_id
            self._by_id.setdefault(schema_id, schema)
        return schema_id

    def _request(self, method: str, path: str, payload: Any = None) -> tuple[int, bytes]:
        status, body = self._send(method, path, payload)
        if status == 401 and self._auth is not None and self._reload_auth(path):
            status, body = self._send(method, path, payload)  # a rotated credential: once more
        return status, body

    def _reload_auth(self, path: str) -> bool:
        assert self._auth is not None
        try:
            return self._auth.reload()
        except CredentialsUnavailable as exc:
            raise RegistryError(str(exc), url=self.url + path) from None

    def _send(self, method: str, path: str, payload: Any) -> tuple[int, bytes]:
        data = None if payload is None else json.dumps(payload).encode()
        headers = {"Accept": CONTENT_TYPE}
        if data is not None:
            headers["Content-Type"] = CONTENT_TYPE
        try:
            headers.update(self._auth.headers() if self._auth is not None else {})
        except CredentialsUnavailable as exc:
            raise RegistryError(str(exc), url=self.url + path) from None
        request = urllib.request.Request(self.url + path, data, headers, method=method)
        try:
            with urllib.request.urlopen(
                request, timeout=self.timeout_s, context=self._ssl
            ) as response:
                return int(response.status), bytes(response.read())
        except urllib.error.HTTPError as exc:
            with exc:
                return int(exc.code), bytes(exc.read())
        except (OSError, ValueError) as exc:  # URLError, timeouts, resets, malformed URLs
            raise RegistryError(str(exc) or type(exc).__name__, url=self.url + path) from exc

    @staticmethod
    def _raise_for_status(status: int, body: bytes, url: str) -> None:
        if 200 <= status < 300:
            return
        if status in (401, 403):
            what = "unauthorized" if status == 401 else "forbidden"
            raise RegistryError(f"{what}: check the registry credentials", url=url, status=status)
        message = body[:200].decode("utf-8", "replace")
        raise RegistryError(f"unexpected answer: {message}", url=url, status=status)

    @staticmethod
    def _parse_schema_answer(body: bytes, url: str) -> ParsedSchema:
        text = _field(_json(body, url), "schema", str, url)
        try:
            return parse(text)
        except InvalidSchemaError as exc:
            raise RegistryError(f"registry returned an invalid schema: {exc}", url=url) from exc


def _error_code(body: bytes) -> int | None:
    """The Confluent ``error_code`` of an error answer, if it has one."""
    try:
        code = json.loads(body).get("error_code")
    except (ValueError, AttributeError):
        return None
    return code if isinstance(code, int) else None


def _json(body: bytes, url: str) -> dict[str, Any]:
    try:
        decoded = json.loads(body)
    except ValueError as exc:
        raise RegistryError("answer is not JSON", url=url) from exc
    if not isinstance(decoded, dict):
        raise RegistryError("answer is not a JSON object", url=url)
    return decoded


def _field(answer: dict[str, Any], name: str, kind: type[_T], url: str) -> _T:
    value = answer.get(name)
    if not isinstance(value, kind) or isinstance(value, bool):
        raise RegistryError(f"answer has no {kind.__name__} field {name!r}", url=url)
    return value
