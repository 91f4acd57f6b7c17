"""Credentials and transport security of the Schema Registry client (standard library only).

`RegistryAuth` hands out the ``Authorization`` header: HTTP basic auth from ``user:password``
(Confluent's ``basic.auth.user.info``) or a bearer token, each given as a value or as a file that
is re-read when its modification time, size or inode changes and, forcibly, after a 401 (a rotated
credential may have been written within the same mtime tick). `split_user_info` takes the
credentials out of a registry URL; `registry_ssl_context` verifies the registry with a custom CA
bundle and optionally presents a client certificate (mTLS).

Invariants: a credential never reaches a log line, an exception message or a ``repr``; errors
name the file, never its content. A file is read only when its stat changed or a reload is
forced, never per request otherwise.
"""

from __future__ import annotations

import base64
import ssl
import urllib.parse
from pathlib import Path

from schemas.errors import SchemaError

_Stamp = tuple[int, int, int]  # (mtime_ns, size, inode)


class CredentialsUnavailable(SchemaError):
    """The credentials file cannot be read; the message names the file only. The registry
    client reports it as a (retriable) `RegistryError`."""


class SecretSource:
    """One secret: a fixed value, or the content of a file that may be rotated."""

    def __init__(self, value: str = "", file: Path | None = None) -> None:
        if bool(value) == (file is not None):
            raise ValueError("give a secret value or a file, exactly one")
        self._fixed = value
        self._file = file
        self._stamp: _Stamp | None = None
        self._cached = ""

    def current(self) -> str:
        if self._file is None:
            return self._fixed
        stamp = self._stat()
        if stamp != self._stamp:
            self._read(stamp)
        return self._cached

    def reload(self) -> bool:
        """Re-read the file now; True if the secret changed (always False for a fixed value)."""
        if self._file is None:
            return False
        before = self._cached
        self._read(self._stat())
        return self._cached != before

    def _stat(self) -> _Stamp:
        assert self._file is not None
        try:
            st = self._file.stat()
        except OSError as exc:
            raise CredentialsUnavailable(f"cannot read {self._file}: {exc.strerror}") from None
        return (st.st_mtime_ns, st.st_size, st.st_ino)

    def _read(self, stamp: _Stamp) -> None:
        assert self._file is not None
        try:
            text = self._file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            raise CredentialsUnavailable(f"cannot read {self._file}") from None
        self._cached = text.strip()
        self._stamp = stamp

    def __repr__(self) -> str:
        return f"SecretSource(file={self._file})" if self._file else "SecretSource(***)"


class RegistryAuth:
    """The Authorization header for a registry: ``basic`` (user:password) or ``bearer``."""

    def __init__(self, scheme: str, secret: SecretSource) -> None:
        if scheme not in ("basic", "bearer"):
            raise ValueError(f"unknown auth scheme {scheme!r}")
        self.scheme = scheme
        self._secret = secret

    @classmethod
    def basic(cls, user_info: str = "", file: Path | None = None) -> RegistryAuth:
        return cls("basic", SecretSource(user_info, file))

    @classmethod
    def bearer(cls, token: str = "", file: Path | None = None) -> RegistryAuth:
        return cls("bearer", SecretSource(token, file))

    def headers(self) -> dict[str, str]:
        secret = self._secret.current()
        if not secret:
            return {}
        if self.scheme == "bearer":
            return {"Authorization": f"Bearer {secret}"}
        encoded = base64.b64encode(secret.encode("utf-8")).decode("ascii")
        return {"Authorization": f"Basic {encoded}"}

    def reload(self) -> bool:
        return self._secret.reload()

    def __repr__(self) -> str:
        return f"RegistryAuth({self.scheme}, {self._secret!r})"


def split_user_info(url: str) -> tuple[str, str | None]:
    """(the URL without user info, ``user:password`` percent-decoded, or None)."""
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        return url, None
    if "@" not in parts.netloc:
        return url, None
    user_info, _, host = parts.netloc.rpartition("@")
    clean = urllib.parse.urlunsplit(parts._replace(netloc=host))
    if not user_info:
        return clean, None
    user, sep, password = user_info.partition(":")
    decoded = urllib.parse.unquote(user) + (sep + urllib.parse.unquote(password) if sep else "")
    return clean, decoded


def registry_ssl_context(
    ca_file: str = "", client_cert: str = "", client_key: str = ""
) -> ssl.SSLContext | None:
    """A verifying TLS context (hostname checked) with an extra CA and an optional client
    certificate; None when nothing is configured (the system's trust store applies)."""
    if client_key and not client_cert:
        raise ValueError("a client key needs a client certificate")
    if not (ca_file or client_cert):
        return None
    context = ssl.create_default_context(cafile=ca_file or None)
    if client_cert:
        context.load_cert_chain(client_cert, client_key or None)
    return context
