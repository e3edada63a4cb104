"""The guidance commands end to end: real CLI, real SQLite file, audit chain, every export format."""

from __future__ import annotations

import csv
import hashlib
import json
import shutil
import sqlite3
import subprocess
from collections.abc import Callable
from datetime import date, datetime, timezone
from pathlib import Path

import pytest

from watchstander.agent.cli.context import Context
from watchstander.agent.clock import fixed_clock
from watchstander.agent.store.audit import AuditLog

pytestmark = pytest.mark.integration
Cli = Callable[..., int]


def _json(capsys: pytest.CaptureFixture[str]) -> dict:  # type: ignore[type-arg]
    return json.loads(capsys.readouterr().out)


def test_update_status_show_and_audit(cli: Cli, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    memo = tmp_path / "memo.pdf"
    memo.write_bytes(b"%PDF-1.4 signed memo\n")
    assert cli("guidance", "update", "eo14409-2b", "--status", "complete", "--owner", "DOW CIO",
               "--evidence", str(memo), "--evidence", "https://intranet.example.mil/memo",
               "--note", "signed by the Secretary", "--completed-on", "2026-06-30") == 0
    assert cli("guidance", "update", "eo14409-3", "--due", "2026-07-31", "--reason", "due Saturday; Friday set") == 0
    assert cli("guidance", "update", "eo14409-2a", "--status", "in_progress", "--owner", "CNSS secretariat") == 0
    capsys.readouterr()

    assert cli("guidance", "status", "--as-of", "2026-07-20", "--format", "json", "--order", "eo14409") == 0
    data = _json(capsys)
    rows = {r["id"]: r for r in data["obligations"]}
    assert rows["eo14409-2b"]["standing"] == "complete"
    assert rows["eo14409-2b"]["evidence"][0]["sha256"] == hashlib.sha256(memo.read_bytes()).hexdigest()
    assert rows["eo14409-2b"]["evidence"][0]["ref"] == str(memo.resolve())
    assert rows["eo14409-2a"]["standing"] == "overdue" and rows["eo14409-2a"]["owner"] == "CNSS secretariat"
    assert rows["eo14409-3"]["due"] == "2026-07-31" and rows["eo14409-3"]["computed_due"] == "2026-08-01"
    assert data["summary"]["verdict"].startswith("ACTION NEEDED: 2 of 4")
    # The same day reported before the completion date shows it open.
    assert cli("guidance", "status", "--as-of", "2026-06-25", "--format", "json", "--order", "eo14409") == 0
    assert {r["id"]: r["standing"] for r in _json(capsys)["obligations"]}["eo14409-2b"] == "due_soon"

    assert cli("guidance", "status", "--as-of", "2026-07-20") == 0
    table = capsys.readouterr().out
    assert "ACTION NEEDED" in table and "For awareness" in table and "eo14409-2b" in table

    assert cli("guidance", "show", "eo14409-2b", "--format", "json") == 0
    shown = _json(capsys)
    actions = [h["action"] for h in shown["history"]]
    assert actions == ["guidance.obligation.status", "guidance.obligation.completed", "guidance.obligation.owner",
                       "guidance.obligation.evidence", "guidance.obligation.evidence", "guidance.obligation.note"]
    assert shown["obligation"]["notes"][0].endswith("signed by the Secretary")

    ctx = Context(config_path=tmp_path / "watchstander.toml")
    try:
        audit = AuditLog(ctx.store)
        assert audit.verify().ok
        assert audit.count() == 9
    finally:
        ctx.close()


def test_input_errors_have_their_exit_status(cli: Cli, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli("guidance", "update", "no-such-thing", "--status", "complete") == 5
    assert cli("guidance", "update", "eo14409-3", "--due", "2026-07-31") == 4
    assert "needs a reason" in capsys.readouterr().err
    assert cli("guidance", "update", "eo14409-3", "--evidence", str(tmp_path / "missing.pdf")) == 4
    assert cli("guidance", "update", "eo14409-3", "--evidence", "ftp://x/y") == 4
    assert cli("guidance", "update", "eo14409-3") == 4
    assert "nothing to change" in capsys.readouterr().err
    assert cli("guidance", "status", "--order", "eo99999") == 5
    assert cli("guidance", "export", "--format", "csv", "--out", str(tmp_path / "no" / "dir.csv")) == 4
    with pytest.raises(SystemExit) as exit_info:
        cli("guidance", "status", "--as-of", "2026-13-01")
    assert exit_info.value.code == 2


def test_events_and_dependent_deadlines(cli: Cli, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli("guidance", "event", "nspm12-incident-reporting-standards-released", "--date", "2026-10-01") == 0
    assert cli("guidance", "update", "nspm12-6b-iii", "--status", "complete", "--completed-on", "2026-09-01") == 0
    capsys.readouterr()
    assert cli("guidance", "status", "--as-of", "2026-10-02", "--format", "json", "--order", "nspm12") == 0
    rows = {r["id"]: r for r in _json(capsys)["obligations"]}
    assert rows["nspm12-6c-iii"]["due"] == "2026-11-30"
    assert rows["nspm12-6b-iii-complete"]["due"] == "2026-11-30"
    assert rows["nspm12-6c-ii"]["standing"] == "awaiting_anchor"
    assert cli("guidance", "event", "Bad Name", "--date", "2026-10-01") == 4


def test_site_obligations(cli: Cli, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert cli("guidance", "add", "dow-2b-cio-memo", "--order", "eo14409", "--section", "2(b)",
               "--title", "DoW CIO implementing memorandum", "--lead", "DOW Chief Information Officer",
               "--deliverable", "CIO memorandum to components", "--deadline", "14 days after eo14409-2b",
               "--implements", "eo14409-2b") == 0
    assert cli("guidance", "add", "dow-local-1", "--section", "1(a)", "--title", "Component reporting",
               "--lead", "DOW Chief Information Officer", "--deliverable", "Component reports",
               "--deadline", "on 2026-08-15") == 0
    assert cli("guidance", "add", "dow-local-1", "--section", "1(a)", "--title", "Again", "--lead", "X",
               "--deliverable", "Again", "--deadline", "none") == 4
    assert cli("guidance", "add", "dow-bad", "--section", "1(a)", "--title", "Bad rule", "--lead", "X",
               "--deliverable", "Bad", "--deadline", "30 days after order") == 4  # the site catalogue has no date
    assert cli("guidance", "add", "dow-bad", "--section", "1(a)", "--title", "Bad anchor", "--lead", "X",
               "--deliverable", "Bad", "--deadline", "3 days after nothing-here") == 2
    assert cli("guidance", "update", "eo14409-2b", "--status", "complete", "--completed-on", "2026-07-01") == 0
    capsys.readouterr()
    assert cli("guidance", "status", "--as-of", "2026-07-10", "--format", "json") == 0
    rows = {r["id"]: r for r in _json(capsys)["obligations"]}
    assert rows["dow-2b-cio-memo"]["due"] == "2026-07-15" and rows["dow-2b-cio-memo"]["implements"] == "eo14409-2b"
    assert rows["dow-local-1"]["order"] == "Site" and rows["dow-local-1"]["due_flag"] == "Saturday"
    assert cli("guidance", "catalogues") == 0
    assert "site" in capsys.readouterr().out


def test_catalogue_validation_command(cli: Cli, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = tmp_path / "good.yaml"
    good.write_text("id: dow-memo\nnumber: DoW-1\ntitle: DoW memo\ntype: agency-guidance\nsigned: 2026-06-20\n"
                    "citation: DoW memo 1\nobligations:\n  - id: dow-memo-1\n    section: 1(a)\n"
                    "    title: Components report\n    clause: Components shall report within 10 days\n"
                    "    lead: [DOW Chief Information Officer]\n    deliverable: Report\n"
                    "    deadline: 10 days after order\n", encoding="utf-8")
    bad = tmp_path / "bad.yaml"
    bad.write_text("id: x\nnumber: 1\n", encoding="utf-8")
    assert cli("guidance", "catalogues", "--validate", str(good)) == 0
    assert cli("guidance", "catalogues", "--validate", str(good), str(bad)) == 1
    err = capsys.readouterr().err
    assert "bad.yaml: INVALID" in err and "title" in err


def _filler(name: str, decl: str, when: str) -> object:
    if "first_seen" in name or "last_seen" in name:
        return datetime.fromisoformat(when).timestamp() if ("REAL" in decl or "FLOAT" in decl) else when
    if name.endswith("_at"):
        return when
    return 0 if ("INT" in decl or "REAL" in decl or "FLOAT" in decl) else f"{name}-{when}"


def _seed_agent_tables(db: Path) -> None:
    """Incidents as the agent stores them: the core schema when it exists, else the documented minimum."""
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS incidents "
                     "(id INTEGER PRIMARY KEY, first_seen TEXT, created_at TEXT, verdict_json TEXT)")
        cols = [(r[1], (r[2] or "").upper(), r[3], r[4]) for r in conn.execute("PRAGMA table_info(incidents)")]
        verdicts = [
            (1, "2026-07-01T10:00:00+00:00", {"provenance": {"analyst": "model"}}),
            (2, "2026-07-02T10:00:00+00:00", {"provenance": {"analyst": "baseline", "fallback_reason": "timeout"}}),
            (3, "2026-07-03T10:00:00+00:00", {"provenance": {"analyst": "model"}}),
            (4, "2026-08-30T10:00:00+00:00", {"provenance": {"analyst": "model"}}),  # after the report date
            (5, "2026-07-04T10:00:00+00:00", None),
        ]
        for inc, seen, verdict in verdicts:
            row: dict[str, object] = {"id": inc, "verdict_json": json.dumps(verdict) if verdict else None}
            for name, decl, notnull, default in cols:
                if name not in row and (notnull or name in ("first_seen", "created_at")) and default is None:
                    row[name] = _filler(name, decl, seen)
            conn.execute(f"INSERT INTO incidents ({', '.join(row)}) VALUES ({', '.join('?' for _ in row)})",
                         list(row.values()))
    # Suggestion decisions and playbook runs go through the real audit chain.
    ctx = Context(config_path=db.parent / "watchstander.toml",
                  clock=fixed_clock(datetime(2026, 7, 1, 10, 30, tzinfo=timezone.utc)))
    try:
        # The review queue's records: creation names the incident, transitions are decisions.
        ctx.audit.append("watchstander:triage", "suggestion.create", "suggestion:1", {"incident": 1})
        ctx.audit.append("watchstander:triage", "suggestion.create", "suggestion:2", {"incident": 2})
        ctx.audit.append("watchstander:triage", "suggestion.create", "suggestion:3", {"incident": 3})
        ctx.audit.append("uid:1:op", "suggestion.approve", "suggestion:1", {"count": 1, "required": 1})
        ctx.audit.append("uid:1:op", "suggestion.transition", "suggestion:1", {"from": "pending", "to": "approved"})
        ctx2 = AuditLog(ctx.store, fixed_clock(datetime(2026, 7, 2, 11, 0, tzinfo=timezone.utc)))
        ctx2.append("uid:1:op", "suggestion.transition", "suggestion:2", {"from": "pending", "to": "rejected"})
        ctx2.append("runner", "playbook.run.started", "run-1", {})
        ctx2.append("runner", "playbook.run.finished", "run-1", {})
        ctx2.append("runner", "playbook.run.started", "run-2", {})
    finally:
        ctx.close()


def test_exports_and_operational_evidence(cli: Cli, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli("guidance", "update", "eo14409-2b", "--status", "complete", "--completed-on", "2026-06-30") == 0
    _seed_agent_tables(tmp_path / "state.db")
    outs = {}
    for fmt, suffix in (("csv", "csv"), ("json", "json"), ("html", "html"), ("pdf", "pdf"), ("oscal-poam", "json")):
        out = tmp_path / f"report-{fmt}.{suffix}"
        assert cli("guidance", "export", "--format", fmt, "--out", str(out), "--as-of", "2026-07-20") == 0
        outs[fmt] = out
    raw = outs["csv"].read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")
    rows = list(csv.DictReader(outs["csv"].read_text(encoding="utf-8-sig").splitlines()))
    assert len(rows) == 40 and rows[0]["standing"] == "Overdue"
    report = json.loads(outs["json"].read_text(encoding="utf-8"))
    op = report["operational"]
    assert (op["incidents_triaged"], op["verdicts_model"], op["verdicts_baseline"], op["model_fallbacks"]) == (3, 2, 1, 1)
    assert (op["suggestions_approved"], op["suggestions_rejected"], op["playbooks_run"]) == (1, 1, 2)
    assert op["median_detection_to_decision_s"] == (1800 + 3600) / 2 and op["decisions_timed"] == 2
    poam = json.loads(outs["oscal-poam"].read_text(encoding="utf-8"))
    assert len(poam["plan-of-action-and-milestones"]["poam-items"]) == 39
    html = outs["html"].read_text(encoding="utf-8")
    assert "45 min" in html and "<svg" in html
    assert outs["pdf"].read_bytes().startswith(b"%PDF-")
    assert not list(tmp_path.glob(".report-*"))  # no temporary files left behind


def test_operational_evidence_without_agent_tables(cli: Cli, tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    assert cli("guidance", "export", "--format", "json", "--out", str(out), "--as-of", "2026-07-20") == 0
    op = json.loads(out.read_text(encoding="utf-8"))["operational"]
    assert op["incidents_triaged"] == 0 and op["median_detection_to_decision_s"] is None
    assert op["suggestions_approved"] == 0 and op["playbooks_run"] == 0


@pytest.mark.slow
def test_demo_report_renders(write_config: Callable[..., Path], tmp_path: Path) -> None:
    from watchstander.agent.app.compliance import write_demo_report

    config = write_config()
    ctx = Context(config_path=config, clock=fixed_clock(datetime(2026, 7, 20, 12, tzinfo=timezone.utc)))
    try:
        files = write_demo_report(ctx.app, tmp_path / "demo", date(2026, 7, 20), actor=ctx.identity)
    finally:
        ctx.close()
    assert [f.suffix for f in files] == [".html", ".pdf", ".json"]
    assert all(f.stat().st_size > 1000 for f in files)
    data = json.loads(files[2].read_text(encoding="utf-8"))
    assert [o["id"] for o in data["orders"]] == ["eo14409"] and len(data["rows"]) == 8
    if shutil.which("pdftoppm") is None:
        pytest.skip("pdftoppm (Debian poppler-utils) is not installed; PDF pages not rendered")
    subprocess.run(["pdftoppm", "-png", "-r", "50", str(files[1]), str(tmp_path / "page")], check=True, timeout=60)
    pages = sorted(tmp_path.glob("page-*.png"))
    assert len(pages) >= 2
    from PIL import Image

    for page in pages:
        with Image.open(page) as img:
            colours = img.convert("RGB").getcolors(maxcolors=1 << 16)
            assert colours is None or len(colours) > 20, f"{page.name} looks blank"
    with Image.open(pages[0]) as first:
        # The verdict banner is red on this date (EO 14409 Sec. 2 deadlines passed on 2026-07-02).
        pixels = first.convert("RGB").tobytes()
        red = sum(1 for i in range(0, len(pixels), 3)
                  if pixels[i] > 170 and pixels[i + 1] < 80 and pixels[i + 2] < 80)
        assert red > 500
