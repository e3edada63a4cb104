"""Factories for triage unit tests: incidents, baselines, and services over LangChain's fake chat model."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import pytest
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage

from watchstander.agent.assets import AssetIndex
from watchstander.agent.config.triage import TriageConfig
from watchstander.agent.detection.detectors.registry import detector_profiles
from watchstander.agent.models import Finding, Incident, TriageVerdict
from watchstander.agent.triage.baseline import BaselineAnalyst
from watchstander.agent.triage.service import TriageService

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=timezone.utc)

GOOD: dict[str, Any] = {
    "severity": "high", "confidence": 0.8, "disposition": "likely_true_positive",
    "techniques": ["T1110.001"], "summary": "Password guessing.", "rationale": "Many failures.",
    "evidence_refs": ["auth.log:12"],
    "recommended_actions": [{"playbook": "block-address-nftables",
                             "parameters": {"address": "198.51.100.23"}, "justification": "stop it"}],
}


def make_incident(attacker: str = "198.51.100.23", *, count: int = 40, title: str = "Password guessing",
                  refs: tuple[str, ...] = ("auth.log:12", "auth.log:13"), **attributes: Any) -> Incident:
    """A one-finding brute-force incident at NOW."""
    t = NOW.timestamp()
    f = Finding("bruteforce", title, "high", {"attacker": attacker, "victim": "10.20.0.22"}, ("T1110.001",),
                t - 900, t - 60, count=count, counts={"failures": count}, attributes=dict(attributes),
                evidence=list(refs))
    return Incident(f"fp-{attacker}", attacker, title, "high", f.first_seen, f.last_seen, {f.key: f})


def baseline_for(incident: Incident) -> TriageVerdict:
    """The baseline analyst's verdict at NOW."""
    return BaselineAnalyst(AssetIndex(()), NOW, detector_profiles()).triage(incident)


def reply(content: dict[str, Any] | str, input_tokens: int = 100, output_tokens: int = 20) -> AIMessage:
    """An AIMessage as a chat model returns it, with usage."""
    text = content if isinstance(content, str) else json.dumps(content)
    return AIMessage(content=text, response_metadata={"model_name": "fake-model-1"},
                     usage_metadata={"input_tokens": input_tokens, "output_tokens": output_tokens,
                                     "total_tokens": input_tokens + output_tokens})


@dataclass
class FakeModel:
    """Scripted answers (AIMessage, or an exception to raise) and a count of calls."""

    answers: list[AIMessage | BaseException] = field(default_factory=list)
    calls: int = 0

    def __iter__(self) -> Iterator[AIMessage]:
        return self

    def __next__(self) -> AIMessage:
        # Not a generator: a generator that raised once is finished, and the next call must still work.
        if not self.answers:
            raise RuntimeError("the fake model has no more answers")
        self.calls += 1
        item = self.answers.pop(0)
        if isinstance(item, BaseException):
            raise item
        return item

    def factory(self, config: TriageConfig, key: Any) -> GenericFakeChatModel:
        """A chat_model_factory for TriageService."""
        return GenericFakeChatModel(messages=self)


@dataclass
class Kit:
    """What the tests need, through one fixture."""

    now: datetime = NOW
    incident: Callable[..., Incident] = make_incident
    baseline: Callable[[Incident], TriageVerdict] = baseline_for
    reply: Callable[..., AIMessage] = reply

    @staticmethod
    def good(**changes: Any) -> dict[str, Any]:
        """A well-formed answer for make_incident()'s incident."""
        return json.loads(json.dumps(GOOD)) | changes


@pytest.fixture
def kit() -> Kit:
    """Factories and constants for triage tests."""
    return Kit()


@pytest.fixture
def fake_service() -> Iterator[Callable[..., tuple[TriageService, FakeModel]]]:
    """Factory: (TriageService over a fake chat model answering `answers`, the fake)."""
    made: list[TriageService] = []

    def make(*answers: AIMessage | BaseException, clock: Callable[[], datetime] = lambda: NOW,
             **settings: Any) -> tuple[TriageService, FakeModel]:
        fake = FakeModel(list(answers))
        config = TriageConfig(**({"model": "openai:fake-model", "timeout_s": 2.0} | settings))
        svc = TriageService(config, playbooks_for_model=lambda: [], clock=clock,
                            chat_model_factory=fake.factory, env={})
        made.append(svc)
        return svc, fake

    yield make
    for svc in made:
        svc.close()
