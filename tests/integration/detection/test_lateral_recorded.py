"""Lateral movement on recorded real traffic (ssh/sshd, curl, Python listeners between namespaces): after
learning, the workstation that never used admin protocols is reported once per service with the right
victims and ATT&CK ids, from packets, from flow records and through replay; the admin host's routine stays
quiet. Ground truth: tests/data/captures/lateral/TRUTH.yaml (tests/support/record_lateral.py).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.pcap_flows import flow_events
from tests.support.record_lateral import LEARNING_S_IN_TESTS
from watchstander.agent.app.replay import replay
from watchstander.agent.app.wiring import App
from watchstander.agent.config.detectors import DetectorsConfig, LateralConfig
from watchstander.agent.config.model import AgentConfig
from watchstander.agent.detection.pipeline import Pipeline
from watchstander.agent.models import Finding
from watchstander.agent.store.schema import open_store
from watchstander.connectors.events import Event
from watchstander.connectors.packets import read_packets

pytestmark = pytest.mark.integration

LATERAL = Path(__file__).resolve().parents[2] / "data" / "captures" / "lateral"
TRUTH: dict[str, Any] = yaml.safe_load((LATERAL / "TRUTH.yaml").read_text())
FILES = [LATERAL / name for name in TRUTH["replay_order"]]
ADMIN, WORKSTATION = TRUTH["hosts"]["A"]["address"], TRUTH["hosts"]["C"]["address"]
# The recording holds LEARN_S seconds of learning; the detector's default is 7 days (TRUTH: configured).
CONFIG = DetectorsConfig(lateral=LateralConfig(learning_s=LEARNING_S_IN_TESTS))
READERS: dict[str, Callable[[Path], list[Event]]] = {"packets": lambda p: list(read_packets(p)),
                                                     "flows": flow_events}


def findings_of(files: list[Path], config: DetectorsConfig = CONFIG, path: str = "packets") -> list[Finding]:
    """Every finding of every detector on `files`, fed in order into one pipeline."""
    pipeline = Pipeline(config)
    for f in files:
        pipeline.feed_all(READERS[path](f))
    assert not pipeline.failures, pipeline.failures
    return pipeline.findings


def summary(f: Finding) -> tuple[str, str, str, tuple[str, ...], str, int]:
    """(attacker, service, first victim, ATT&CK ids, detector, targets) of a finding."""
    return (f.entities["attacker"], f.entities["service"], f.entities["victim"], f.techniques, f.detector,
            f.counts["targets"])


EXPECTED = sorted((e["attacker"], e["service"], e["victims"][0], (e["technique"],), "lateral", len(e["victims"]))
                  for e in TRUTH["expected_findings"])


def test_truth_says_what_was_recorded() -> None:
    assert {e["service"] for e in TRUTH["expected_findings"]} == {"smb", "rdp", "winrm", "ssh"}
    assert all(e["attacker"] == WORKSTATION for e in TRUTH["expected_findings"])
    for name, size in TRUTH["files"].items():
        assert (LATERAL / name).stat().st_size == size < 200_000
    conns = TRUTH["connections"]
    # The admin's key is accepted by the real sshd, the workstation's is refused: both are real SSH.
    assert {c["exit"] for c in conns if c["service"] == "ssh" and c["client"] == "A"} == {0}
    assert {c["exit"] for c in conns if c["service"] == "ssh" and c["client"] == "C"} == {255}
    assert {c["output"] for c in conns if c["service"] == "winrm"} == {"401"}
    learning = [c["time"] for c in conns if c["phase"] == "learning"]
    assert max(learning) - min(learning) > LEARNING_S_IN_TESTS
    assert not [c for c in conns if c["phase"] == "learning" and c["client"] == "C" and c["service"] != "web"]
    assert f"learning_s = {LEARNING_S_IN_TESTS:g}" in TRUTH["configured"]["learning"]


@pytest.mark.parametrize("path", ["packets", "flows"])
def test_workstation_is_reported_once_per_admin_service(path: str) -> None:
    findings = findings_of(FILES, path=path)
    assert sorted(summary(f) for f in findings) == EXPECTED, [f.title for f in findings]
    for f in findings:
        assert f.attributes["learned_s"] >= LEARNING_S_IN_TESTS
        assert f.counts["connections"] == f.counts["targets"]  # one connection per server in the recording
    titles = sorted(f.title for f in findings)
    assert "New SMB use from 10.0.0.20 to 2 hosts: never used before" in titles
    assert "New RDP use from 10.0.0.20 to 10.0.0.31: 10.0.0.20 never used RDP before" in titles


def test_admin_routine_after_learning_is_quiet() -> None:
    """A's SSH and WinRM after learning, one of them to a server new to A, raise nothing."""
    after = [c for c in TRUTH["connections"] if c["phase"] == "movement" and c["client"] == "A"]
    assert {c["service"] for c in after} == {"ssh", "winrm"} and len({c["dst"] for c in after}) == 3
    assert [f.title for f in findings_of(FILES) if ADMIN in f.entities.values()] == []


def test_without_learning_the_admin_would_be_reported_too() -> None:
    """The control above is quiet because of learning, not because A's traffic is invisible."""
    findings = findings_of([LATERAL / "movement.pcap"], DetectorsConfig(lateral=LateralConfig(learning_s=0)))
    assert {(f.entities["attacker"], f.entities["service"]) for f in findings} == {
        (ADMIN, "ssh"), (ADMIN, "winrm"),
        (WORKSTATION, "smb"), (WORKSTATION, "rdp"), (WORKSTATION, "winrm"), (WORKSTATION, "ssh")}


def test_default_learning_window_reports_nothing_yet() -> None:
    """With the default 7 days of learning, under a minute of traffic is all learning."""
    assert findings_of(FILES, DetectorsConfig()) == []


def test_movement_through_replay_is_one_incident_with_every_technique(tmp_path: Path) -> None:
    # Replay refuses packets more than a day after its clock: the clock is the day after the recording.
    recorded = datetime.fromisoformat(TRUTH["date"]).replace(tzinfo=UTC)
    clock = lambda: recorded + timedelta(days=1)
    config = AgentConfig.model_validate({"detectors": {"lateral": {"learning_s": LEARNING_S_IN_TESTS}}})
    store = open_store(f"sqlite:///{tmp_path / 'w.db'}")
    try:
        report = replay(App(config, store, clock), FILES, "test")
    finally:
        store.close()
    assert sum(report.detector_failures.values()) == 0, report.detector_failures
    assert len(report.incidents) == 1, [i.title for i in report.incidents]  # one host's movement, one incident
    found = [f for inc in report.incidents for f in inc.findings.values()]
    assert sorted(summary(f) for f in found) == EXPECTED
    assert sum(f.skipped.get("timestamp out of range", 0) for f in report.files) == 0
    techniques = {t for inc in report.incidents for t in inc.techniques}
    assert {"T1021.001", "T1021.002", "T1021.004", "T1021.006"} <= techniques
    assert all(inc.verdict is not None for inc in report.incidents)


@pytest.mark.privileged
@pytest.mark.slow
def test_live_recording_of_lateral_movement(tmp_path: Path) -> None:
    """Record a short learning phase and the movement between fresh namespaces, and detect it."""
    from tests.support import record_lateral
    from tests.support.netns import netns_skip_reason

    reason = netns_skip_reason()
    if reason:
        pytest.skip(reason)
    for tool in ("ssh", "ssh-keygen", record_lateral.SSHD, "curl", "tcpdump"):
        if shutil.which(tool) is None:
            pytest.skip(f"needs Debian's {tool}")
    truth = record_lateral.record(tmp_path, learn_s=6.0)
    files = [tmp_path / str(name) for name in truth["replay_order"]]  # type: ignore[attr-defined]
    findings = findings_of(files, DetectorsConfig(lateral=LateralConfig(learning_s=4.0)))
    assert sorted(summary(f) for f in findings) == EXPECTED
