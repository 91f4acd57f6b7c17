"""TLS material for the secured local broker, generated at test time: a CA, certificates it signs.

`make_tls_material(directory)` writes a throwaway certificate authority, the broker's key and
certificate (a PKCS#12 keystore for the JVM, valid for ``127.0.0.1`` and ``localhost`` so
clients verify the hostname), and a client certificate with an encrypted key for librdkafka.
`make_ca` and `issue` are the building blocks, e.g. for a second, untrusted CA.

Invariants: every private key on disk is encrypted with the given password, except the CA's,
which never leaves memory; certificates are EC P-256 (fast to make), valid from an hour ago for
a week. Nothing here is meant for production use: it exists so tests prove TLS and hostname
verification against real certificates without shipping any.
"""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

BROKER_SUBJECT = "stream-scorer-local-broker"
DEFAULT_HOSTS = ("127.0.0.1", "localhost")
_VALID_FOR = datetime.timedelta(days=7)


@dataclass(frozen=True, slots=True)
class Authority:
    """A certificate authority held in memory: its key signs, its certificate is trusted."""

    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate

    def pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)


@dataclass(frozen=True, slots=True)
class Issued:
    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate


@dataclass(frozen=True, slots=True)
class TlsMaterial:
    """Paths of the generated files and the password protecting their keys."""

    ca_pem: Path  # the CA certificate: clients' ssl.ca.location, the broker's truststore
    broker_keystore: Path  # PKCS#12: the broker's key and certificate chain
    client_cert_pem: Path  # a client certificate (mTLS-capable clients)
    client_key_pem: Path  # its key, PKCS#8 encrypted with `password`
    password: str  # of the keystore and of every key file

    @property
    def broker_principal(self) -> str:
        """The principal Kafka derives from the broker certificate on mutual-TLS listeners."""
        return f"User:CN={BROKER_SUBJECT}"


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _builder(subject: str, issuer: x509.Name, public_key: ec.EllipticCurvePublicKey
             ) -> x509.CertificateBuilder:  # fmt: skip
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + _VALID_FOR)
    )


def make_ca(common_name: str = "stream-scorer test CA") -> Authority:
    key = ec.generate_private_key(ec.SECP256R1())
    usage = x509.KeyUsage(
        digital_signature=True, content_commitment=False, key_encipherment=False,
        data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
        encipher_only=False, decipher_only=False,
    )  # fmt: skip
    cert = (
        _builder(common_name, _name(common_name), key.public_key())
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(usage, critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return Authority(key, cert)


def _san(hosts: tuple[str, ...]) -> x509.SubjectAlternativeName:
    names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    return x509.SubjectAlternativeName(names)


def issue(ca: Authority, common_name: str, hosts: tuple[str, ...] = ()) -> Issued:
    """A leaf certificate signed by ``ca``, for servers (``hosts`` as SANs) and clients alike."""
    key = ec.generate_private_key(ec.SECP256R1())
    usages = [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
    builder = (
        _builder(common_name, ca.cert.subject, key.public_key())
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()), critical=False
        )
    )
    if hosts:
        builder = builder.add_extension(_san(hosts), critical=False)
    return Issued(key, builder.sign(ca.key, hashes.SHA256()))


def write_cert(path: Path, cert: x509.Certificate) -> Path:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path


def write_key(path: Path, key: ec.EllipticCurvePrivateKey, password: str) -> Path:
    """The key as encrypted PKCS#8 PEM, readable by the owner only."""
    data = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(password.encode()),
    )
    path.touch(mode=0o600)
    path.write_bytes(data)
    return path


def write_keystore(path: Path, issued: Issued, ca: Authority, password: str) -> Path:
    data = pkcs12.serialize_key_and_certificates(
        b"broker", issued.key, issued.cert, [ca.cert],
        serialization.BestAvailableEncryption(password.encode()),
    )  # fmt: skip
    path.touch(mode=0o600)
    path.write_bytes(data)
    return path


def make_tls_material(
    directory: Path, password: str, hosts: tuple[str, ...] = DEFAULT_HOSTS
) -> TlsMaterial:
    """A fresh CA, a broker keystore valid for ``hosts`` and a client certificate, on disk."""
    directory.mkdir(parents=True, exist_ok=True)
    ca = make_ca()
    broker = issue(ca, BROKER_SUBJECT, hosts)
    client = issue(ca, "stream-scorer-client")
    return TlsMaterial(
        ca_pem=write_cert(directory / "ca.pem", ca.cert),
        broker_keystore=write_keystore(directory / "broker.p12", broker, ca, password),
        client_cert_pem=write_cert(directory / "client.pem", client.cert),
        client_key_pem=write_key(directory / "client.key", client.key, password),
        password=password,
    )
