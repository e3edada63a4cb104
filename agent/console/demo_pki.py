"""A throw-away PKI for the console demo and tests: a CA, a server certificate for loopback, and people's certificates.

Each person's certificate carries what a CAC carries: the EDIPI as UPN (otherName
1.3.6.1.4.1.311.20.2.3, `EDIPI@mil`), an e-mail SAN and a subject CN in the DoD style
(`LAST.FIRST.EDIPI`). Certificates are written as PEM (cert + key) and PKCS#12 (for a browser);
`crl()` writes a CRL revoking the serials given. Nothing here is fit for production: the keys are
unencrypted on disk and the PKCS#12 password is the demo's.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from ..clock import Clock, system_clock
from ..config.console import ConsoleRole
from .identity import UPN_OID

P12_PASSWORD = "watchstander-demo"


@dataclass(frozen=True)
class Person:
    """A demo person: label, EDIPI, e-mail, and the roles the demo config grants (none: unmapped)."""

    label: str
    edipi: str
    last: str
    first: str
    roles: tuple[ConsoleRole, ...]

    @property
    def upn(self) -> str:
        """The UPN a CAC carries: EDIPI@mil."""
        return f"{self.edipi}@mil"

    @property
    def email(self) -> str:
        """The person's e-mail SAN."""
        return f"{self.first.lower()}.{self.last.lower()}.civ@example.mil"

    @property
    def cn(self) -> str:
        """The subject CN in the DoD style."""
        return f"{self.last}.{self.first}.{self.edipi}"


DEMO_PEOPLE: tuple[Person, ...] = (
    Person("operator", "1000000001", "OPERATOR", "OLGA", ("operator",)),
    Person("approver", "1000000002", "APPROVER", "ABE", ("approver",)),
    Person("approver-2", "1000000003", "APPROVER", "BEA", ("approver",)),
    Person("compliance", "1000000004", "COMPLIANCE", "CORA", ("compliance",)),
    Person("unmapped", "1999999999", "STRANGER", "SAM", ()),
)


@dataclass(frozen=True)
class Issued:
    """One issued certificate: PEM cert and key, a PKCS#12 bundle, and its serial number."""

    cert: Path
    key: Path
    p12: Path
    serial: int


def _der_utf8(text: str) -> bytes:
    raw = text.encode("utf-8")
    if len(raw) > 127:
        raise ValueError("a UPN longer than 127 bytes is not supported here")
    return bytes([0x0C, len(raw)]) + raw


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)


class DemoPKI:
    """A CA whose certificates are written under `folder`."""

    def __init__(self, folder: Path, *, clock: Clock = system_clock, name: str = "Watchstander Demo CA",
                 days: int = 30) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self._now = clock()
        self._days = days
        self.key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Watchstander demo"),
                             x509.NameAttribute(NameOID.COMMON_NAME, name)])
        self.cert = (
            x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
            .public_key(self.key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(self._now - datetime.timedelta(hours=1))
            .not_valid_after(self._now + datetime.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                         content_commitment=False, key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(self.key.public_key()), critical=False)
            .sign(self.key, hashes.SHA256())
        )
        self.ca_file = folder / "ca.pem"
        self.ca_file.write_bytes(self.cert.public_bytes(serialization.Encoding.PEM))

    def _leaf(self, subject: x509.Name, san: Sequence[x509.GeneralName], usage: x509.ObjectIdentifier,
              stem: str, valid_days: int | None = None) -> Issued:
        key = ec.generate_private_key(ec.SECP256R1())
        serial = x509.random_serial_number()
        builder = (
            x509.CertificateBuilder().subject_name(subject).issuer_name(self.cert.subject)
            .public_key(key.public_key()).serial_number(serial)
            .not_valid_before(self._now - datetime.timedelta(hours=1))
            .not_valid_after(self._now + datetime.timedelta(days=valid_days or self._days))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()), critical=False)
        )
        if san:
            builder = builder.add_extension(x509.SubjectAlternativeName(list(san)), critical=False)
        cert = builder.sign(self.key, hashes.SHA256())
        out = Issued(self.folder / f"{stem}.crt", self.folder / f"{stem}.key", self.folder / f"{stem}.p12", serial)
        out.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        _write_private(out.key, key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                  serialization.NoEncryption()))
        _write_private(out.p12, pkcs12.serialize_key_and_certificates(
            stem.encode(), key, cert, [self.cert],
            serialization.BestAvailableEncryption(P12_PASSWORD.encode())))
        return out

    def server(self, hosts: Sequence[str] = ("127.0.0.1", "localhost", "::1"), stem: str = "server") -> Issued:
        """A server certificate naming `hosts` (IP addresses and DNS names)."""
        names: list[x509.GeneralName] = []
        for host in hosts:
            try:
                names.append(x509.IPAddress(ipaddress.ip_address(host)))
            except ValueError:
                names.append(x509.DNSName(host))
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0])])
        return self._leaf(subject, names, ExtendedKeyUsageOID.SERVER_AUTH, stem)

    def client(self, stem: str, *, cn: str, upn: str | None = None, email: str | None = None) -> Issued:
        """A client certificate with the subject CN and optionally a UPN and an e-mail SAN."""
        san: list[x509.GeneralName] = []
        if upn is not None:
            san.append(x509.OtherName(UPN_OID, _der_utf8(upn)))
        if email is not None:
            san.append(x509.RFC822Name(email))
        subject = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Watchstander demo"),
                             x509.NameAttribute(NameOID.COMMON_NAME, cn)])
        return self._leaf(subject, san, ExtendedKeyUsageOID.CLIENT_AUTH, stem)

    def person(self, person: Person) -> Issued:
        """A CAC-like certificate for a demo person (UPN, e-mail, DoD-style CN)."""
        return self.client(person.label, cn=person.cn, upn=person.upn, email=person.email)

    def crl(self, revoked: Sequence[int] = (), stem: str = "ca", *, issued: datetime.datetime | None = None) -> Path:
        """Write a PEM CRL revoking `revoked` serials (issued now, or at `issued`); returns its path."""
        at = issued or self._now
        builder = (x509.CertificateRevocationListBuilder().issuer_name(self.cert.subject)
                   .last_update(at).next_update(at + datetime.timedelta(days=7)))
        for serial in revoked:
            builder = builder.add_revoked_certificate(
                x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(at).build())
        path = self.folder / f"{stem}.crl"
        path.write_bytes(builder.sign(self.key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM))
        return path


@dataclass(frozen=True)
class DemoCertificates:
    """Where `make_demo_pki` wrote everything, and the [console] TOML that uses it."""

    folder: Path
    ca: Path
    server: Issued
    people: dict[str, Issued]
    crl: Path

    def console_toml(self, listen: str = "127.0.0.1:8443") -> str:
        """A [console] section for these certificates, granting the demo people their roles."""
        lines = ["[console]", "enabled = true", f'listen = "{listen}"', f'cert_file = "{self.server.cert}"',
                 f'key_file = "{self.server.key}"', f'client_ca = ["{self.ca}"]', f'crl = "{self.crl}"',
                 "", "[console.roles]"]
        lines += [f'"{p.upn}" = [{", ".join(repr(r).replace(chr(39), chr(34)) for r in p.roles)}]'
                  for p in DEMO_PEOPLE if p.roles]
        return "\n".join(lines) + "\n"


def make_demo_pki(folder: Path, *, clock: Clock = system_clock) -> DemoCertificates:
    """A demo CA, a loopback server certificate, a certificate per demo person and an empty CRL, under `folder`."""
    pki = DemoPKI(folder, clock=clock)
    server = pki.server()
    people = {p.label: pki.person(p) for p in DEMO_PEOPLE}
    return DemoCertificates(folder, pki.ca_file, server, people, pki.crl())
