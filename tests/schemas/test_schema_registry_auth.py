"""The Schema Registry client's authentication and TLS against a fake that demands them."""

from __future__ import annotations

import os
import ssl
from pathlib import Path
from urllib.parse import quote

import pytest
from cryptography.hazmat.primitives import serialization

from consumer.devtools.kafka_tls import Authority, Issued, issue, make_ca, write_cert, write_key
from schemas import HttpSchemaRegistry, RegistryAuth, RegistryError, registry_ssl_context
from schemas.parsed import bundled
from tests.schemas.auth_registry import AuthRegistry, basic, serving

PASSWORD = "p@ss:w0rd/very-secret"


def with_user_info(url: str, user: str, password: str) -> str:
    return url.replace("://", f"://{quote(user, safe='')}:{quote(password, safe='')}@")


def test_credentials_in_the_url_become_basic_auth_and_leave_the_url() -> None:
    with serving(AuthRegistry(basic("alice", PASSWORD))) as fake:
        client = HttpSchemaRegistry(with_user_info(fake.url, "alice", PASSWORD))
        assert client.schema_for_id(1).fullname == bundled("ScoringJob").fullname
        assert client.id_for("ranked-value", bundled("RankedList")) == 2
    assert client.url == fake.url
    assert PASSWORD not in repr(client)
    assert "alice" not in client.url
    assert fake.seen == [basic("alice", PASSWORD)] * 2


def test_errors_never_carry_the_url_credentials() -> None:
    with serving(AuthRegistry(basic("alice", "right"))) as fake:
        client = HttpSchemaRegistry(with_user_info(fake.url, "alice", PASSWORD), timeout_s=2)
        with pytest.raises(RegistryError) as refused:
            client.schema_for_id(1)
    assert refused.value.status == 401
    assert "unauthorized" in str(refused.value)
    gone = HttpSchemaRegistry(with_user_info(fake.url, "alice", PASSWORD), timeout_s=1)
    with pytest.raises(RegistryError) as unreachable:
        gone.schema_for_id(1)  # the server is closed now
    for error in (refused.value, unreachable.value):
        assert PASSWORD not in str(error)
        assert PASSWORD not in repr(error.__cause__)
        assert PASSWORD not in error.url


def test_basic_auth_from_a_file_is_re_read_after_a_401(tmp_path: Path) -> None:
    secret = tmp_path / "user-info"
    secret.write_text("alice:old\n")
    with serving(AuthRegistry(basic("alice", "old"))) as fake:
        client = HttpSchemaRegistry(fake.url, auth=RegistryAuth.basic(file=secret))
        client.schema_for_id(1)
        fake.expected = basic("alice", "new")  # rotated on the server ...
        stat = secret.stat()
        secret.write_text("alice:new\n")  # ... and in the mounted secret, within one mtime tick
        os.utime(secret, ns=(stat.st_atime_ns, stat.st_mtime_ns))
        assert client.schema_for_id(2).fullname == bundled("RankedList").fullname
    assert fake.seen[-2:] == [basic("alice", "old"), basic("alice", "new")]


def test_bearer_token_from_value_and_file(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("tok-2\n")
    with serving(AuthRegistry("Bearer tok-1")) as fake:
        HttpSchemaRegistry(fake.url, auth=RegistryAuth.bearer("tok-1")).schema_for_id(1)
        fake.expected = "Bearer tok-2"
        client = HttpSchemaRegistry(fake.url, auth=RegistryAuth.bearer(file=token_file))
        client.schema_for_id(1)
    assert "tok-2" not in repr(client)


def test_an_unreadable_credentials_file_is_a_registry_error_naming_the_file(
    tmp_path: Path,
) -> None:
    client = HttpSchemaRegistry(
        "http://127.0.0.1:9", auth=RegistryAuth.bearer(file=tmp_path / "missing")
    )
    with pytest.raises(RegistryError, match="missing"):
        client.schema_for_id(1)


def test_url_credentials_and_explicit_auth_are_ambiguous() -> None:
    with pytest.raises(ValueError, match="carries credentials"):
        HttpSchemaRegistry("http://a:b@127.0.0.1:1", auth=RegistryAuth.bearer("t"))


def _tls_server_context(
    tmp_path: Path, ca: Authority, client_ca: Authority | None
) -> ssl.SSLContext:
    leaf = issue(ca, "registry", ("127.0.0.1",))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(
        write_cert(tmp_path / "server.pem", leaf.cert),
        write_key(tmp_path / "server.key", leaf.key, "pw"),
        "pw",
    )
    if client_ca is not None:
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_verify_locations(write_cert(tmp_path / "client-ca.pem", client_ca.cert))
    return context


def test_tls_with_a_custom_ca(tmp_path: Path) -> None:
    ca = make_ca()
    server = AuthRegistry("Bearer t", _tls_server_context(tmp_path, ca, None))
    with serving(server) as fake:
        trusting = registry_ssl_context(str(write_cert(tmp_path / "ca.pem", ca.cert)))
        client = HttpSchemaRegistry(fake.url, auth=RegistryAuth.bearer("t"), ssl_context=trusting)
        assert client.schema_for_id(1).fullname == bundled("ScoringJob").fullname
        untrusting = HttpSchemaRegistry(fake.url, timeout_s=2, auth=RegistryAuth.bearer("t"))
        with pytest.raises(RegistryError, match="CERTIFICATE_VERIFY_FAILED"):
            untrusting.schema_for_id(2)


def test_mutual_tls(tmp_path: Path) -> None:
    ca = make_ca()
    client_leaf = issue(ca, "scorer")
    server = AuthRegistry("Bearer t", _tls_server_context(tmp_path, ca, ca))
    ca_file = str(write_cert(tmp_path / "ca.pem", ca.cert))
    cert = str(write_cert(tmp_path / "client.pem", client_leaf.cert))
    key_file = tmp_path / "client.key"
    key_file.write_bytes(_unencrypted(client_leaf))
    with serving(server) as fake:
        with_cert = registry_ssl_context(ca_file, cert, str(key_file))
        client = HttpSchemaRegistry(fake.url, auth=RegistryAuth.bearer("t"), ssl_context=with_cert)
        assert client.schema_for_id(1).fullname == bundled("ScoringJob").fullname
        without = HttpSchemaRegistry(
            fake.url, timeout_s=2, auth=RegistryAuth.bearer("t"),
            ssl_context=registry_ssl_context(ca_file),
        )  # fmt: skip
        with pytest.raises(RegistryError):
            without.schema_for_id(2)


def _unencrypted(issued: Issued) -> bytes:
    data: bytes = issued.key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return data


def test_a_client_key_needs_a_client_certificate() -> None:
    with pytest.raises(ValueError, match="client certificate"):
        registry_ssl_context(client_key="/etc/key.pem")
