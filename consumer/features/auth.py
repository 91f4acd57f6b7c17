"""Credentials and transport security for the feature-store client.

`TokenSource` hands out the bearer token: a fixed one from the configuration (the entry point
folds the environment into it), or the content of a token file, re-read when its modification
time, size or inode changes and, forcibly, after the server answered 401 (a rotated token may
have been written within the same mtime tick). `build_ssl_context` builds the TLS context for a
custom CA bundle and an optional client certificate (mTLS).

Invariants: a token never reaches a log line, an exception message, a ``repr`` or a metric label;
the file is read only when its stat changed or a reload is forced, never per request otherwise.
"""

from __future__ import annotations

import base64
import ssl
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from consumer.errors import ConfigError, FeaturesUnavailableError
from schemas.registry_auth import CredentialsUnavailable, SecretSource

T = TypeVar("T")


class TokenSource:
    """The current bearer token (or None): fixed, or read from a file that may be rotated.

    The file is watched by the Schema Registry client's `SecretSource` (stat, re-read on change,
    never printed); here an unreadable file is the feature store being unavailable.
    """

    def __init__(self, token: str = "", token_file: Path | None = None) -> None:
        self._fixed = token.strip() or None
        self._file = None if token_file is None else SecretSource(file=token_file)

    @property
    def reloadable(self) -> bool:
        """True when a 401 is worth a retry: the token can change under us."""
        return self._file is not None

    def current(self) -> str | None:
        """The token to send now; re-reads the file when it changed on disk."""
        if self._file is None:
            return self._fixed
        return self._guarded(self._file.current) or None

    def reload(self) -> bool:
        """Force a re-read (after a 401); True if the token differs from the one held before."""
        return self._file is not None and self._guarded(self._file.reload)

    @staticmethod
    def _guarded(read: Callable[[], T]) -> T:
        try:
            return read()
        except CredentialsUnavailable as exc:  # names the file, never its content
            raise FeaturesUnavailableError(f"cannot read the token file: {exc}") from None

    def __repr__(self) -> str:
        kind = "file" if self._file is not None else ("fixed" if self._fixed else "none")
        return f"TokenSource({kind}, token=***)"


def build_ssl_context(ca_file: str, client_cert: str, client_key: str) -> ssl.SSLContext | None:
    """A verifying TLS context with an extra CA bundle and an optional client certificate.

    None when nothing is configured: aiohttp then uses the system's default verification.
    """
    if client_key and not client_cert:
        raise ConfigError("client_key given without client_cert", key="features.client_key")
    if not (ca_file or client_cert):
        return None
    try:
        context = ssl.create_default_context(cafile=ca_file or None)
        if client_cert:
            context.load_cert_chain(client_cert, client_key or None)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"invalid TLS material: {exc}", key="features.ca_file") from exc
    return context


def basic_header(user: str, password: str) -> dict[str, str]:
    """HTTP basic auth (from credentials that were in the feature server's URL)."""
    encoded = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
    return {"Authorization": f"Basic {encoded}"}


def bearer_header(token: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"} if token else {}
