"""MITRE ATT&CK Enterprise technique and sub-technique ids, from MITRE's data, for checking model answers.

The ids, names, tactics and revoked/deprecated flags are read from `attack_enterprise.json` beside
this module, built by scripts/build_attack_ids.py from a pinned ATT&CK release (version, sources and
sha256s are in the file; licence: ATT&CK Terms of Use, in the file and docs/DEPENDENCIES.md).
An id is known when the release has it and has not revoked it; deprecated ids stay known so an
older model is not refused for using them. A revoked id names its replacement.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

DATA = Path(__file__).with_name("attack_enterprise.json")
TECHNIQUE_ID = re.compile(r"^T[0-9]{4}(?:\.[0-9]{3})?$")


@dataclass(frozen=True, slots=True)
class Technique:
    """One technique or sub-technique as the pinned ATT&CK release describes it."""

    id: str
    name: str
    tactics: tuple[str, ...]
    revoked: bool
    deprecated: bool
    revoked_by: str | None = None


@dataclass(frozen=True, slots=True)
class Catalogue:
    """The pinned release: its version and every technique id it has ever had, revoked ones included."""

    version: str
    techniques: dict[str, Technique]


@cache
def catalogue(path: Path = DATA) -> Catalogue:
    """The technique table, read once."""
    raw = json.loads(path.read_text(encoding="utf-8"))
    techniques = {
        tid: Technique(tid, str(t["name"]), tuple(t["tactics"]), bool(t["revoked"]), bool(t["deprecated"]),
                       t.get("revoked_by"))
        for tid, t in raw["techniques"].items()
    }
    return Catalogue(str(raw["attack_version"]), techniques)


def _parse(table: str) -> frozenset[str]:
    """Ids in the compact range notation `T1053:2,5` (T1053, .002, .005) or `T1110:4` (.001 to .004)."""
    out: set[str] = set()
    for token in table.split():
        base, _, subs = token.partition(":")
        if not re.fullmatch(r"T[0-9]{4}", base) or base in out:
            raise ValueError(f"bad or duplicate ATT&CK table entry {token!r}")
        out.add(base)
        if not subs:
            continue
        numbers = range(1, int(subs) + 1) if "," not in subs and subs.isdigit() else map(int, subs.split(","))
        out.update(f"{base}.{n:03d}" for n in numbers)
    return frozenset(out)


KNOWN_TECHNIQUES: frozenset[str] = frozenset(t for t, v in catalogue().techniques.items() if not v.revoked)


def normalise(technique: str) -> str:
    """Upper-case and strip an id as a model may write it ("t1110.001 " -> "T1110.001")."""
    return technique.strip().upper()


def is_known(technique: str) -> bool:
    """Whether `technique` (already normalised) is a current ATT&CK Enterprise id: in the release and not revoked."""
    return technique in KNOWN_TECHNIQUES


def technique(technique_id: str) -> Technique | None:
    """The release's entry for an id, revoked or not; None when it never was an id."""
    return catalogue().techniques.get(technique_id)


def replacement(technique_id: str) -> str | None:
    """The current id that took over a revoked one (following chains of revocations), or None."""
    seen: set[str] = set()
    entry = technique(technique_id)
    while entry is not None and entry.revoked and entry.revoked_by and entry.revoked_by not in seen:
        seen.add(entry.revoked_by)
        entry = technique(entry.revoked_by)
    return entry.id if entry is not None and not entry.revoked and entry.id != technique_id else None


def problem(technique_id: str) -> str | None:
    """Why an id is refused, in words for the model ("T1086 is revoked; use T1059.001"), or None when it is fine."""
    if not TECHNIQUE_ID.fullmatch(technique_id):
        return f"{technique_id[:40]!r} is not an ATT&CK technique id"
    entry = technique(technique_id)
    if entry is None:
        return f"{technique_id} is not in ATT&CK v{catalogue().version}"
    if entry.revoked:
        new = replacement(technique_id)
        return f"{technique_id} is revoked in ATT&CK v{catalogue().version}" + (f"; use {new}" if new else "")
    return None
