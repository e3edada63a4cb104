"""The report's operational evidence counts what the review queue really records."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from watchstander.agent.cli.main import main
from watchstander.agent.clock import system_clock
from watchstander.agent.demo.data import write_demo_telemetry

pytestmark = pytest.mark.integration


def test_decisions_and_detection_to_decision_time(capsys, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    cfg = tmp_path / "w.toml"
    cfg.write_text(f'[store]\nurl = "sqlite:///{tmp_path / "w.db"}"\n'
                   '[[devices]]\nname = "fw1"\naddress = "192.0.2.1"\nroles = ["linux-firewall"]\n'
                   '[policy.defaults.block-address-nftables]\nfirewall = "fw1"\n'
                   '[policy.defaults.capture-incident-traffic]\ninterface = "span0"\n', encoding="utf-8")
    base = ["--config", str(cfg)]
    assert main(["playbooks", "approve", "block-address-nftables", *base]) == 0
    assert main(["playbooks", "approve", "notify-webhook", *base]) == 0
    # The CLI decides on the system clock, so the activity must precede it.
    files = [str(p) for p in write_demo_telemetry(tmp_path / "t", system_clock())]
    assert main(["replay", "--no-progress", *base, *files]) == 0
    capsys.readouterr()
    assert main(["suggestions", "list", "--format", "json", *base]) == 0
    listed = json.loads(capsys.readouterr().out)["suggestions"]
    blocks = [s for s in listed if s["playbook_id"] == "block-address-nftables"]
    notes = [s for s in listed if s["playbook_id"] == "notify-webhook"]
    assert blocks and notes
    assert main(["suggestions", "approve", str(blocks[0]["id"]), *base]) == 0
    assert main(["suggestions", "reject", str(notes[0]["id"]), "--reason", "known scanner", *base]) == 0
    out = tmp_path / "report.json"
    assert main(["guidance", "export", "--format", "json", "--out", str(out), *base]) == 0
    ops = json.loads(out.read_text(encoding="utf-8"))["operational"]
    assert ops["suggestions_approved"] == 1 and ops["suggestions_rejected"] == 1
    assert ops["incidents_triaged"] == 8 and ops["verdicts_baseline"] == 8
    assert ops["decisions_timed"] == 2 and ops["median_detection_to_decision_s"] > 0
