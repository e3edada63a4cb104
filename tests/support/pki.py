"""A test PKI for the web console: a CA, a server certificate, CAC-like client certificates, a CRL, a foreign CA.

A DoD Common Access Card carries a certificate whose subject CN reads `LAST.FIRST.MIDDLE.EDIPI` and whose
SAN holds the EDIPI as a Microsoft UPN otherName (`1234567890@mil`) and an email address. The people
made here look the same, so the console's principal mapping is tested against the real shape.

Every certificate is written as PEM (cert and key) and as a PKCS#12 file, which is what Playwright's
`client_certificates` accepts (`certPath`/`keyPath` or `pfxPath`/`passphrase`).
"""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID, ObjectIdentifier

UPN_OID = ObjectIdentifier("1.3.6.1.4.1.311.20.2.3")  # Microsoft User Principal Name, as on a CAC
PFX_PASSPHRASE = "watchstander-test"
_DAY = datetime.timedelta(days=1)


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _der_utf8(text: str) -> bytes:
    """DER of a UTF8String: the value an otherName UPN carries."""
    raw = text.encode("utf-8")
    if len(raw) < 0x80:
        return bytes([0x0C, len(raw)]) + raw
    size = len(raw).to_bytes((len(raw).bit_length() + 7) // 8, "big")
    return bytes([0x0C, 0x80 | len(size)]) + size + raw


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    path.chmod(0o600)


@dataclass(frozen=True)
class Person:
    """A client certificate for one person, as PEM files and a PKCS#12 file."""

    name: str
    edipi: str
    email: str
    subject: str  # RFC 4514, e.g. "CN=DOE.JANE.Q.1234567890,OU=USN,O=U.S. Government,C=US"
    cn: str
    cert: Path
    key: Path
    pfx: Path
    serial: int
    fingerprint_sha256: str

    @property
    def upn(self) -> str:
        """The UPN as the SAN carries it: `EDIPI@mil`."""
        return f"{self.edipi}@mil"

    def playwright(self, origin: str, pfx: bool = False) -> dict[str, Any]:
        """One entry of Playwright's `client_certificates` for `origin` (PEM paths, or the PKCS#12 file)."""
        if pfx:
            return {"origin": origin, "pfxPath": str(self.pfx), "passphrase": PFX_PASSPHRASE}
        return {"origin": origin, "certPath": str(self.cert), "keyPath": str(self.key)}


class Authority:
    """A certificate authority writing under `directory`."""

    def __init__(self, directory: Path, name: str) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self.name = name
        self.key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COUNTRY_NAME, "US"),
                             x509.NameAttribute(NameOID.ORGANIZATION_NAME, "U.S. Government"),
                             x509.NameAttribute(NameOID.COMMON_NAME, name)])
        now = _now()
        self.cert = (
            x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
            .public_key(self.key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - _DAY).not_valid_after(now + 30 * _DAY)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                         content_commitment=False, key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(self.key.public_key()), critical=False)
            .sign(self.key, hashes.SHA256())
        )
        self.path = directory / f"{_slug(name)}.pem"
        self.path.write_bytes(self.cert.public_bytes(serialization.Encoding.PEM))
        self.revoked: list[int] = []

    def _leaf(self, subject: x509.Name, key: ec.EllipticCurvePrivateKey, sans: list[x509.GeneralName],
              usage: x509.ObjectIdentifier) -> x509.Certificate:
        now = _now()
        return (
            x509.CertificateBuilder().subject_name(subject).issuer_name(self.cert.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - _DAY).not_valid_after(now + 7 * _DAY)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_encipherment=False, key_cert_sign=False,
                                         crl_sign=False, content_commitment=False, data_encipherment=False,
                                         key_agreement=False, encipher_only=False, decipher_only=False),
                           critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()), critical=False)
            .sign(self.key, hashes.SHA256())
        )

    def server(self, name: str = "server",
               hosts: tuple[str, ...] = ("localhost", "127.0.0.1", "::1")) -> tuple[Path, Path]:
        """A server certificate for `hosts` (DNS names or IP addresses): (cert, key) PEM paths."""
        key = ec.generate_private_key(ec.SECP256R1())
        sans: list[x509.GeneralName] = []
        for host in hosts:
            try:
                sans.append(x509.IPAddress(ipaddress.ip_address(host)))
            except ValueError:
                sans.append(x509.DNSName(host))
        cert = self._leaf(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0])]), key, sans,
                          ExtendedKeyUsageOID.SERVER_AUTH)
        cert_path, key_path = self.directory / f"{name}.crt", self.directory / f"{name}.key"
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        _write_key(key_path, key)
        return cert_path, key_path

    def person(self, name: str, edipi: str, last: str, first: str, middle: str = "Q") -> Person:
        """A CAC-like client certificate: CN `LAST.FIRST.MIDDLE.EDIPI`, SAN UPN `EDIPI@mil` and an email."""
        key = ec.generate_private_key(ec.SECP256R1())
        cn = f"{last.upper()}.{first.upper()}.{middle.upper()}.{edipi}"
        email = f"{first.lower()}.{last.lower()}@example.mil"
        subject = x509.Name([x509.NameAttribute(NameOID.COUNTRY_NAME, "US"),
                             x509.NameAttribute(NameOID.ORGANIZATION_NAME, "U.S. Government"),
                             x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "USN"),
                             x509.NameAttribute(NameOID.COMMON_NAME, cn)])
        sans: list[x509.GeneralName] = [x509.OtherName(UPN_OID, _der_utf8(f"{edipi}@mil")), x509.RFC822Name(email)]
        cert = self._leaf(subject, key, sans, ExtendedKeyUsageOID.CLIENT_AUTH)
        cert_path, key_path, pfx_path = (self.directory / f"{name}.crt", self.directory / f"{name}.key",
                                         self.directory / f"{name}.p12")
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        _write_key(key_path, key)
        pfx_path.write_bytes(pkcs12.serialize_key_and_certificates(
            name.encode(), key, cert, [self.cert],
            serialization.BestAvailableEncryption(PFX_PASSPHRASE.encode())))
        return Person(name, edipi, email, subject.rfc4514_string(), cn, cert_path, key_path, pfx_path,
                      cert.serial_number, cert.fingerprint(hashes.SHA256()).hex())

    def revoke(self, person: Person) -> None:
        """Put `person`'s certificate on the next CRL."""
        self.revoked.append(person.serial)

    def write_crl(self, path: Path | None = None) -> Path:
        """A CRL listing every revoked serial, signed by this CA (PEM)."""
        now = _now()
        builder = (x509.CertificateRevocationListBuilder().issuer_name(self.cert.subject)
                   .last_update(now - datetime.timedelta(minutes=5)).next_update(now + _DAY))
        for serial in self.revoked:
            builder = builder.add_revoked_certificate(
                x509.RevokedCertificateBuilder().serial_number(serial)
                .revocation_date(now - datetime.timedelta(minutes=5)).build())
        crl = builder.sign(self.key, hashes.SHA256())
        out = path or self.directory / f"{_slug(self.name)}.crl"
        out.write_bytes(crl.public_bytes(serialization.Encoding.PEM))
        return out


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in text).strip("_").lower()


@dataclass(frozen=True)
class ConsolePki:
    """Everything the console tests need: CA, server cert, the people, an unmapped, a revoked and a foreign cert."""

    directory: Path
    ca: Path
    server_cert: Path
    server_key: Path
    crl: Path
    operator: Person
    approver: Person
    approver2: Person
    compliance: Person
    unmapped: Person
    revoked: Person
    foreign: Person
    foreign_ca: Path
    authority: Authority
    people: dict[str, Person] = field(default_factory=dict)


def make_console_pki(directory: Path) -> ConsolePki:
    """Write a complete test PKI under `directory` (about 50 ms)."""
    ca = Authority(directory, "Watchstander Test Root CA")
    server_cert, server_key = ca.server()
    operator = ca.person("operator", "1000000001", "Oper", "Olga")
    approver = ca.person("approver", "1000000002", "Appr", "Abe")
    approver2 = ca.person("approver2", "1000000003", "Second", "Sam")
    compliance = ca.person("compliance", "1000000004", "Comp", "Carol")
    unmapped = ca.person("unmapped", "1000000005", "Nobody", "Ned")
    revoked = ca.person("revoked", "1000000006", "Gone", "Greg")
    ca.revoke(revoked)
    crl = ca.write_crl()
    foreign_ca = Authority(directory / "foreign", "Foreign Root CA")
    foreign = foreign_ca.person("foreign", "1000000001", "Oper", "Olga")  # same EDIPI as the operator
    people = {p.name: p for p in (operator, approver, approver2, compliance, unmapped, revoked, foreign)}
    return ConsolePki(directory, ca.path, server_cert, server_key, crl, operator, approver, approver2, compliance,
                      unmapped, revoked, foreign, foreign_ca.path, ca, people)
