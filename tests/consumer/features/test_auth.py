"""Token sources (fixed, file reloaded on change and on demand) and TLS / mTLS contexts."""

from __future__ import annotations

import base64
import os
import ssl
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest
from aiohttp import web
from prometheus_client import CollectorRegistry

from consumer.clock import ManualClock
from consumer.config import FeatureConfig
from consumer.errors import ConfigError, FeaturesUnavailableError
from consumer.features.auth import TokenSource, bearer_header, build_ssl_context
from consumer.features.http import HttpFeatureSource
from consumer.metrics import Metrics
from tests.feast.fake_server import answer


def test_fixed_token_and_masked_repr() -> None:
    tokens = TokenSource("  abc123  ")
    assert tokens.current() == "abc123"
    assert tokens.reloadable is False
    assert tokens.reload() is False
    assert "abc123" not in repr(tokens)
    assert bearer_header(tokens.current()) == {"Authorization": "Bearer abc123"}
    assert bearer_header(TokenSource().current()) == {}


def test_token_file_is_reread_when_it_changes(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text("first\n")
    tokens = TokenSource("ignored-when-a-file-is-set", path)
    assert tokens.current() == "first"
    path.write_text("second-token\n")  # a different size: the stat changes
    assert tokens.current() == "second-token"
    assert "second-token" not in repr(tokens)


def test_reload_forces_a_read_even_with_an_unchanged_stat(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text("aaaa")
    tokens = TokenSource(token_file=path)
    assert tokens.current() == "aaaa"
    stat = path.stat()
    with path.open("r+") as handle:
        handle.write("bbbb")
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert tokens.current() == "aaaa"  # same mtime, size and inode: not re-read
    assert tokens.reload() is True
    assert tokens.current() == "bbbb"
    assert tokens.reload() is False  # nothing new


def test_unreadable_token_file_is_unavailability_without_content(tmp_path: Path) -> None:
    tokens = TokenSource(token_file=tmp_path / "absent")
    with pytest.raises(FeaturesUnavailableError, match="token file"):
        tokens.current()


def test_ssl_context_rejects_bad_material(tmp_path: Path) -> None:
    assert build_ssl_context("", "", "") is None
    bad = tmp_path / "ca.pem"
    bad.write_text("not a certificate")
    with pytest.raises(ConfigError, match="invalid TLS material"):
        build_ssl_context(str(bad), "", "")
    with pytest.raises(ConfigError, match="client_key given without client_cert"):
        build_ssl_context("", "", str(bad))


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CA, a server certificate for 127.0.0.1 and a client certificate, all signed by the CA."""
    d = tmp_path_factory.mktemp("pki")
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out",
             "ca.pem", "-days", "2", "-subj", "/CN=test-ca", cwd=d)  # fmt: skip
    (d / "san.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    for name in ("server", "client"):
        _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out",
                 f"{name}.csr", "-subj", f"/CN={name}", cwd=d)  # fmt: skip
        _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
                 "-CAcreateserial", "-out", f"{name}.pem", "-days", "2", "-extfile", "san.ext",
                 cwd=d)  # fmt: skip
    return d


@pytest.fixture
async def mtls_url(pki: Path) -> AsyncIterator[str]:
    async def handle(request: web.Request) -> web.Response:
        doc = await request.json()
        entity, ids = next(iter(doc["entities"].items()))
        return web.json_response(answer(entity, ids, doc["features"]))

    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(pki / "ca.pem"))
    context.load_cert_chain(str(pki / "server.pem"), str(pki / "server.key"))
    context.verify_mode = ssl.CERT_REQUIRED
    app = web.Application()
    app.router.add_post("/get-online-features", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context)
    await site.start()
    yield f"https://127.0.0.1:{runner.addresses[0][1]}"
    await runner.cleanup()


@pytest.mark.parametrize("with_client_cert", [True, False])
async def test_mutual_tls_with_a_custom_ca(
    pki: Path, mtls_url: str, with_client_cert: bool
) -> None:
    config = FeatureConfig(
        source="http", url=mtls_url, item_features="items:category", retries=0, timeout_ms=2000,
        ca_file="ca.pem", client_cert="client.pem" if with_client_cert else "",
        client_key="client.key" if with_client_cert else "",
    )  # fmt: skip
    registry = CollectorRegistry()
    source = HttpFeatureSource.from_config(
        config, Metrics(registry), ManualClock(), resolve=lambda p: pki / p
    )
    features = await source.fetch(np.array([1], np.int64), np.array([3], np.int64))
    await source.close()
    assert features.degraded is not with_client_cert
    assert len(features.items) == (1 if with_client_cert else 0)
    failures = registry.get_sample_value(
        "stream_scorer_feature_errors_total", {"kind": "connection"}
    )
    assert failures == (None if with_client_cert else 1.0)


EXPECTED_BASIC = "Basic " + base64.b64encode(b"feast-user:s3cr:et").decode()


@pytest.fixture
async def basic_url() -> AsyncIterator[tuple[str, list[str | None]]]:
    seen: list[str | None] = []

    async def handle(request: web.Request) -> web.Response:
        seen.append(request.headers.get("Authorization"))
        if request.headers.get("Authorization") != EXPECTED_BASIC:
            return web.json_response({"detail": "unauthorized"}, status=401)
        doc = await request.json()
        entity, ids = next(iter(doc["entities"].items()))
        return web.json_response(answer(entity, ids, doc["features"]))

    app = web.Application()
    app.router.add_post("/get-online-features", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield f"http://127.0.0.1:{runner.addresses[0][1]}", seen
    await runner.cleanup()


async def test_url_credentials_become_basic_auth_and_are_never_shown(
    basic_url: tuple[str, list[str | None]],
) -> None:
    url, seen = basic_url
    config = FeatureConfig(
        source="http", url=url.replace("://", "://feast-user:s3cr%3Aet@"),
        item_features="items:category", retries=0, timeout_ms=2000,
    )  # fmt: skip
    source = HttpFeatureSource.from_config(config, Metrics(CollectorRegistry()), ManualClock())
    features = await source.fetch(np.array([1], np.int64), np.array([3], np.int64))
    await source.close()
    assert not features.degraded
    assert seen == [EXPECTED_BASIC]
    for shown in (repr(source), repr(config)):
        assert "s3cr" not in shown


def test_url_credentials_with_a_token_is_a_config_error() -> None:
    config = FeatureConfig(source="http", url="http://u:p@feast:6566", token="t")
    with pytest.raises(ConfigError, match=r"features\.url"):
        HttpFeatureSource.from_config(config, Metrics(CollectorRegistry()), ManualClock())
