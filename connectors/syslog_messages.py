"""Message normalisation: the few syslog messages that carry security meaning become typed Events."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from .events import AUTH, DNS, RAW_EXCERPT_MAX, Event, excerpt
from .syslog_record import SyslogRecord

# DNS record type names to numbers (RFC 1035 and successors), for dnsmasq query logs.
QTYPES = {
    "A": 1, "NS": 2, "CNAME": 5, "SOA": 6, "NULL": 10, "PTR": 12, "HINFO": 13, "MX": 15, "TXT": 16,
    "AAAA": 28, "SRV": 33, "NAPTR": 35, "DS": 43, "DNSKEY": 48, "HTTPS": 65, "SVCB": 64, "ANY": 255,
    "AXFR": 252, "IXFR": 251, "CAA": 257,
}

USER_MAX = 256

_SSHD_FAIL = re.compile(
    r"Failed (?P<method>password|publickey|keyboard-interactive/pam|none|hostbased) for "
    r"(?:invalid user )?(?P<user>.*?) from (?P<ip>[0-9a-fA-F.:]+)(?: port (?P<port>[0-9]+))?"
)
_SSHD_OK = re.compile(
    r"Accepted (?P<method>\S+) for (?P<user>\S+) from (?P<ip>[0-9a-fA-F.:]+)(?: port (?P<port>[0-9]+))?"
)
_SSHD_INVALID = re.compile(r"Invalid user (?P<user>.*?) from (?P<ip>[0-9a-fA-F.:]+)")
_PAM_FAIL = re.compile(r"authentication failure;.*?rhost=(?P<ip>[^\s=]+)(?:\s+user=(?P<user>\S+))?")
_KLOGIN_FAIL = re.compile(r"Authentication failed from (?P<ip>[0-9a-fA-F.:]+)")
_VSFTPD_FAIL = re.compile(r'\[(?P<user>[^\]]*)\] FAIL LOGIN: Client "(?:::ffff:)?(?P<ip>[0-9a-fA-F.:]+)"')
_DNSMASQ_QUERY = re.compile(r"query\[(?P<qtype>[A-Z0-9]+)\] (?P<name><name unprintable>|\S+) from (?P<ip>[0-9a-fA-F.:]+)")


_APP_PREFIXES = frozenset({"sshd", "klog", "vsft", "dnsm"})


def might_matter(app: str, msg: str) -> bool:
    """Cheap pre-check: could `normalize` turn this message into a typed Event?"""
    return app[:4] in _APP_PREFIXES or "pam_unix" in app or msg.startswith("pam_unix(")


@dataclass(frozen=True, slots=True)
class SyslogNeeds:
    """Which ordinary syslog lines (those that become `log` events) a consumer needs.

    A line is needed when `every` is set, its program (the tag without `[pid]`) is one of `apps`,
    or its message contains one of `keywords`. Lines that normalize into a typed event (AUTH, DNS)
    are always built; the others are counted as parsed and never become Events.
    """

    every: bool = False
    apps: frozenset[str] = frozenset()
    keywords: tuple[str, ...] = ()

    def wants(self, app: str | None, msg: str) -> bool:
        """Whether a `log` line from program `app` with message `msg` is needed."""
        return self.every or (app is not None and app in self.apps) or any(k in msg for k in self.keywords)

    @property
    def nothing(self) -> bool:
        """Whether no ordinary line at all is needed."""
        return not (self.every or self.apps or self.keywords)


EVERY_LINE = SyslogNeeds(every=True)
NO_LINE = SyslogNeeds()


def union(needs: Iterable[SyslogNeeds]) -> SyslogNeeds:
    """What any of `needs` needs."""
    apps: set[str] = set()
    keywords: dict[str, None] = {}
    for need in needs:
        if need.every:
            return EVERY_LINE
        apps.update(need.apps)
        keywords.update(dict.fromkeys(need.keywords))
    return SyslogNeeds(False, frozenset(apps), tuple(keywords))


def normalize(rec: SyslogRecord, source: str, ref: str) -> Event | None:
    """Return a typed Event for a message with security meaning, or None for an ordinary log line."""
    return normalize_fields(rec.time, rec.host, rec.app or "", rec.msg, source, ref)


def normalize_fields(time: float, host: str | None, app: str, msg: str, source: str, ref: str) -> Event | None:
    """`normalize` for a line's parts (the parsers' hot loop builds no record for it)."""
    if app.startswith("sshd"):
        if app == "sshd(pam_unix)" or msg.startswith("pam_unix("):
            return _pam(time, host, msg, source, ref, "ssh")
        if msg.startswith("Failed "):
            m = _SSHD_FAIL.match(msg)
            if m:
                method, user, ip, port = m.groups()
                return _auth(time, host, msg, source, ref, "ssh", ip, user, "failure", port,
                             {"method": method, "layer": "sshd"})
        elif msg.startswith("Accepted "):
            m = _SSHD_OK.match(msg)
            if m:
                method, user, ip, port = m.groups()
                return _auth(time, host, msg, source, ref, "ssh", ip, user, "success", port,
                             {"method": method, "layer": "sshd"})
        elif msg.startswith("Invalid user "):
            m = _SSHD_INVALID.match(msg)
            if m:
                return _auth(time, host, msg, source, ref, "ssh", m.group("ip"), m.group("user"), "invalid_user",
                             None, {"layer": "sshd"})
        return None
    if "pam_unix" in app or msg.startswith("pam_unix("):
        service = "ftp" if "ftp" in app else app.split("(", 1)[0] or "pam"
        return _pam(time, host, msg, source, ref, service)
    if app.startswith("klogind"):
        m = _KLOGIN_FAIL.search(msg)
        if m:
            return _auth(time, host, msg, source, ref, "klogin", m.group("ip"), None, "failure", None,
                         {"layer": "klogind"})
        return None
    if app.startswith("vsftpd"):
        m = _VSFTPD_FAIL.search(msg)
        if m:
            return _auth(time, host, msg, source, ref, "ftp", m.group("ip"), m.group("user") or None, "failure",
                         None, {"layer": "vsftpd"})
        return None
    if app.startswith("dnsmasq") and msg.startswith("query["):
        m = _DNSMASQ_QUERY.match(msg)
        if m:
            qtype = m.group("qtype")
            return Event(time, source, DNS, m.group("ip"), None, None, 53, "udp", host=host,
                         attrs={"qname": m.group("name").rstrip("."), "qtype": QTYPES.get(qtype, 0),
                                "response": False},
                         raw=excerpt(msg), ref=ref)
    return None


def _pam(time: float, host: str | None, msg: str, source: str, ref: str, service: str) -> Event | None:
    m = _PAM_FAIL.search(msg)
    if not m:
        return None
    ip, user = m.groups()
    return _auth(time, host, msg, source, ref, service, ip, user, "failure", None, {"layer": "pam"})


def _auth(
    time: float, host: str | None, msg: str, source: str, ref: str, service: str, ip: str, user: str | None,
    outcome: str, port: str | None, attrs: dict[str, str],
) -> Event:
    attrs["service"] = service
    sport = int(port) if port and len(port) <= 5 else None
    return Event(time, source, AUTH, ip, host, sport if sport is not None and sport <= 65535 else None,
                 None, service, 0, host, user[:USER_MAX] if user is not None else None, outcome, attrs,
                 msg if len(msg) <= RAW_EXCERPT_MAX else excerpt(msg), ref)
