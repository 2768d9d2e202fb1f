"""The local Turso's own certificate authority, for ``libsql://`` URLs that mean TLS.

``libsql://HOST:PORT/db/<name>/`` means HTTPS to most clients (PyPI ``libsql`` ignores
``?tls=0``), so the TLS mode serves HTTPS with a server certificate signed by a local CA
that lives in the data directory::

    DATA_DIR/tls/ca.pem             the CA certificate: what clients are told to trust
    DATA_DIR/tls/ca-key.pem         its key (0600), kept to sign a fresh server certificate
    DATA_DIR/tls/server.pem         the server certificate (127.0.0.1, ::1, localhost)
    DATA_DIR/tls/server-key.pem     its key (0600)

:func:`ensure_certificates` makes them on first start and reuses them afterwards, so a
client that trusts ``ca.pem`` keeps trusting restarted servers. A server certificate
that expired, will expire within a day, or was not signed by the stored CA is replaced;
a CA that expired or whose key is missing or unreadable is replaced along with it.

Clients trust the CA through their usual variables (:meth:`LocalCertificates.trust_env`):
``SSL_CERT_FILE`` for Python's ``ssl`` (aiohttp, and so ``per_user_db.connect``) and for
PyPI ``libsql`` (rustls-native-certs reads it), ``NODE_EXTRA_CA_CERTS`` for Node.
Both must be set before the client process starts: aiohttp builds its default context
when it is imported. ``SSL_CERT_FILE`` *replaces* the system trust store, which is fine
for a process that only talks to the local Turso.
"""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import logging
import os
import ssl
import tempfile
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = [
    "CA_LIFETIME",
    "SERVER_HOSTS",
    "SERVER_LIFETIME",
    "LocalCertificates",
    "ensure_certificates",
]

_log = logging.getLogger(__name__)

SERVER_HOSTS = ("127.0.0.1", "::1", "localhost")
"""The names the server certificate is valid for: the local Turso is loopback only."""

CA_LIFETIME = datetime.timedelta(days=3650)
SERVER_LIFETIME = datetime.timedelta(days=397)
"""Within the 398 days browsers and Apple's TLS stack still accept."""

_RENEW_BEFORE = datetime.timedelta(days=1)
# A certificate dated "now" may look future-dated to a client whose clock lags a little.
_BACKDATE = datetime.timedelta(minutes=5)


@dataclass(frozen=True, slots=True, kw_only=True)
class LocalCertificates:
    """The certificate files of one data directory (``DATA_DIR/tls``)."""

    directory: Path

    @property
    def ca_path(self) -> Path:
        """The CA certificate (PEM): point ``SSL_CERT_FILE``/``NODE_EXTRA_CA_CERTS`` here."""
        return self.directory / "ca.pem"

    @property
    def ca_key_path(self) -> Path:
        return self.directory / "ca-key.pem"

    @property
    def server_cert_path(self) -> Path:
        return self.directory / "server.pem"

    @property
    def server_key_path(self) -> Path:
        return self.directory / "server-key.pem"

    def server_context(self) -> ssl.SSLContext:
        """What the server listens with: the server certificate, TLS 1.2 or later."""
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(self.server_cert_path, self.server_key_path)
        return context

    def client_context(self) -> ssl.SSLContext:
        """A verifying client context that trusts this CA only (for tests and tools)."""
        return ssl.create_default_context(cafile=str(self.ca_path))

    def trust_env(self) -> dict[str, str]:
        """The variables that make Python (and PyPI ``libsql``) and Node trust the CA."""
        return {"SSL_CERT_FILE": str(self.ca_path), "NODE_EXTRA_CA_CERTS": str(self.ca_path)}


def ensure_certificates(
    directory: str | os.PathLike[str], *, now: datetime.datetime | None = None
) -> LocalCertificates:
    """The CA and server certificate in ``directory``, made or renewed as needed.

    ``now`` (timezone-aware; default the real time) decides what has expired. It is not
    the local Turso's token clock: clients check certificates against the real time.
    """
    now = now or datetime.datetime.now(datetime.UTC)
    certificates = LocalCertificates(directory=Path(directory))
    certificates.directory.mkdir(parents=True, exist_ok=True)
    ca = _usable_ca(certificates, now)
    if ca is None:
        ca = _new_ca(now)
        _write_key(certificates.ca_key_path, ca[1])
        _write(certificates.ca_path, ca[0].public_bytes(serialization.Encoding.PEM))
        _log.info("made a local certificate authority: %s", certificates.ca_path)
    ca_cert, ca_key = ca
    if not _server_cert_is_usable(certificates, ca_cert, now):
        cert, key = _new_server_cert(ca_cert, ca_key, now)
        _write_key(certificates.server_key_path, key)
        _write(certificates.server_cert_path, cert.public_bytes(serialization.Encoding.PEM))
        _log.info("made a server certificate: %s", certificates.server_cert_path)
    return certificates


# --- checking what is stored ----------------------------------------------------------


def _usable_ca(
    certificates: LocalCertificates, now: datetime.datetime
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None:
    try:
        cert = x509.load_pem_x509_certificate(certificates.ca_path.read_bytes())
        key = serialization.load_pem_private_key(
            certificates.ca_key_path.read_bytes(), password=None
        )
    except FileNotFoundError:
        return None
    except ValueError:
        _log.warning("unreadable CA in %s; making a new one", certificates.directory)
        return None
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        return None
    if key.public_key() != cert.public_key():
        _log.warning("ca-key.pem does not belong to ca.pem; making a new CA")
        return None
    if cert.not_valid_after_utc - _RENEW_BEFORE <= now:
        _log.warning("the local CA expired; making a new one (trust the new ca.pem)")
        return None
    return cert, key


def _server_cert_is_usable(
    certificates: LocalCertificates, ca_cert: x509.Certificate, now: datetime.datetime
) -> bool:
    try:
        cert = x509.load_pem_x509_certificate(certificates.server_cert_path.read_bytes())
        key = serialization.load_pem_private_key(
            certificates.server_key_path.read_bytes(), password=None
        )
    except (FileNotFoundError, ValueError):
        return False
    try:
        cert.verify_directly_issued_by(ca_cert)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return (
        isinstance(key, ec.EllipticCurvePrivateKey)
        and key.public_key() == cert.public_key()
        and cert.not_valid_before_utc <= now < cert.not_valid_after_utc - _RENEW_BEFORE
    )


# --- making certificates --------------------------------------------------------------


def _new_key() -> ec.EllipticCurvePrivateKey:
    # P-256: accepted by OpenSSL, Node and rustls (PyPI libsql), and instant to generate.
    return ec.generate_private_key(ec.SECP256R1())


def _new_ca(now: datetime.datetime) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = _new_key()
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "per-user-db local Turso"),
            x509.NameAttribute(NameOID.COMMON_NAME, "per-user-db local Turso CA"),
        ]
    )
    public_key = key.public_key()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _BACKDATE)
        .not_valid_after(now + CA_LIFETIME)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert, key


def _general_name(host: str) -> x509.GeneralName:
    # An IP address must be an iPAddress entry: clients do not match it against DNS names.
    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        return x509.DNSName(host)


def _new_server_cert(
    ca_cert: x509.Certificate, ca_key: ec.EllipticCurvePrivateKey, now: datetime.datetime
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = _new_key()
    public_key = key.public_key()
    names = [_general_name(host) for host in SERVER_HOSTS]
    ca_ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_cert.subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _BACKDATE)
        .not_valid_after(min(now + SERVER_LIFETIME, ca_cert.not_valid_after_utc))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    return cert, key


# --- files ----------------------------------------------------------------------------


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    _write(path, pem, mode=0o600)


def _write(path: Path, data: bytes, *, mode: int = 0o644) -> None:
    """Replace ``path`` atomically, so a crash never leaves half a certificate."""
    # mkstemp creates the file 0600: a key is never readable by others, not even briefly.
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.chmod(temporary, mode)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
