"""Acceptance: replaying real attack telemetry from ../shared/telemetry with the scripted model
gives one model call and one verdict per incident (not per finding), each with full provenance,
in the store and in the audit log."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

import pytest

from watchstander.agent.triage.prompt import TEMPLATE_VERSION, messages_sha256

pytestmark = [pytest.mark.integration, pytest.mark.shared]

# Small attack files of several kinds; OpenSSH_2k.log has an incident holding two findings.
FILES = ("pcaps/sshguess.pcap", "pcaps/arppoison.pcapng", "pcaps/hs-icmpScan.pcap",
         "pcaps/dns-tunnel-iodine.pcap", "pcaps/synscan.pcapng", "logs/OpenSSH_2k.log")
BLOCK = re.compile(r"<untrusted_incident_data>\n(.*)\n</untrusted_incident_data>", re.S)
PROVENANCE = ("provider", "model", "model_version", "endpoint_host", "prompt_template_version", "prompt_sha256",
              "response_sha256", "input_tokens", "output_tokens", "latency_ms")


def incident_in(request: dict[str, Any]) -> dict[str, Any]:
    """The incident data a chat request carries."""
    match = BLOCK.search(request["messages"][-1]["content"])
    assert match, "no incident data block in the request"
    return json.loads(match.group(1))  # type: ignore[no-any-return]


def analyst(request: dict[str, Any]) -> dict[str, Any]:
    """A scripted model that answers about the incident it is sent, citing its own evidence."""
    data = incident_in(request)
    refs = [r for f in data["findings"] for r in f["evidence"]][:2]
    return {"severity": data["severity"], "confidence": 0.66, "disposition": "needs_review",
            "techniques": data["techniques"], "summary": f"scripted verdict for {data['fingerprint']}",
            "rationale": f"{len(data['findings'])} finding(s) from {', '.join(data['detectors'])}",
            "evidence_refs": refs, "recommended_actions": []}


def test_shared_attacks_get_one_model_call_and_one_verdict_per_incident(shared_telemetry: Path, make_site,
                                                                        llm_server, kit) -> None:
    files = [shared_telemetry / rel for rel in FILES]
    site = make_site(kit.triage_section(llm_server))
    site.approve_playbooks()
    llm_server.script(then=kit.dynamic(analyst))
    out, seconds = site.replay(*files)
    summary = json.loads(out)

    listed = site.incidents()
    incidents = {i["fingerprint"]: site.incident(i["id"]) for i in listed}
    assert len(incidents) == len(summary["incidents"]) >= len(FILES)
    assert summary["findings"] > len(incidents)  # some incident holds several findings, and is asked once
    assert llm_server.calls == len(incidents)
    asked = {incident_in(r["body"])["fingerprint"]: r["body"] for r in llm_server.requests}
    assert sorted(asked) == sorted(incidents)

    verdicts = {r["subject"]: r["data"] for r in kit.records(site.audit(), "triage.verdict")}
    assert len(verdicts) == len(incidents)
    for fingerprint, inc in incidents.items():
        verdict = inc["verdict"]
        prov = verdict["provenance"]
        assert prov["analyst"] == "model", prov["fallback_reason"]
        assert all(prov[k] is not None for k in PROVENANCE), prov
        assert (prov["provider"], prov["model"], prov["endpoint_host"]) == ("openai", "scripted-model", "127.0.0.1")
        assert prov["prompt_template_version"] == TEMPLATE_VERSION
        assert (prov["input_tokens"], prov["output_tokens"]) == (321, 87) and prov["latency_ms"] > 0
        assert prov["model_version"].startswith(kit.model_version)
        # The hashes are of what went over the wire: the request this incident's prompt was, the answer it got.
        request = asked[fingerprint]
        assert prov["prompt_sha256"] == messages_sha256([(m["role"], m["content"]) for m in request["messages"]])
        reply = json.dumps(analyst(request))
        assert prov["response_sha256"] == hashlib.sha256(reply.encode()).hexdigest()
        assert verdict["summary"] == f"scripted verdict for {fingerprint}"
        audited = verdicts[f"incident:{inc['id']}"]
        assert audited["fingerprint"] == fingerprint and audited["provenance"] == prov
    print(f"shared replay: {len(FILES)} files, {summary['events']} events, {summary['findings']} findings, "
          f"{len(incidents)} incidents, {llm_server.calls} model calls, {seconds:.2f} s")
