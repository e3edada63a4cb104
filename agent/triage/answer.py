"""Reading a model's answer: find the JSON, validate its shape, check ids and references.

Whatever the model recommended is kept for the policy guard, which refuses what it must and audits
the refusal. A parameter value the verdict contract cannot hold (a number with a fraction, null, an
object, a list of non-strings) is kept as a marker string, `<unrepresentable TYPE: JSON>`. The
marker contains `<` and a space, characters no playbook input type accepts, so the guard sees the
value and refuses it; nothing is dropped and nothing is coerced into a valid value.
"""

from __future__ import annotations

import json
import re
from collections.abc import Set
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..models import Disposition, RecommendedAction, Severity
from .attack_ids import normalise, problem

MAX_ACTIONS = 16
MAX_PARAMETERS = 32
MAX_VALUE_CHARS = 512
MAX_PROBLEMS = 8
_FENCE = re.compile(r"^```[A-Za-z0-9_-]*\s*\n?(.*?)\n?```$", re.S)

ParameterValue = str | int | bool | list[str]


class MalformedAnswer(Exception):
    """The answer cannot be used; `problems` say why, in words fit to send back to the model."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


class _Action(BaseModel):
    model_config = ConfigDict(extra="forbid")

    playbook: str = Field(min_length=1, max_length=128)
    parameters: dict[str, Any] = Field(default_factory=dict)
    justification: str = ""


class _Answer(BaseModel):
    # Unknown top-level keys are ignored: harmless, and models like to add "notes".
    model_config = ConfigDict(extra="ignore")

    severity: Severity
    confidence: float = Field(ge=0.0, le=1.0)
    disposition: Disposition
    techniques: list[str] = Field(default_factory=list, max_length=64)
    summary: str = Field(min_length=1)
    rationale: str = Field(min_length=1)
    evidence_refs: list[str] = Field(default_factory=list, max_length=64)
    recommended_actions: list[_Action] = Field(default_factory=list)


@dataclass(frozen=True)
class Answer:
    """A validated answer, ready to become a TriageVerdict."""

    severity: Severity
    confidence: float
    disposition: Disposition
    techniques: tuple[str, ...]
    summary: str
    rationale: str
    evidence_refs: tuple[str, ...]
    actions: tuple[RecommendedAction, ...]


def extract_json(text: str) -> Any:
    """The JSON object in `text` (bare, in a code fence, or surrounded by prose); raises MalformedAnswer."""
    body = text.strip()
    fenced = _FENCE.match(body)
    if fenced:
        body = fenced.group(1).strip()
    if not body.startswith("{"):
        start, end = body.find("{"), body.rfind("}")
        if start < 0 or end <= start:
            raise MalformedAnswer(["the answer contains no JSON object"])
        body = body[start:end + 1]
    try:
        return json.loads(body)
    except (json.JSONDecodeError, RecursionError) as exc:
        msg = exc.msg if isinstance(exc, json.JSONDecodeError) else "nested too deeply"
        raise MalformedAnswer([f"the answer is not valid JSON ({msg})"]) from None


def parameter_value(value: Any) -> ParameterValue:
    """`value` as the verdict contract holds it, or a marker string no input type accepts."""
    if isinstance(value, (bool, int)):
        return value
    if isinstance(value, str):
        return _cap(value)
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return [_cap(v) for v in value]
    kind = {float: "number", dict: "object", list: "list", type(None): "null"}.get(type(value), "value")
    text = json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)
    return f"<unrepresentable {kind}: {_cap(text, 200)}>"


def _cap(text: str, limit: int = MAX_VALUE_CHARS) -> str:
    # The ellipsis is outside every input type's alphabet, so a cut value can never validate.
    return text if len(text) <= limit else text[:limit] + "…"


def _fit(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit - 1] + "…"


def parse_answer(text: str, known_refs: Set[str]) -> Answer:
    """Validate a model's answer text against the contract, the ATT&CK list and the incident's evidence."""
    raw = extract_json(text)
    if not isinstance(raw, dict):
        raise MalformedAnswer(["the answer must be one JSON object"])
    try:
        parsed = _Answer.model_validate(raw)
    except ValidationError as exc:
        invalid = [f"{'.'.join(str(p) for p in e['loc']) or 'answer'}: {e['msg']}"
                   for e in exc.errors(include_url=False, include_input=False)]
        raise MalformedAnswer(invalid[:MAX_PROBLEMS]) from None
    problems: list[str] = []
    techniques = tuple(dict.fromkeys(normalise(t) for t in parsed.techniques))
    # The words say why (revoked: use which instead), so the repair prompt can fix the answer.
    refused = [why for t in techniques if (why := problem(t)) is not None]
    if refused:
        problems.append(f"unknown ATT&CK technique ids: {'; '.join(_fit(why, 90) for why in refused[:10])}")
    refs = tuple(dict.fromkeys(parsed.evidence_refs))
    missing = [r for r in refs if r not in known_refs]
    if missing:
        problems.append("evidence_refs not in the findings' evidence lists: "
                        + ", ".join(_fit(r, 80) for r in missing[:10]))
    if len(parsed.recommended_actions) > MAX_ACTIONS:
        problems.append(f"at most {MAX_ACTIONS} recommended_actions")
    for i, action in enumerate(parsed.recommended_actions):
        if len(action.parameters) > MAX_PARAMETERS:
            problems.append(f"recommended_actions.{i}: at most {MAX_PARAMETERS} parameters")
    if problems:
        raise MalformedAnswer(problems)
    actions = tuple(
        RecommendedAction(playbook=a.playbook,
                          parameters={k: parameter_value(v) for k, v in a.parameters.items()},
                          justification=_fit(a.justification, 2000))
        for a in parsed.recommended_actions)
    return Answer(parsed.severity, parsed.confidence, parsed.disposition, techniques,
                  _fit(parsed.summary, 1000), _fit(parsed.rationale, 4000), refs, actions)


def repair_request(problems: list[str]) -> str:
    """The follow-up message asking for a corrected answer."""
    listed = "\n".join(f"- {_fit(p, 300)}" for p in problems[:MAX_PROBLEMS])
    return ("Your previous answer could not be used:\n" + listed + "\n"
            "Reply again with only the corrected JSON object in the required format, nothing else.")
