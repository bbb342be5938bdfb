"""`--tls`: the server's TLS context (ALPN h2 and http/1.1), from the user's certificate or a local CA.

The local CA is made once with `cryptography` and kept in `<cache>/tls/` (ca.pem, ca-key.pem); clients trust
`ca.pem` (see the README). The server certificate is signed by it for localhost, 127.0.0.1, ::1 and any
`--tls-host` names, and is re-issued whenever those names change or it nears expiry.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from .transports import alpn_protocols

DEFAULT_HOSTS = ("localhost", "127.0.0.1", "::1")
_CA_NAME = "Bedrock Emulator Local CA"


def tls_dir(cache_dir: Path) -> Path:
    return cache_dir / "tls"


def server_context(cert: Path, key: Path) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2  # RFC 9113 9.2: HTTP/2 over TLS 1.2 or later
    context.load_cert_chain(cert, key)
    context.set_alpn_protocols(alpn_protocols())
    return context


@contextmanager
def _locked(folder: Path) -> Iterator[None]:
    """One process at a time makes the CA and certificate (servers in parallel test runs share the cache)."""
    folder.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # Windows: no advisory locks; the atomic writes still keep every file whole
        yield
        return
    with open(folder / ".lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def ensure_ca(cache_dir: Path) -> Path:
    """The local CA certificate's path, creating the CA on first use."""
    with _locked(tls_dir(cache_dir)):
        return _ensure_ca(cache_dir)


def _ensure_ca(cache_dir: Path) -> Path:
    folder = tls_dir(cache_dir)
    cert_path, key_path = folder / "ca.pem", folder / "ca-key.pem"
    if cert_path.exists() and key_path.exists():
        return cert_path
    folder.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, _CA_NAME)])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    _write_private(key_path, key)
    _write_atomic(cert_path, cert.public_bytes(serialization.Encoding.PEM))
    return cert_path


def local_certificate(cache_dir: Path, hosts: list[str]) -> tuple[Path, Path]:
    """A server certificate (cert, key paths) signed by the local CA for the default names plus `hosts`."""
    with _locked(tls_dir(cache_dir)):
        return _local_certificate(cache_dir, list(dict.fromkeys([*DEFAULT_HOSTS, *hosts])))


def _local_certificate(cache_dir: Path, names: list[str]) -> tuple[Path, Path]:
    ca_path = _ensure_ca(cache_dir)
    folder = tls_dir(cache_dir)
    cert_path, key_path = folder / "server.pem", folder / "server-key.pem"
    if cert_path.exists() and key_path.exists() and _covers(cert_path, names):
        return cert_path, key_path
    ca_cert = x509.load_pem_x509_certificate(ca_path.read_bytes())
    ca_key = serialization.load_pem_private_key((folder / "ca-key.pem").read_bytes(), password=None)
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=365))  # under 398 days: what macOS and browsers accept
        .add_extension(x509.SubjectAlternativeName([_san(name) for name in names]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(True, False, False, False, False, False, False, False, False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    _write_private(key_path, key)
    _write_atomic(cert_path, cert.public_bytes(serialization.Encoding.PEM))
    return cert_path, key_path


def _san(name: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)


def _covers(cert_path: Path, names: list[str]) -> bool:
    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (ValueError, x509.ExtensionNotFound):
        return False
    have = {str(v) for v in sans.get_values_for_type(x509.DNSName)}
    have |= {str(v) for v in sans.get_values_for_type(x509.IPAddress)}
    wanted = {str(ipaddress.ip_address(n)) if _is_ip(n) else n for n in names}
    fresh = cert.not_valid_after_utc - dt.datetime.now(dt.timezone.utc) > dt.timedelta(days=30)
    return wanted <= have and fresh


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
        return True
    except ValueError:
        return False


def _write_private(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    data = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    _write_atomic(path, data, mode=0o600)


def _write_atomic(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Two servers starting at once must never read a half-written file."""
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    os.replace(temp, path)


def context_for(cache_dir: Path, cert: Path | None = None, key: Path | None = None, hosts: list[str] | None = None
                ) -> ssl.SSLContext:
    """`--tls`: the user's certificate and key when given, else one from the local CA."""
    if (cert is None) != (key is None):
        raise ValueError("--tls-cert and --tls-key go together")
    if cert is None or key is None:
        cert, key = local_certificate(cache_dir, hosts or [])
    return server_context(cert, key)
