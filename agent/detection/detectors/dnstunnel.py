"""DNS tunnelling: many unique, long, high-entropy names under one domain, or unusual record types."""

from __future__ import annotations

import math
from collections import Counter

from watchstander.connectors.events import DNS, Event

from ...config.detectors import DnsTunnelConfig
from ...models import Finding
from .base import Detector, Emit, WindowTable

# Record types a tunnel uses to carry data back; ordinary clients rarely ask for them.
UNUSUAL_QTYPES = frozenset({10, 16, 255, 65399})  # NULL, TXT, ANY, private use
UNIQUE_CAP = 4096
SECOND_LEVEL = frozenset({"co", "com", "net", "org", "gov", "ac", "edu", "mil", "ne", "or", "go"})


def base_domain(name: str) -> tuple[str, str]:
    """Split a query name into (subdomain part, registered domain) without a public suffix list."""
    labels = name.rstrip(".").split(".")
    keep = 2
    if len(labels) >= 3 and len(labels[-1]) == 2 and labels[-2] in SECOND_LEVEL:
        keep = 3
    if len(labels) <= keep:
        return "", name.lower()
    return ".".join(labels[:-keep]), ".".join(labels[-keep:]).lower()


def entropy(text: str) -> float:
    """Shannon entropy in bits per character."""
    if not text:
        return 0.0
    n = len(text)
    return -sum(c / n * math.log2(c / n) for c in Counter(text).values())


class _Domain:
    __slots__ = ("ent_sum", "finding", "len_sum", "long", "n", "qtypes", "servers", "start", "unique", "unusual")

    def __init__(self, start: float) -> None:
        self.start = start
        self.n = 0
        self.unique: set[str] = set()
        self.len_sum = 0
        self.ent_sum = 0.0
        self.unusual = 0
        self.qtypes: Counter[int] = Counter()
        self.servers: Counter[str] = Counter()
        self.finding: Finding | None = None
        self.long = 0


class DnsTunnelDetector(Detector):
    """Scores (client, registered domain) pairs over a window."""

    id = "dnstunnel"
    kinds = (DNS,)
    techniques = ("T1071.004", "T1572", "T1048")
    title = "DNS tunnelling"
    confidence = 0.75
    playbook = "capture-incident-traffic"

    def __init__(self, config: DnsTunnelConfig, emit: Emit) -> None:
        super().__init__(config, emit)
        self.table: WindowTable[_Domain] = WindowTable(config.window_s, _Domain, max_keys=config.max_domains_tracked)

    def feed(self, ev: Event) -> None:
        """Score one query (responses are ignored: the query already told us)."""
        attrs = ev.attrs or {}
        if attrs.get("response"):
            return
        qname = attrs.get("qname")
        if not qname or not isinstance(qname, str):
            return
        sub, domain = base_domain(qname)
        if not sub:
            return
        st = self.table.get((ev.src, domain), ev.time)
        st.n += 1
        qtype = attrs.get("qtype", 0)
        if not isinstance(qtype, int):
            qtype = 0
        st.qtypes[qtype] += 1
        if qtype in UNUSUAL_QTYPES:
            st.unusual += 1
        if ev.dst:
            st.servers[ev.dst] += 1
        if sub not in st.unique and len(st.unique) < UNIQUE_CAP:
            st.unique.add(sub)
            longest = max(sub.split("."), key=len)
            ent = entropy(longest)
            st.len_sum += len(longest)
            st.ent_sum += ent
            if len(longest) >= self.config.long_label_len and ent >= self.config.min_entropy:
                st.long += 1
        if st.finding is None:
            reason = self._verdict(st)
            if reason is None:
                return
            entities = {"attacker": ev.src or "unknown client", "domain": domain}
            if st.servers:
                entities["victim"] = st.servers.most_common(1)[0][0]
            st.finding = self.new_finding(f"DNS tunnelling via {domain} from {ev.src or 'unknown client'}",
                                          "high", entities, ev, first_seen=st.start, reason=reason)
        f = st.finding
        f.count = st.n
        f.last_seen = ev.time
        f.counts["queries"] = st.n
        f.counts["unique_names"] = len(st.unique)
        f.counts["unusual_type_queries"] = st.unusual
        f.counts["long_label_names"] = st.long
        f.attributes["avg_label_length"] = round(st.len_sum / max(len(st.unique), 1), 1)
        f.attributes["avg_entropy"] = round(st.ent_sum / max(len(st.unique), 1), 2)
        f.attributes["qtypes"] = {str(k): v for k, v in st.qtypes.most_common(8)}
        f.add_evidence(ev.ref)

    def _verdict(self, st: _Domain) -> str | None:
        cfg = self.config
        unique = len(st.unique)
        if st.long >= cfg.long_names:
            return f"{st.long} unique names carry labels of {cfg.long_label_len}+ high-entropy characters"
        if unique < cfg.unique_names:
            return None
        avg_len = st.len_sum / unique
        avg_ent = st.ent_sum / unique
        if st.unusual / st.n >= cfg.unusual_type_ratio:
            return f"{st.unusual} of {st.n} queries use tunnel record types (NULL/TXT/ANY)"
        if avg_len >= cfg.min_avg_label_len and avg_ent >= cfg.min_entropy:
            return f"{unique} unique names, longest labels average {avg_len:.0f} chars at {avg_ent:.1f} bits/char"
        return None
