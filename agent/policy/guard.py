"""The policy guard: every recommended action, from a model or the baseline, is checked here first.

The checks, in order; the first that fails names the refusal (a stable code, never free text):

    suspicious_text            the justification carries prompt-injection or shell markers
    echoed_telemetry           the justification repeats attacker-controlled text from the incident
    unknown_playbook           no playbook with that id in the catalogue
    not_approved               the playbook's exact content hash has no current approval
    unknown_parameter          a parameter the playbook does not declare
    bad_parameter:<input>      a value its input type refuses, or one that changes a pinned value
    missing_parameter:<input>  a required input that neither the action nor the config supplies
    protected_target:<addr>    an address or network overlapping a protected asset
    autonomy_observe           the site's autonomy level is `observe`: nothing is suggested
    rate_limited               the playbook's suggestions per hour are used up

Telemetry is attacker-controlled and a model read it, so a model-sourced refusal (other than the
site's own limits) raises the incident's suspicion of injected content: the verdict's other
actions are flagged and none of them may run on its own.
"""

from __future__ import annotations

import ipaddress
import re
import unicodedata
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Any

from sqlalchemy import Connection

from watchstander.playbooks import Catalogue, ParameterError, Playbook, UnknownPlaybookError
from watchstander.playbooks.inputs import CidrInput, DeviceInput, Inventory, IpInput, Ipv4Input, Ipv6Input

from ..clock import Clock
from ..config.model import Asset
from ..config.policy import PolicyConfig
from ..models import Incident, RecommendedAction, TriageVerdict
from ..store.approvals import ApprovalStore
from ..store.engine import Store
from ..store.suggestions import count_created_since, params_digest
from .targets import ProtectedNetworks

# Refusals that are the site's own limits, not something wrong with the recommendation itself.
SITE_LIMITS = ("autonomy_observe", "rate_limited", "missing_parameter")

_INJECTION = [
    (name, re.compile(pattern, re.IGNORECASE | re.DOTALL)) for name, pattern in (
        ("ignore_instructions", r"\b(ignore|disregard|forget|override)\b.{0,60}?\b(instructions?|prompts?|rules?|"
                                r"guard(rails)?|polic(y|ies)|above|previous)\b"),
        ("role_play", r"\b(you\s+are\s+now|act\s+as|pretend\s+to\s+be|new\s+instructions?|system\s+prompt)\b"),
        ("approval_request", r"\b(auto[-\s]?(approve|run|execute)|approve\s+(this|it|immediately|automatically|"
                             r"without)|no\s+(approval|review)\s+(is\s+)?(needed|required))\b"),
        ("delimiter", r"<\s*/?\s*(system|assistant|user|instructions?|telemetry|data|untrusted)[^>]{0,20}>"),
        ("shell", r"\$\(|\$\{|&&|\|\||\|\s*(ba|z)?sh\b|;\s*(rm|reboot|shutdown|halt|curl|wget|nc|ncat|sh|bash|"
                  r"python3?|perl|chmod|dd)\b"),
    )
]
_ADDRESS_INPUTS = (Ipv4Input, Ipv6Input, IpInput)
_WORD = re.compile(r"\s+")

# Look-alikes of Latin letters (after NFKC and casefolding), after Unicode TR39's confusables:
# Cyrillic, Greek, Armenian and IPA letters a model or an attacker may swap in to dodge the phrases.
_CONFUSABLES = str.maketrans({
    # Cyrillic
    "\u0430": "a", "\u0431": "b", "\u0432": "b", "\u0435": "e", "\u0451": "e", "\u0454": "e",
    "\u043a": "k", "\u043c": "m", "\u043d": "h", "\u043e": "o", "\u0440": "p", "\u0441": "c",
    "\u0442": "t", "\u0443": "y", "\u0445": "x", "\u0456": "i", "\u0457": "i", "\u0455": "s",
    "\u0458": "j", "\u0501": "d", "\u051b": "q", "\u051d": "w", "\u04bb": "h", "\u04cf": "l",
    "\u0491": "r", "\u0433": "r", "\u044c": "b", "\u0461": "w", "\u0475": "v", "\u04e9": "o",
    "\u0444": "f",
    # Greek
    "\u03b1": "a", "\u03b2": "b", "\u03b5": "e", "\u03b7": "n", "\u03b9": "i", "\u03ba": "k",
    "\u03bd": "v", "\u03bf": "o", "\u03c1": "p", "\u03c4": "t", "\u03c5": "u", "\u03c7": "x",
    "\u03b3": "y", "\u03c9": "w", "\u03f2": "c", "\u03f3": "j", "\u03c3": "o", "\u03c2": "c",
    # Armenian, IPA and Latin extensions
    "\u0585": "o", "\u0578": "n", "\u057d": "u", "\u0561": "w", "\u0581": "g", "\u0584": "f",
    "\u0261": "g", "\u0251": "a", "\u0131": "i", "\u0237": "j", "\u026a": "i", "\u028f": "y",
    "\u1d00": "a", "\u1d04": "c", "\u1d07": "e", "\u1d0f": "o", "\u1d1c": "u", "\u1d20": "v",
    "\u1d21": "w", "\u1d22": "z", "\u0280": "r", "\u0274": "n", "\u029c": "h", "\u029f": "l",
    "\u0262": "g", "\u1d0d": "m", "\u1d18": "p", "\u1d1b": "t", "\u0299": "b", "\u1d05": "d",
    "\u1d0a": "j", "\u1d0b": "k", "\ua731": "s", "\u0138": "k", "\u00f8": "o", "\u0142": "l",
})
ECHO_MIN_CHARS = 24
ECHO_MIN_WORDS = 3


@dataclass(frozen=True)
class GuardDecision:
    """The guard's verdict on one recommended action."""

    action: RecommendedAction
    source: str                                   # model | baseline | operator
    allowed: bool
    reason: str | None                            # stable code; None when allowed
    detail: str | None = None                     # for people (bounded; may quote the bad value)
    playbook_id: str = ""
    content_hash: str | None = None
    playbook_version: int | None = None
    risk: str | None = None
    parameters: dict[str, Any] = field(default_factory=dict)   # normalised, with pinned values
    params_sha256: str | None = None
    auto_run: bool = False
    flags: tuple[str, ...] = ()

    @property
    def suspicious(self) -> bool:
        """A model recommended something the guard refused for a reason other than site limits."""
        return (self.source == "model" and not self.allowed and self.reason is not None
                and not self.reason.startswith(SITE_LIMITS))

    def as_audit(self) -> dict[str, Any]:
        """What the audit record keeps: the refused input verbatim (it is evidence), bounded by the model."""
        return {
            "playbook": self.playbook_id, "source": self.source, "allowed": self.allowed,
            "reason": self.reason, "detail": self.detail, "content_hash": self.content_hash,
            "version": self.playbook_version, "risk": self.risk,
            "parameters": self.parameters if self.allowed else dict(self.action.parameters),
            "params_sha256": self.params_sha256, "justification": self.action.justification,
            "auto_run": self.auto_run, "flags": list(self.flags),
        }


def suspicion_reasons(decisions: Iterable[GuardDecision]) -> tuple[str, ...]:
    """The refusal codes that raise an incident's suspicion of injected content (model actions only)."""
    return tuple(f"{d.playbook_id[:64]}:{d.reason}" for d in decisions if d.suspicious)


def _strings(obj: Any, depth: int = 0) -> Iterator[str]:
    if depth > 6:
        return
    if isinstance(obj, str):
        yield obj
    elif isinstance(obj, Mapping):
        for key, value in obj.items():
            yield from _strings(key, depth + 1)
            yield from _strings(value, depth + 1)
    elif isinstance(obj, (list, tuple, set, frozenset)):
        for value in obj:
            yield from _strings(value, depth + 1)


def skeleton(text: str) -> str:
    """The text as the phrase filter reads it: NFKC, no invisible characters or accents, casefolded, Latin look-alikes."""
    decomposed = unicodedata.normalize("NFKD", text)
    # Format characters (zero-width joiners and spaces, bidi overrides, soft hyphens) split words
    # without showing; combining marks decorate a letter without changing what it reads as.
    kept = "".join(ch for ch in decomposed if unicodedata.category(ch) not in ("Cf", "Mn", "Me"))
    folded = unicodedata.normalize("NFKC", kept.casefold()).translate(_CONFUSABLES)
    return unicodedata.normalize("NFKC", folded)


def _norm(text: str) -> str:
    return _WORD.sub(" ", skeleton(text)).strip()


def telemetry_texts(incident: Incident | None, limit: int = 2000) -> list[str]:
    """Instruction-sized strings from the incident's findings (entities and attributes), normalised."""
    if incident is None:
        return []
    out: list[str] = []
    for finding in incident.findings.values():
        for text in _strings([finding.entities, finding.attributes]):
            norm = _norm(text[:4000])
            if len(norm) >= ECHO_MIN_CHARS and len(norm.split(" ")) >= ECHO_MIN_WORDS:
                out.append(norm)
                if len(out) >= limit:
                    return out
    return out


def text_problem(justification: str, telemetry: Iterable[str] = ()) -> tuple[str, str] | None:
    """(reason, detail) when a justification looks injected or echoes telemetry; None when clean."""
    # Terminal escapes and bidi overrides could rewrite what an operator reads in a review.
    if any(unicodedata.category(ch) in ("Cc", "Cf") and ch not in "\n\t" for ch in justification):
        return "suspicious_text", "control or format characters"
    # Matched on the skeleton: homoglyphs, fullwidth letters and zero-width joiners defeat a raw match.
    # This is a signal that raises suspicion, not a wall: a paraphrase still gets through.
    readable = skeleton(justification)
    for name, pattern in _INJECTION:
        if pattern.search(readable) or pattern.search(justification):
            return "suspicious_text", name
    norm = _norm(justification)
    for text in telemetry:
        if text in norm:
            return "echoed_telemetry", f"repeats {len(text)} characters of the incident's telemetry"
    return None


class PolicyGuard:
    """Checks recommended actions against the catalogue, approvals, types, protected assets and limits."""

    def __init__(self, config: PolicyConfig, catalogue: Catalogue, approvals: ApprovalStore,
                 assets: Iterable[Asset], clock: Clock, *, store: Store | None = None,
                 inventory: Inventory | None = None) -> None:
        # `assets` is the configured Asset list rather than an AssetIndex: the cidr check needs to
        # enumerate protected networks, which AssetIndex does not expose.
        self.config = config
        self.catalogue = catalogue
        self.approvals = approvals
        self.protected = ProtectedNetworks(assets)
        self._clock = clock
        self._store = store
        self._inventory = inventory

    @property
    def inventory(self) -> Inventory | None:
        """The device inventory device inputs are checked against (None: not checked)."""
        return self._inventory

    def check(self, incident: Incident | None, verdict: TriageVerdict,
              conn: Connection | None = None) -> list[GuardDecision]:
        """One decision per recommended action, in order; pass `conn` to count within a transaction."""
        source = verdict.provenance.analyst
        telemetry = telemetry_texts(incident)
        planned: dict[str, int] = {}
        decisions: list[GuardDecision] = []
        for action in verdict.recommended_actions:
            decision = self.check_action(action, source, telemetry=telemetry, conn=conn, planned=planned)
            if decision.allowed:
                planned[decision.playbook_id] = planned.get(decision.playbook_id, 0) + 1
            decisions.append(decision)
        reasons = suspicion_reasons(decisions)
        if reasons:
            # One refused model action taints the whole answer: the others may still be shown,
            # flagged, but none of them runs without a person.
            flags = tuple(f"suspicion:{r}" for r in reasons)
            decisions = [replace(d, auto_run=False, flags=d.flags + flags) if d.allowed else d for d in decisions]
        return decisions

    def check_action(self, action: RecommendedAction, source: str, *, telemetry: Iterable[str] = (),
                     conn: Connection | None = None, planned: Mapping[str, int] | None = None,
                     rate_limit: bool = True) -> GuardDecision:
        """Check one action; `rate_limit=False` for operator edits, which are not counted."""
        refuse = _Refuser(action, source)
        problem = text_problem(action.justification, telemetry)
        if problem:
            return refuse(problem[0], problem[1])
        try:
            playbook = self.catalogue.get(action.playbook)
        except UnknownPlaybookError:
            return refuse("unknown_playbook", "no playbook with this id in the catalogue")
        refuse.playbook = playbook
        if not self.approvals.is_approved(playbook):
            return refuse("not_approved", f"sha256 {playbook.content_hash[:12]}: {self.approvals.status(playbook)}")
        checked = self.check_parameters(playbook, action.parameters)
        if isinstance(checked, tuple):
            return refuse(*checked)
        if self.config.autonomy == "observe":
            return refuse("autonomy_observe", "the site's autonomy level is observe: nothing is suggested")
        if rate_limit:
            limit = self.config.rate_limit(playbook.id)
            used = self._recent(playbook.id, conn) + (planned or {}).get(playbook.id, 0)
            if used >= limit:
                return refuse("rate_limited", f"{used} suggestion(s) of this playbook in the last hour (limit {limit})")
        auto_run = (self.config.autonomy == "supervised" and playbook.risk == "low"
                    and not playbook.requires_approval and source != "operator")
        return GuardDecision(action, source, True, None, None, playbook.id, playbook.content_hash,
                             playbook.version, playbook.risk, checked, params_digest(checked), auto_run)

    def check_parameters(self, playbook: Playbook,
                         params: Mapping[str, object]) -> dict[str, Any] | tuple[str, str]:
        """Normalised parameters (pinned config values merged in), or (reason, detail) refusing them."""
        inputs = playbook.spec.inputs
        for name in params:
            if not isinstance(name, str) or name not in inputs:
                return "unknown_parameter", f"{str(name)[:64]!r} is not an input of {playbook.id}"
        pinned = self.config.defaults.get(playbook.id, {})
        merged: dict[str, object] = dict(params)
        for name, value in pinned.items():
            if name not in inputs:
                return f"bad_parameter:{name}", f"[policy.defaults.{playbook.id}] names no such input"
            if name in params and params[name] != value:
                # The device to act on is the site's choice, never the analyst's.
                return f"bad_parameter:{name}", "the configuration pins this value"
            merged[name] = value
        if self._inventory is not None:
            for name, spec in inputs.items():
                if isinstance(spec, DeviceInput) and name not in merged and spec.default is None:
                    # The device an action needs is the site's, not the analyst's, to know: the one
                    # inventory device with the role, when there is exactly one.
                    holders = self._inventory.with_role(spec.role)
                    if len(holders) == 1:
                        merged[name] = holders[0]
                    elif holders:
                        return (f"missing_parameter:{name}", f"{len(holders)} devices have role {spec.role!r}; "
                                f"pin one in [policy.defaults.{playbook.id}]")
        try:
            values = playbook.validate_parameters(merged, self._inventory)
        except ParameterError as exc:
            kind = "missing_parameter" if exc.reason == "missing" else "bad_parameter"
            return f"{kind}:{exc.input}", exc.reason[:200]
        for name, spec in inputs.items():
            given = values.get(name)
            items = given if isinstance(given, list) else [given]
            for item in items:
                text = str(item)
                if isinstance(spec, _ADDRESS_INPUTS):
                    hit = self.protected.address(text)
                elif isinstance(spec, CidrInput):
                    hit = self.protected.network(text)
                else:
                    continue
                if hit is not None:
                    return f"protected_target:{_canonical_ip(text)}", f"overlaps protected asset {hit!r}"
        return dict(values)

    def _recent(self, playbook_id: str, conn: Connection | None) -> int:
        since = (self._clock() - timedelta(hours=1)).timestamp()
        if conn is not None:
            return count_created_since(conn, playbook_id, since)
        if self._store is None:
            raise RuntimeError("PolicyGuard needs store= (or a connection) to count suggestions per hour")
        with self._store.engine.connect() as own:
            return count_created_since(own, playbook_id, since)


class _Refuser:
    def __init__(self, action: RecommendedAction, source: str) -> None:
        self.action = action
        self.source = source
        self.playbook: Playbook | None = None

    def __call__(self, reason: str, detail: str | None = None) -> GuardDecision:
        p = self.playbook
        return GuardDecision(self.action, self.source, False, reason, detail,
                             p.id if p else self.action.playbook[:128],
                             p.content_hash if p else None, p.version if p else None, p.risk if p else None)


def _canonical_ip(text: str) -> str:
    try:
        return str(ipaddress.ip_network(text, strict=False)) if "/" in text else str(ipaddress.ip_address(text))
    except ValueError:
        return text[:64]
