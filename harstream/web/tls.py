"""HTTPS for the gateway: the user's certificate, or a self-signed one made for this machine's addresses.

Phones only give motion to a page in a secure context, so the gateway
serves HTTPS on anything but loopback. Without ``--cert/--key`` it makes
(once, then reuses while it still covers the addresses) an ECDSA P-256
certificate for ``localhost``, the loopback addresses and this machine's
LAN addresses, valid 825 days, in ``~/.cache/harstream/web/``; its SHA-256
fingerprint is printed so a user can check the one the phone shows.

>>> import tempfile
>>> folder = Path(tempfile.mkdtemp())
>>> cert, key, fp = self_signed(folder, ["localhost", "127.0.0.1"])
>>> cert.name, key.name, oct(key.stat().st_mode & 0o777), len(fp.split(":"))
('cert.pem', 'key.pem', '0o600', 32)
>>> self_signed(folder, ["127.0.0.1"])[2] == fp   # already covered: reused
True
"""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import os
import socket
import ssl
from collections.abc import Iterable
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from harstream.errors import HarstreamError
from harstream.paths import cache_dir

VALID_DAYS = 825
"""The longest validity Apple's platforms accept for a TLS server certificate."""


def default_folder() -> Path:
    """Where the self-signed certificate is kept."""
    return cache_dir() / "web"


def machine_addresses() -> list[str]:
    """``localhost``, loopback and this machine's IP addresses (the one with a default route first)."""
    found: list[str] = []
    with contextlib.suppress(OSError), socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.connect(("192.0.2.1", 9))  # no packet is sent: this picks the interface of the default route
        found.append(probe.getsockname()[0])
    with contextlib.suppress(OSError):
        for info in socket.getaddrinfo(socket.gethostname(), None, socket.AF_INET):
            found.append(str(info[4][0]))
    return list(dict.fromkeys([a for a in found if not a.startswith("127.")] + ["127.0.0.1", "localhost"]))


def fingerprint(cert_file: Path) -> str:
    """SHA-256 of the certificate (DER), as colon-separated hex pairs."""
    try:
        cert = x509.load_pem_x509_certificate(cert_file.read_bytes())
    except (OSError, ValueError) as exc:
        raise HarstreamError(f"{cert_file}: expected a PEM certificate: {exc}") from None
    return cert.fingerprint(hashes.SHA256()).hex(":").upper()


def _covers(cert_file: Path, hosts: Iterable[str]) -> bool:
    try:
        cert = x509.load_pem_x509_certificate(cert_file.read_bytes())
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (OSError, ValueError, x509.ExtensionNotFound):
        return False
    have = {str(n) for n in names.get_values_for_type(x509.IPAddress)}
    have |= set(names.get_values_for_type(x509.DNSName))
    fresh = cert.not_valid_after_utc > datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=1)
    return fresh and set(hosts) <= have


def self_signed(folder: Path, hosts: Iterable[str]) -> tuple[Path, Path, str]:
    """``(cert, key, fingerprint)`` of a self-signed certificate in ``folder`` covering ``hosts``."""
    hosts = list(hosts)
    cert_file, key_file = folder / "cert.pem", folder / "key.pem"
    if key_file.exists() and _covers(cert_file, hosts):
        return cert_file, key_file, fingerprint(cert_file)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "harstream web (self-signed)")])
    names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=VALID_DAYS))
            .add_extension(x509.SubjectAlternativeName(names), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .sign(key, hashes.SHA256()))
    try:
        folder.mkdir(parents=True, exist_ok=True)
        key_bytes = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption())
        fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(key_bytes)
        os.chmod(key_file, 0o600)
        cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    except OSError as exc:
        raise HarstreamError(f"cannot write the certificate into {folder}: {exc.strerror or exc}") from None
    return cert_file, key_file, fingerprint(cert_file)


def server_context(cert_file: Path, key_file: Path) -> ssl.SSLContext:
    """A TLS server context for ``cert_file``/``key_file``; :class:`HarstreamError` when unusable."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(cert_file, key_file)
    except (OSError, ssl.SSLError) as exc:
        raise HarstreamError(f"--cert {cert_file} --key {key_file}: expected a PEM certificate and its "
                             f"private key: {exc}") from None
    return context
