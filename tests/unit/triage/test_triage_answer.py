"""Reading model answers: JSON extraction, contract checks, ATT&CK ids, evidence refs, parameter values."""

from __future__ import annotations

import json

import pytest

from watchstander.agent.detection.detectors.registry import DETECTORS
from watchstander.agent.triage.answer import (
    MalformedAnswer,
    extract_json,
    parameter_value,
    parse_answer,
    repair_request,
)
from watchstander.agent.triage.attack_ids import KNOWN_TECHNIQUES, _parse, is_known
from watchstander.playbooks.inputs import SAFE_VALUE

REFS = frozenset({"auth.log:12", "auth.log:13"})


def test_json_is_found_bare_fenced_or_in_prose(kit) -> None:
    text = json.dumps(kit.good())
    assert extract_json(text) == kit.good()
    assert extract_json(f"```json\n{text}\n```") == kit.good()
    assert extract_json(f"Here is my verdict:\n{text}\nHope this helps.") == kit.good()


@pytest.mark.parametrize("text", ["", "no json here", '{"severity": "high",', "[1, 2]", "{" * 5000 + "}" * 5000])
def test_unusable_text_is_malformed(text: str) -> None:
    with pytest.raises(MalformedAnswer):
        parse_answer(text, REFS)


def test_good_answer_parses(kit) -> None:
    ans = parse_answer(json.dumps(kit.good(techniques=["t1110.001 ", "T1110.001"], notes="extra key")), REFS)
    assert ans.techniques == ("T1110.001",)
    assert ans.actions[0].playbook == "block-address-nftables"
    assert ans.evidence_refs == ("auth.log:12",)


@pytest.mark.parametrize(("change", "words"), [
    ({"techniques": ["T1110.999"]}, "unknown ATT&CK technique ids: T1110.999"),
    ({"techniques": ["brute force"]}, "unknown ATT&CK"),
    ({"evidence_refs": ["auth.log:12", "made-up:1"]}, "made-up:1"),
    ({"severity": "apocalyptic"}, "severity"),
    ({"confidence": 1.5}, "confidence"),
    ({"summary": ""}, "summary"),
    ({"recommended_actions": [{"playbook": "x", "parameters": {}, "run_now": True}]}, "run_now"),
    ({"recommended_actions": [{"playbook": "", "parameters": {}}]}, "playbook"),
    ({"recommended_actions": [{"playbook": "x"}] * 17}, "at most 16"),
])
def test_contract_violations_are_malformed_and_say_why(kit, change, words) -> None:
    with pytest.raises(MalformedAnswer) as err:
        parse_answer(json.dumps(kit.good(**change)), REFS)
    assert words in "; ".join(err.value.problems)
    assert words in repair_request(err.value.problems) or len(words) > 300


def test_long_texts_are_cut_to_the_contract(kit) -> None:
    ans = parse_answer(json.dumps(kit.good(summary="s" * 5000, rationale="r" * 9000)), REFS)
    assert len(ans.summary) == 1000 and len(ans.rationale) == 4000


@pytest.mark.parametrize(("value", "expected"), [
    ("10.0.0.1", "10.0.0.1"), (60, 60), (True, True), (["a", "b"], ["a", "b"]),
    (1.5, "<unrepresentable number: 1.5>"), (60.0, "<unrepresentable number: 60.0>"),
    (None, "<unrepresentable null: null>"), ({"$ne": 1}, '<unrepresentable object: {"$ne": 1}>'),
    (["a", 1], '<unrepresentable list: ["a", 1]>'),
])
def test_parameter_values_are_kept_or_marked_never_coerced(value, expected) -> None:
    assert parameter_value(value) == expected


def test_markers_and_cut_values_match_no_input_alphabet() -> None:
    for value in (1.5, None, {}, [1], "x" * 600):
        marked = parameter_value(value)
        assert isinstance(marked, str) and not SAFE_VALUE.fullmatch(marked)


def test_attack_table_covers_every_detector_technique() -> None:
    assert len(DETECTORS) >= 7
    used = {t for det in DETECTORS.values() for t in getattr(det, "techniques", ())}
    used |= {"T1110", "T1602.001", "T1046", "T1190", "T1071", "T1071.004", "T1078", "T1595"}
    assert used and all(is_known(t) for t in used)
    assert {"T1003.008", "T1059.004", "T1557.002", "T1498.001", "T1562.013"} <= KNOWN_TECHNIQUES
    assert not is_known("T1003.009") and not is_known("T1110.001 ")


def test_attack_table_rejects_duplicates() -> None:
    with pytest.raises(ValueError):
        _parse("T1001 T1001")
    assert _parse("T1053:2,5") == {"T1053", "T1053.002", "T1053.005"}
