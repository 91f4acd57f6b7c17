"""Masking of secrets wherever configuration values or URLs are printed.

`mask_url` hides a URL's user info (user name and password alike: some services take a token as
the user name) and the values of query parameters whose names look secret; `mask_properties`
hides the values of properties whose names look secret (librdkafka's ``sasl.password``,
``ssl.key.password``, ``ssl.key.pem``...); `split_credentials` takes the user info out of a URL so
it can be sent as a header instead of being carried (and printed) with the URL.

Invariants: pure functions that never raise; a URL without secrets comes back unchanged, and a
string that cannot be parsed as a URL but holds an ``@`` is masked as a whole.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Mapping

MASK = "***"
SECRET_MARKERS = (
    "password",
    "secret",
    "token",
    "key.pem",
    "sasl.oauthbearer",
    "sasl.jaas",
    "user.info",
    "user_info",
    "credentials",
    "apikey",
    "api.key",
    "api_key",
)


def looks_secret(name: str) -> bool:
    lowered = name.lower()
    return any(marker in lowered for marker in SECRET_MARKERS)


def mask_properties(props: Mapping[str, str]) -> dict[str, str]:
    """A copy with the value of every secret-looking property replaced by ``***``."""
    return {k: (MASK if looks_secret(k) else v) for k, v in props.items()}


def mask_url(url: str) -> str:
    """``url`` with its user info and secret-looking query values replaced by ``***``."""
    if not url or ("@" not in url and "?" not in url):
        return url
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        return MASK if "@" in url else url
    if not parts.netloc and "@" in url:
        return MASK  # not a URL we understand, but it may carry credentials
    netloc = parts.netloc
    if "@" in netloc:
        netloc = f"{MASK}@{netloc.rpartition('@')[2]}"
    query = _mask_query(parts.query)
    if netloc == parts.netloc and query == parts.query:
        return url
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc, query=query))


def _mask_query(query: str) -> str:
    if not query:
        return query
    pairs = urllib.parse.parse_qsl(query, keep_blank_values=True)
    if not any(looks_secret(name) for name, _ in pairs):
        return query
    masked = [(name, MASK if looks_secret(name) else value) for name, value in pairs]
    return urllib.parse.urlencode(masked, safe="*")


def split_credentials(url: str) -> tuple[str, str | None, str | None]:
    """(url without user info, user, password); user and password are None when absent.

    Percent-escapes in the user info are decoded (``p%40ss`` is the password ``p@ss``).
    """
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        return url, None, None
    if "@" not in parts.netloc:
        return url, None, None
    userinfo, _, host = parts.netloc.rpartition("@")
    user, sep, password = userinfo.partition(":")
    clean = urllib.parse.urlunsplit(parts._replace(netloc=host))
    return (
        clean,
        urllib.parse.unquote(user),
        urllib.parse.unquote(password) if sep else None,
    )
