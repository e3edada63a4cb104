"""Replaying the demo telemetry with AI triage: one model call and one verdict per incident."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Any

import pytest

from watchstander.agent.assets import AssetIndex
from watchstander.agent.config.model import AgentConfig, Asset
from watchstander.agent.demo.data import write_demo_telemetry
from watchstander.agent.detection.correlator import Correlator, refresh_summary
from watchstander.agent.detection.detectors.registry import detector_profiles
from watchstander.agent.detection.pipeline import Pipeline
from watchstander.agent.models import Finding, Incident
from watchstander.agent.triage.baseline import BaselineAnalyst
from watchstander.connectors.formats import open_file
from watchstander.connectors.skips import SkipCounter

pytestmark = pytest.mark.integration

BLOCK = re.compile(r"<untrusted_incident_data>\n(.*)\n</untrusted_incident_data>", re.S)


def incident_in(request: dict[str, Any]) -> dict[str, Any]:
    """The incident data block of a request, parsed back from the escaped JSON."""
    user = request["messages"][-1]["content"]
    match = BLOCK.search(user)
    assert match, "the incident data block is missing"
    return json.loads(match.group(1))  # type: ignore[no-any-return]


def analyst(request: dict[str, Any]) -> dict[str, Any]:
    """A scripted model that reads the incident and cites its first evidence reference."""
    data = incident_in(request)
    refs = [r for f in data["findings"] for r in f["evidence"]][:1]
    return {"severity": data["severity"], "confidence": 0.7, "disposition": "needs_review",
            "techniques": data["techniques"], "summary": f"incident {data['fingerprint']}",
            "rationale": "scripted", "evidence_refs": refs, "recommended_actions": []}


def correlate(files: list[Path], config: AgentConfig, clock: Any) -> list[Incident]:
    """Detection and correlation as replay runs them, without the store."""
    pipeline = Pipeline(config.detectors)
    for path in files:
        _fmt, events = open_file(path, clock, SkipCounter(logging.getLogger("test"), str(path)))
        pipeline.feed_all(events)
    # An IDS alert about the demo's port scanner, so one incident holds two findings.
    t = clock().timestamp() - 1800
    extra = Finding("ids", "IDS: ET SCAN Nmap", "medium", {"attacker": "203.0.113.50", "victim": "10.20.0.10"},
                    ("T1046",), t, t + 5, count=3, evidence=["demo-eve.json:999"])
    incidents = Correlator(config.correlation.window_s).add_all([*pipeline.findings, extra])
    for inc in incidents:
        refresh_summary(inc)
    return incidents


def test_replay_makes_one_model_call_and_one_verdict_per_incident(make_service, llm_server, kit,
                                                                  tmp_path: Path) -> None:
    clock = lambda: kit.now  # noqa: E731
    config = AgentConfig(assets=(Asset(cidr="10.20.0.53/32", name="resolver", criticality="critical",
                                       protected=True),))
    files = write_demo_telemetry(tmp_path / "telemetry", kit.now, benign_connections=50)
    incidents = correlate(files, config, clock)
    assert len(incidents) >= 5
    assert sum(len(i.findings) for i in incidents) > len(incidents)  # some incidents group several findings

    llm_server.script(then=kit.dynamic(analyst))
    svc = make_service()
    base = BaselineAnalyst(AssetIndex(config.assets), kit.now, detector_profiles())
    verdicts = {inc.fingerprint: svc.triage(inc, base.triage(inc), {}) for inc in incidents}

    assert llm_server.calls == len(incidents)
    asked = sorted(incident_in(r["body"])["fingerprint"] for r in llm_server.requests)
    assert asked == sorted(inc.fingerprint for inc in incidents)  # each incident once, not each finding
    for fingerprint, verdict in verdicts.items():
        prov = verdict.provenance
        assert prov.analyst == "model", prov.fallback_reason
        assert verdict.summary == f"incident {fingerprint}"
        assert (prov.provider, prov.model, prov.endpoint_host) == ("openai", "scripted-model", "127.0.0.1")
        assert prov.prompt_sha256 and prov.response_sha256 and prov.input_tokens == 321

    # A second flush with nothing new sends nothing.
    for inc in incidents:
        svc.triage(inc, base.triage(inc), {})
    assert llm_server.calls == len(incidents)

