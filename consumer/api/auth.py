"""Bearer-token authentication of the ranking API, and the rule on where it may listen.

`TokenFile` holds the accepted tokens: one per line of ``api.tokens_file`` (blank lines and
``#`` comments ignored), re-read when the file's modification time, size or inode changes, so a
token is rotated without a restart (add the new one, move the callers, remove the old one).
`TokenFile.accepts` hashes the presented token and compares it with every accepted token's hash
using `hmac.compare_digest`: the time taken does not depend on where, or whether, it matched.
`bearer_middleware` guards the ranking path only; ``/metrics`` and the probes stay open (they
serve no ranking and carry no secret).

`check_exposure` is the safe default: a ranking API bound beyond loopback without tokens refuses
to start unless ``api.allow_unauthenticated = true`` says the user chose it.

Invariants: a token never reaches a log line, a response, a ``repr`` or a metric label; a tokens
file that cannot be read rejects every request (fail closed) and is logged once per change.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import logging
from pathlib import Path

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from consumer.errors import ConfigError
from consumer.metrics import Metrics

log = logging.getLogger(__name__)

_Stamp = tuple[int, int, int]  # (mtime_ns, size, inode)
CHALLENGE = 'Bearer realm="stream-scorer"'


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8")).digest()


class TokenFile:
    """The bearer tokens accepted now, from a file re-read when it changes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._stamp: _Stamp | None = None
        self._digests: list[bytes] = []
        self._broken = False

    def load(self) -> int:
        """Read the file now (at start-up); returns how many tokens it holds."""
        try:
            self._read(self._stat())
        except OSError as exc:
            raise ConfigError(
                f"cannot read {self.path}: {exc.strerror}", key="api.tokens_file"
            ) from None
        if not self._digests:
            raise ConfigError(f"{self.path} holds no token", key="api.tokens_file")
        return len(self._digests)

    def accepts(self, presented: str) -> bool:
        """True if ``presented`` is one of the tokens; compared in constant time."""
        self._refresh()
        wanted = _digest(presented)
        matched = False
        for digest in self._digests:  # every one compared: no early exit on a match
            matched |= hmac.compare_digest(wanted, digest)
        return matched and bool(presented)

    def _refresh(self) -> None:
        try:
            stamp = self._stat()
            if stamp != self._stamp:
                self._read(stamp)
        except OSError as exc:
            if not self._broken:
                log.error("cannot read the API tokens file %s (%s): rejecting every request",
                          self.path, exc.strerror)  # fmt: skip
            self._broken = True
            self._digests = []
            self._stamp = None

    def _stat(self) -> _Stamp:
        st = self.path.stat()
        return (st.st_mtime_ns, st.st_size, st.st_ino)

    def _read(self, stamp: _Stamp) -> None:
        lines = self.path.read_text(encoding="utf-8", errors="replace").splitlines()
        tokens = [t.strip() for t in lines if t.strip() and not t.lstrip().startswith("#")]
        self._digests = [_digest(t) for t in tokens]
        self._stamp = stamp
        if self._broken or tokens:
            log.info("API tokens loaded from %s: %d accepted", self.path, len(tokens))
        self._broken = False

    def __repr__(self) -> str:
        return f"TokenFile({self.path}, tokens=***)"


def presented_token(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def bearer_middleware(tokens: TokenFile, protected: frozenset[str], metrics: Metrics) -> Middleware:
    """An aiohttp middleware answering 401 on ``protected`` paths without a valid token."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path not in protected:
            return await handler(request)
        token = presented_token(request)
        if token is not None and tokens.accepts(token):
            return await handler(request)
        metrics.api_requests.labels(request.path, "401").inc()
        body = {"request_id": None, "error": "unauthorized",
                "reason": "missing or invalid bearer token"}  # fmt: skip
        return web.json_response(body, status=401, headers={"WWW-Authenticate": CHALLENGE})

    return middleware


def is_loopback(host: str) -> bool:
    """True for a listener only this machine (or pod) can reach."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # "", "0.0.0.0"-like names and host names: assume reachable


def check_exposure(host: str, authenticated: bool, allow_unauthenticated: bool) -> None:
    """Refuse to serve the ranking API beyond loopback without authentication, unless chosen."""
    if authenticated or allow_unauthenticated or is_loopback(host):
        return
    raise ConfigError(
        f"the ranking API would listen on {host!r} without authentication: set api.tokens_file,"
        " bind it to 127.0.0.1, or set api.allow_unauthenticated = true",
        key="api.host",
    )
