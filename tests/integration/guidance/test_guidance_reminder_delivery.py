"""Reminders delivered for real: an aiosmtpd server and an HTTP server on loopback, fired by APScheduler 3.x."""

from __future__ import annotations

import json
import logging
import socket
import threading
from collections.abc import Callable, Iterator
from datetime import date, datetime, timezone
from email import message_from_bytes
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from watchstander.agent.app.compliance import run_reminders
from watchstander.agent.cli.context import Context
from watchstander.agent.clock import fixed_clock

pytestmark = pytest.mark.integration


def _free_port() -> int:
    # aiosmtpd's Controller cannot report a port 0 binding back, so ask the OS for one first.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _Inbox:
    def __init__(self) -> None:
        self.messages: list[Any] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append((envelope.rcpt_tos, message_from_bytes(envelope.content)))
        return "250 OK"


@pytest.fixture
def smtp_server() -> Iterator[tuple[int, _Inbox]]:
    from aiosmtpd.controller import Controller

    inbox = _Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=_free_port())
    controller.start()
    try:
        yield controller.port, inbox
    finally:
        controller.stop()


@pytest.fixture
def webhook_server() -> Iterator[tuple[str, list[dict[str, Any]], list[int]]]:
    received: list[dict[str, Any]] = []
    answer = [204]

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append({"headers": dict(self.headers), "body": json.loads(body)})
            self.send_response(answer[0])
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook", received, answer
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def _context(write_config: Callable[..., Path], smtp_port: int, hook: str, at: datetime) -> Context:
    config = write_config(f"""
[guidance.reminders]
hour = 8
timezone = "America/New_York"

[guidance.reminders.webhook]
url = "{hook}"
token = "s3cret-token"

[guidance.reminders.smtp]
host = "127.0.0.1"
port = {smtp_port}
from_addr = "watchstander@example.mil"
to_addrs = ["compliance@example.mil", "cio@example.mil"]
""")
    return Context(config_path=config, clock=fixed_clock(at))


def test_reminders_reach_smtp_webhook_and_journal_once(write_config: Callable[..., Path], smtp_server: Any,
                                                       webhook_server: Any, caplog: pytest.LogCaptureFixture) -> None:
    port, inbox = smtp_server
    hook, received, _ = webhook_server
    ctx = _context(write_config, port, hook, datetime(2026, 7, 3, 12, tzinfo=timezone.utc))
    try:
        with caplog.at_level(logging.INFO, logger="watchstander.guidance.reminders"):
            reminders, result = run_reminders(ctx.app, date(2026, 7, 3))
        assert result.failed == {}
        keys = {(m.obligation_id, m.key) for m in reminders}
        assert ("eo14409-2b", "overdue-2026-07-03") in keys and ("nspm12-6a", "before-14d") in keys
        assert result.sent == {"journal": len(reminders), "webhook": len(reminders), "email": len(reminders)}

        assert len(inbox.messages) == 1
        rcpts, msg = inbox.messages[0]
        assert rcpts == ["compliance@example.mil", "cio@example.mil"]
        assert "overdue" in msg["Subject"] and msg["From"] == "watchstander@example.mil"
        body = msg.get_payload(decode=True).decode("utf-8")
        assert "EO 14409 Sec. 2(b)" in body and "1 day OVERDUE" in body

        assert len(received) == 1
        assert received[0]["headers"]["Authorization"] == "Bearer s3cret-token"
        payload = received[0]["body"]
        assert payload["type"] == "watchstander.guidance.reminders" and payload["as_of"] == "2026-07-03"
        assert {r["obligation_id"] for r in payload["reminders"]} == {m.obligation_id for m in reminders}
        assert any("OVERDUE" in r.getMessage() and r.levelno == logging.WARNING for r in caplog.records)

        # Running again the same day sends nothing new anywhere; the next day brings new overdue reminders.
        _, again = run_reminders(ctx.app, date(2026, 7, 3))
        assert again.sent == {"journal": 0, "webhook": 0, "email": 0}
        assert len(inbox.messages) == 1 and len(received) == 1
        _, next_day = run_reminders(ctx.app, date(2026, 7, 4))
        assert next_day.sent["email"] > 0 and len(inbox.messages) == 2
        assert ctx.audit.verify().ok
    finally:
        ctx.close()


def test_a_failing_webhook_is_retried_next_run(write_config: Callable[..., Path], smtp_server: Any,
                                               webhook_server: Any) -> None:
    port, inbox = smtp_server
    hook, received, answer = webhook_server
    answer[0] = 503
    ctx = _context(write_config, port, hook, datetime(2026, 7, 3, 12, tzinfo=timezone.utc))
    try:
        _, result = run_reminders(ctx.app, date(2026, 7, 3))
        assert "HTTP 503" in result.failed["webhook"] and result.sent["email"] > 0
        answer[0] = 200
        _, retry = run_reminders(ctx.app, date(2026, 7, 3))
        assert retry.failed == {} and retry.sent["webhook"] > 0 and retry.sent["email"] == 0
        assert len(received) == 2 and len(inbox.messages) == 1
    finally:
        ctx.close()


def test_unreachable_smtp_is_reported(write_config: Callable[..., Path], webhook_server: Any) -> None:
    hook, _, _ = webhook_server
    ctx = _context(write_config, _free_port(), hook, datetime(2026, 7, 3, 12, tzinfo=timezone.utc))
    try:
        _, result = run_reminders(ctx.app, date(2026, 7, 3))
        assert "email" in result.failed and result.sent["webhook"] > 0
    finally:
        ctx.close()


def test_apscheduler_job_delivers(write_config: Callable[..., Path], smtp_server: Any, webhook_server: Any) -> None:
    from zoneinfo import ZoneInfo

    from apscheduler.schedulers.background import BackgroundScheduler
    from apscheduler.triggers.cron import CronTrigger

    from watchstander.guidance.reminders import JOB_ID, install_reminder_job

    port, inbox = smtp_server
    hook, _, _ = webhook_server
    ctx = _context(write_config, port, hook, datetime(2026, 7, 3, 12, tzinfo=timezone.utc))
    done = threading.Event()
    outcome: list[Any] = []

    def job() -> None:
        try:
            outcome.append(run_reminders(ctx.app, ctx.clock().date()))
        finally:
            done.set()

    cfg = ctx.config.guidance.reminders
    scheduler = BackgroundScheduler(timezone=ZoneInfo(cfg.timezone))
    try:
        installed = install_reminder_job(scheduler, job, cfg)
        assert installed.id == JOB_ID
        assert isinstance(installed.trigger, CronTrigger) and str(installed.trigger.timezone) == "America/New_York"
        scheduler.start()
        scheduler.modify_job(JOB_ID, next_run_time=datetime.now(timezone.utc))  # run now instead of at 08:00
        assert done.wait(20), "the scheduled job did not run"
        next_run = scheduler.get_job(JOB_ID).next_run_time
        assert (next_run.hour, next_run.minute) == (8, 0)
    finally:
        scheduler.shutdown(wait=True)
        ctx.close()
    reminders, result = outcome[0]
    assert result.failed == {} and reminders and len(inbox.messages) == 1
