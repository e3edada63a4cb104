"""ATT&CK ids come from MITRE's data (agent/triage/attack_enterprise.json, built by scripts/build_attack_ids.py):
every id the detectors and playbooks use is current, and the triage validator refuses revoked and unknown ids."""

from __future__ import annotations

import ast
import importlib.util
import json
import re
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from watchstander.agent.detection.detectors.registry import DETECTORS
from watchstander.agent.triage.answer import MalformedAnswer, parse_answer
from watchstander.agent.triage.attack_ids import (
    DATA,
    KNOWN_TECHNIQUES,
    TECHNIQUE_ID,
    catalogue,
    is_known,
    problem,
    replacement,
    technique,
)

REPO = Path(__file__).resolve().parents[3]
ID_IN_TEXT = re.compile(r"\bT[0-9]{4}(?:\.[0-9]{3})?\b")


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("build_attack_ids", REPO / "scripts" / "build_attack_ids.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("build_attack_ids", module)
    spec.loader.exec_module(module)
    return module


def _ids_in_detector_sources() -> dict[str, set[str]]:
    """Every technique id written as a string constant in the detectors' code, by file."""
    found: dict[str, set[str]] = {}
    for path in sorted((REPO / "agent" / "detection" / "detectors").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and TECHNIQUE_ID.match(node.value):
                found.setdefault(path.name, set()).add(node.value)
    return found


def test_data_names_its_release_sources_and_licence() -> None:
    raw = json.loads(DATA.read_text(encoding="utf-8"))
    gen = _generator()
    assert raw["attack_version"] == catalogue().version == gen.PRIMARY_VERSION
    anchor = [s for s in raw["sources"] if s["package"] == gen.ANCHOR_PACKAGE]
    assert anchor and anchor[0]["sha256"] == gen.ANCHOR_SHA256
    assert "ATT&CK Terms of Use" in raw["licence"] and "MITRE" in raw["licence"]
    assert len(catalogue().techniques) > 800 and len(raw["tactics"]) == 14


def test_data_is_consistent_with_itself() -> None:
    raw = json.loads(DATA.read_text(encoding="utf-8"))
    shortnames = {t["shortname"] for t in raw["tactics"].values()}
    for tid, t in catalogue().techniques.items():
        assert TECHNIQUE_ID.fullmatch(tid)
        assert set(t.tactics) <= shortnames, tid
        assert t.revoked or t.tactics, tid
        if t.revoked_by is not None:
            assert t.revoked and technique(t.revoked_by) is not None, tid
        if "." in tid and not t.revoked:
            assert technique(tid.split(".")[0]) is not None, tid


def test_every_id_detectors_use_is_current() -> None:
    used = {t for det in DETECTORS.values() for t in getattr(det, "techniques", ())}
    in_code = _ids_in_detector_sources()
    assert len(DETECTORS) >= 7 and used and in_code
    problems = {t: problem(t) for t in used | {t for ids in in_code.values() for t in ids}}
    assert {t: p for t, p in problems.items() if p is not None} == {}


def test_every_id_playbooks_use_is_current() -> None:
    books = sorted((REPO / "playbooks" / "library").glob("*.yaml"))
    assert books
    used = {(b.name, t) for b in books for t in ID_IN_TEXT.findall(b.read_text(encoding="utf-8"))}
    assert [(name, t, problem(t)) for name, t in used if problem(t) is not None] == []


def test_revoked_ids_are_refused_and_name_their_replacement() -> None:
    assert not is_known("T1086") and technique("T1086") is not None
    assert problem("T1086") == f"T1086 is revoked in ATT&CK v{catalogue().version}; use T1059.001"
    # T1073 was revoked by T1574.002, itself revoked since (v17) by T1574.001.
    assert replacement("T1073") == "T1574.001" and not is_known("T1574.002")


def test_unknown_ids_are_refused_and_deprecated_ones_kept() -> None:
    for tid in ("T9999", "T1003.009", "T1110.999"):
        assert not is_known(tid) and problem(tid) == f"{tid} is not in ATT&CK v{catalogue().version}"
    assert problem("1110") is not None
    deprecated = [t for t in catalogue().techniques.values() if t.deprecated and not t.revoked]
    assert deprecated and all(is_known(t.id) for t in deprecated)
    assert {"T1110.001", "T1046", "T1562.013", "T1071.005"} <= KNOWN_TECHNIQUES


def _answer(techniques: list[str]) -> str:
    return json.dumps({"severity": "high", "confidence": 0.8, "disposition": "likely_true_positive",
                       "techniques": techniques, "summary": "s", "rationale": "r", "evidence_refs": []})


@pytest.mark.parametrize("tid", ["T1086", "T1574.002", "T9999"])
def test_triage_validator_refuses_revoked_and_unknown_ids(tid: str) -> None:
    with pytest.raises(MalformedAnswer) as err:
        parse_answer(_answer(["T1110.001", tid]), frozenset())
    assert tid in str(err.value) and "T1110.001" not in str(err.value)
    assert parse_answer(_answer(["T1110.001", "T1064"]), frozenset()).techniques == ("T1110.001", "T1064")


# --- the generator, on small STIX data made here ---

def _pattern(stix: str, tid: str, **extra: Any) -> dict[str, Any]:
    return {"type": "attack-pattern", "id": stix, "name": f"name {tid}",
            "external_references": [{"source_name": "mitre-attack", "external_id": tid}],
            "kill_chain_phases": [{"kill_chain_name": "mitre-attack", "phase_name": "discovery"},
                                  {"kill_chain_name": "other", "phase_name": "x"}], **extra}


def test_generator_reads_flags_tactics_and_revocations() -> None:
    gen = _generator()
    objects = [
        _pattern("ap--1", "T1046"), _pattern("ap--2", "T1100", revoked=True),
        _pattern("ap--3", "T1064", x_mitre_deprecated=True), _pattern("ap--4", "T1046", revoked=True),
        {"type": "relationship", "relationship_type": "revoked-by", "source_ref": "ap--2", "target_ref": "ap--1"},
        {"type": "course-of-action", "id": "coa--1", "external_references": [{"source_name": "mitre-attack",
                                                                               "external_id": "M1031"}]},
    ]
    table = gen.techniques(objects)
    assert table == {
        "T1046": {"name": "name T1046", "tactics": ["discovery"], "revoked": False, "deprecated": False},
        "T1064": {"name": "name T1064", "tactics": ["discovery"], "revoked": False, "deprecated": True},
        "T1100": {"name": "name T1100", "tactics": ["discovery"], "revoked": True, "deprecated": False,
                  "revoked_by": "T1046"},
    }
    with pytest.raises(gen.DataError):
        gen.techniques([_pattern("ap--9", "T10460")])
    gen.cross_check(table, {"T1046": table["T1046"]})
    with pytest.raises(gen.DataError):
        gen.cross_check(table, {"T1200": table["T1046"]})
    with pytest.raises(gen.DataError):
        gen.cross_check({"T1100": {**table["T1100"], "revoked": False}}, {"T1100": table["T1100"]})
    assert json.loads(gen.dump({"a": 1, "t": table})) == {"a": 1, "t": table}
