"""Run alerts by e-mail (a real SMTP server on loopback), and step output as the store keeps and the CLI shows it."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Callable, Iterator
from email import message_from_bytes
from email.message import Message
from pathlib import Path
from typing import Any

import pytest

from watchstander.agent.cli.main import main
from watchstander.agent.config.load import MASK, register_secret
from watchstander.agent.store.runs import Run
from watchstander.playbooks.model import RenderedStep
from watchstander.playbooks.runner import ActionResult, Executor

pytestmark = pytest.mark.integration

PARAMS = {"router": "edge1", "address": "203.0.113.7", "sequence": 100}
SECRET = "s3cr3t-token-value"
OUTPUT_LIMIT = 4096


def _free_port() -> int:
    # aiosmtpd's Controller cannot report a port 0 binding back, so ask the OS for one first.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Inbox:
    """What the SMTP server received: (recipients, message)."""

    def __init__(self) -> None:
        self.messages: list[tuple[list[str], Message]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append((list(envelope.rcpt_tos), message_from_bytes(envelope.content)))
        return "250 OK"


@pytest.fixture
def smtp_server() -> Iterator[tuple[int, Inbox]]:
    """An aiosmtpd server on 127.0.0.1; (port, inbox)."""
    from aiosmtpd.controller import Controller

    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=_free_port())
    controller.start()
    try:
        yield controller.port, inbox
    finally:
        controller.stop()


def smtp_toml(port: int, alert_email: bool) -> str:
    """[runner] alert_email (the kit's [runner] table is open) and [guidance.reminders.smtp] on the test server."""
    return (f"alert_email = {'true' if alert_email else 'false'}\n"
            f'[guidance.reminders.smtp]\nhost = "127.0.0.1"\nport = {port}\nfrom_addr = "watchstander@test.invalid"\n'
            f'to_addrs = ["soc@test.invalid"]\ntimeout_s = 10\n')


# ------------------------------------------------------------------ alerts by e-mail


@pytest.mark.parametrize("alert_email", [True, False])
def test_failed_rollback_alerts_by_email(custom_router_kit, write_site_playbook,  # type: ignore[no-untyped-def]
                                         smtp_server: tuple[int, Inbox], tmp_path: Path, alert_email: bool) -> None:
    port, inbox = smtp_server
    site = tmp_path / "site"
    # A post-check whose expectation is never met, and a device that refuses the rollback's line.
    write_site_playbook(site, "test-stuck-block", post_expect='"permit ip host {{ inputs.address }}"')
    kit, _emulator = custom_router_kit(playbook_dirs=[site], extra_toml=smtp_toml(port, alert_email),
                                       fail_on="no 100")
    sid = kit.approved("test-stuck-block", PARAMS)
    run = kit.run(sid)
    assert run.state == "rollback_failed", run.detail
    if not alert_email:
        assert inbox.messages == []
        return
    assert len(inbox.messages) == 1, inbox.messages
    recipients, msg = inbox.messages[0]
    assert recipients == ["soc@test.invalid"]
    subject = str(msg["Subject"])
    assert subject.startswith("[Watchstander ALERT] ") and f"run {run.id}" in subject
    assert "test-stuck-block" in subject and "ROLLBACK FAILED" in subject
    body = msg.get_payload(decode=True)
    assert isinstance(body, bytes)
    text = body.decode("utf-8")
    assert f"run: {run.id}" in text and f"suggestion: {sid}" in text and "playbook: test-stuck-block" in text
    assert "rollback_failed" in text and "edge1" in text


# ------------------------------------------------------------------ output hygiene through the real store


def noisy_output() -> str:
    """What a hostile or broken device might print: screen control, a bidi override, a secret and 100 KB."""
    return ("WATCHSTANDER-BLOCK\n    100 deny ip host 203.0.113.7 any log\n"
            f"\x1b[2J\x1b[31mred\u202eevil\u202c token={SECRET}\n" + "A" * 100_000)


def fake_executors(calls: list[str]) -> dict[str, Executor]:
    """ssh.command and ssh.config that return noisy output instead of contacting the device."""

    async def command(step: RenderedStep, timeout_s: float) -> ActionResult:
        calls.append(step.id)
        return ActionResult(exit_status=0, output=noisy_output())

    async def config(step: RenderedStep, timeout_s: float) -> ActionResult:
        calls.append(step.id)
        return ActionResult(output=f"edge1(config)#\x1b]0;title\x07 {SECRET}\n")

    return {"ssh.command": command, "ssh.config": config}


def test_step_output_is_escaped_scrubbed_and_bounded(router_kit: Callable[..., Any],  # type: ignore[type-arg]
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    register_secret(SECRET)
    kit, emulator = router_kit(runner_toml=f"output_limit = {OUTPUT_LIMIT}")
    sid = kit.approved("block-address-ios-acl", PARAMS)
    calls: list[str] = []
    service = kit.service(fake_executors(calls))

    async def go() -> Run:
        try:
            return await service.run_suggestion(sid, "uid:1004:operator")
        finally:
            await service.ssh.close()

    run = asyncio.run(go())
    assert run.state == "succeeded", run.detail
    assert calls == ["acl-exists", "add-deny", "deny-present"]
    assert emulator.connections == 0  # only the output is faked; nothing reached the device
    stored = kit.service().get(run.id)
    assert [(s.phase, s.step_id, s.status) for s in stored.steps] == [
        ("pre_checks", "acl-exists", "ok"), ("steps", "add-deny", "ok"), ("post_checks", "deny-present", "ok")]
    for step in stored.steps:
        out = step.output or ""
        assert "\x1b" not in out and "\x07" not in out and "\u202e" not in out
        assert SECRET not in out and MASK in out
    check = stored.steps[0].output or ""
    assert "\\x1b[2J" in check and "\\u202e" in check and f"token={MASK}" in check
    assert check.endswith("[... output truncated]")
    assert len(check) < OUTPUT_LIMIT + 200  # a few escapes longer than the limit, never the 100 KB
    assert "\\x1b]0;title\\x07" in (stored.steps[1].output or "")

    for fmt in ([], ["--format", "json"]):
        status = main(["--config", str(kit.config_path), "runs", "show", str(run.id), *fmt])
        out, err = capsys.readouterr()
        assert status == 0, err
        assert "\x1b" not in out + err and "\u202e" not in out + err and SECRET not in out + err
        if fmt:
            shown = json.loads(out)
            assert shown["steps"][0]["step_id"] == "acl-exists"
            assert shown["steps"][0]["output"] == check
        else:
            assert "acl-exists" in out and f"\\x1b[2J\\x1b[31mred\\u202eevil\\u202c token={MASK}" in out

    records = [r for r in kit.app.audit.records() if r.subject == f"run:{run.id}"]
    starts = [r.data["step"] for r in records if r.action == "run.step.start"]
    ends = [r for r in records if r.action == "run.step.end"]
    assert starts == ["acl-exists", "add-deny", "deny-present"] and len(ends) == 3
    assert records[0].action == "run.start" and records[-1].action == "run.end"
    for r in records:
        assert SECRET not in json.dumps(r.data)
    assert kit.app.audit.verify().ok
