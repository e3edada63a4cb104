"""Who is at the browser: the principal in a verified client certificate (or a trusted proxy's header) and their roles.

A CAC carries the holder's EDIPI as the User Principal Name (`1234567890@mil`, an otherName in
the subject alternative names); other PKIs put an e-mail address there, or only a subject CN.
`[console] principal_from` says which to try, in order. Roles come only from `[console.roles]`,
with the control socket's role names and implications (operator and approver apart; admin is all).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from functools import lru_cache

from cryptography import x509
from cryptography.x509.oid import NameOID, ObjectIdentifier

from ..config.console import ConsoleConfig, ConsoleRole, PrincipalSource, check_principal
from ..control.identity import IMPLIES, Role

UPN_OID = ObjectIdentifier("1.3.6.1.4.1.311.20.2.3")
ACTOR_PREFIX = "console:"


@dataclass(frozen=True)
class Principal:
    """An authenticated console user: their name, where it came from, and their effective roles."""

    name: str
    source: str  # upn | email | cn | proxy
    roles: frozenset[Role] = field(default_factory=frozenset)

    @property
    def actor(self) -> str:
        """The name the review queue and the audit log know this person by ('console:NAME')."""
        return ACTOR_PREFIX + self.name

    def has(self, role: Role) -> bool:
        """Whether the user holds `role` (directly or through an implication)."""
        return role in self.roles


@dataclass(frozen=True)
class Refusal:
    """Why a connection has no principal: what the certificate said, for the 403 page and the audit record."""

    reason: str
    claimed: str | None = None


def _der_string(value: bytes) -> str | None:
    """The text of a DER UTF8String/IA5String/PrintableString (unwrapping an explicit [0] tag once)."""
    if len(value) >= 2 and value[0] == 0xA0:
        inner = _der_content(value)
        if inner is None:
            return None
        value = inner
    if len(value) < 2 or value[0] not in (0x0C, 0x16, 0x13):
        return None
    content = _der_content(value)
    if content is None:
        return None
    try:
        return content.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _der_content(value: bytes) -> bytes | None:
    """The content octets of one DER TLV (definite lengths only), or None when malformed."""
    length = value[1]
    offset = 2
    if length & 0x80:
        count = length & 0x7F
        if count == 0 or count > 3 or len(value) < 2 + count:
            return None
        length = int.from_bytes(value[2:2 + count], "big")
        offset = 2 + count
    if len(value) != offset + length:
        return None
    return value[offset:]


def certificate_names(cert: x509.Certificate) -> dict[PrincipalSource, str]:
    """The candidate principals a certificate carries: its first UPN, first e-mail SAN and subject CN."""
    out: dict[PrincipalSource, str] = {}
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        san = None
    if san is not None:
        for other in san.get_values_for_type(x509.OtherName):
            if other.type_id == UPN_OID:
                text = _der_string(other.value)
                if text:
                    out["upn"] = text
                    break
        emails = san.get_values_for_type(x509.RFC822Name)
        if emails:
            out["email"] = emails[0]
    cns = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if cns and isinstance(cns[0].value, str):
        out["cn"] = cns[0].value
    return out


def effective_roles(granted: tuple[ConsoleRole, ...]) -> frozenset[Role]:
    """The roles granted with their implications applied (admin holds every role)."""
    return frozenset().union(*(IMPLIES[r] for r in granted)) if granted else frozenset()


class ConsoleUsers:
    """Maps what a connection proved (a certificate, or a proxy's header) to a Principal or a Refusal."""

    def __init__(self, config: ConsoleConfig) -> None:
        self.config = config
        # Case-insensitively: a CA may spell the @mil or an e-mail domain in another case.
        self._roles = {name.casefold(): (name, roles) for name, roles in config.roles.items()}
        self._proxies = tuple(ipaddress.ip_network(a, strict=False) for a in config.proxy_addresses)
        self.from_certificate = lru_cache(maxsize=1024)(self._from_certificate)

    def _mapped(self, claimed: str, source: str) -> Principal | None:
        entry = self._roles.get(claimed.casefold())
        if entry is None:
            return None
        name, roles = entry
        return Principal(name, source, effective_roles(roles))

    def _from_certificate(self, der: bytes | None) -> Principal | Refusal:
        """The principal of a verified peer certificate (DER), trying `principal_from` in order."""
        if not der:
            return Refusal("no client certificate")
        try:
            cert = x509.load_der_x509_certificate(der)
            names = certificate_names(cert)
        except ValueError:
            return Refusal("the client certificate could not be read")
        first: str | None = None
        for source in self.config.principal_from:
            claimed = names.get(source)
            if claimed is None:
                continue
            first = first or claimed
            found = self._mapped(claimed, source)
            if found is not None:
                return found
        if first is None:
            wanted = ", ".join(self.config.principal_from)
            return Refusal(f"the certificate names no principal ({wanted})", _shown(cert.subject.rfc4514_string()))
        return Refusal("the certificate's principal is not in [console.roles]", _shown(first))

    def from_proxy(self, peer_host: str | None, header: str | None) -> Principal | Refusal:
        """The principal a trusted proxy named in its header; refused from any other address."""
        try:
            address = ipaddress.ip_address((peer_host or "").split("%")[0])
        except ValueError:
            return Refusal("the peer address could not be read")
        if not any(address in net for net in self._proxies):
            return Refusal(f"{address} is not a trusted proxy address")
        if not header:
            return Refusal(f"the proxy sent no {self.config.proxy_header} header")
        try:
            check_principal(header)
        except ValueError:
            return Refusal("the proxy's user header is not a principal name", _shown(header))
        found = self._mapped(header, "proxy")
        return found if found is not None else Refusal("the proxy's user is not in [console.roles]", _shown(header))


def _shown(text: str) -> str:
    """Claimed names are attacker-influenced: keep them short for the page and the audit record."""
    return text[:200]
