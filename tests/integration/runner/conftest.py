"""Fixtures for runs on real test devices: the IOS emulator as an inventory router, and a RunKit over it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from support.ios_emulator import IosEmulator
from support.runkit import RunKit, ssh_device_toml
from support.sshkeys import SshTestKeys, write_known_hosts


@pytest.fixture
def router(ios_emulator: Callable[..., IosEmulator]) -> Callable[..., IosEmulator]:
    """Factory: a started IOS emulator trusting ssh_keys.client (tests/conftest.py's ios_emulator)."""
    return ios_emulator


def router_toml(tmp_path: Path, keys: SshTestKeys, emulator: IosEmulator, name: str = "edge1",
                known_hosts_lines: list[str] | None = None) -> str:
    """The inventory entry of an emulated router (role cisco-router)."""
    known = write_known_hosts(tmp_path / f"known_hosts-{name}",
                              [emulator.known_hosts_line()] if known_hosts_lines is None else known_hosts_lines)
    return ssh_device_toml(name, "127.0.0.1", port=emulator.port, user=emulator.user,
                           key_file=keys.client.private_path, known_hosts=known, roles=["cisco-router"],
                           platform="cisco-ios")


@pytest.fixture
def router_kit(tmp_path: Path, ssh_keys: SshTestKeys,
               router: Callable[..., IosEmulator]) -> Iterator[Callable[..., tuple[RunKit, IosEmulator]]]:
    """Factory: an emulated router and a RunKit whose inventory names it edge1."""
    kits: list[RunKit] = []

    def make(extra_toml: str = "", runner_toml: str = "", **options: Any) -> tuple[RunKit, IosEmulator]:
        emulator = router(**options)
        kit = RunKit(tmp_path / f"agent{len(kits)}", router_toml(tmp_path, ssh_keys, emulator), extra_toml,
                     runner_toml=runner_toml)
        kits.append(kit)
        return kit, emulator

    yield make
    for kit in kits:
        kit.close()


# ------------------------------------------------------------------ failure paths, crash, timed revert
# (appended for test_run_failures.py, test_run_crash.py and test_run_revert.py)

import http.server
import json
import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from support.sshkeys import SshKeyPair

from watchstander.agent.clock import Clock, system_clock


class MovableClock:
    """A clock the test moves by hand: timed reverts become due without waiting."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        """Move the clock forward (timedelta keywords)."""
        self.now += timedelta(**delta)


class AlertHook:
    """A tiny HTTP server on 127.0.0.1 that records every JSON POST (the alert webhook)."""

    def __init__(self) -> None:
        self.posts: list[dict[str, Any]] = []
        self._cond = threading.Condition()
        hook = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with hook._cond:
                    hook.posts.append(json.loads(body))
                    hook._cond.notify_all()
                self.send_response(204)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, name="alert-hook", daemon=True)
        self._thread.start()
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/hook"

    def toml(self, name: str = "soc") -> str:
        """Config lines (inside RunKit's [runner] section) that send run alerts here."""
        return f'alert_webhook = "{name}"\n[notify.webhooks.{name}]\nurl = "{self.url}"\ntimeout_s = 5\n'

    def wait_for(self, predicate: Callable[[dict[str, Any]], bool], timeout_s: float = 10.0) -> dict[str, Any]:
        """The first POST that matches, waiting up to `timeout_s`."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while True:
                hit = next((p for p in self.posts if predicate(p)), None)
                if hit is not None:
                    return hit
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no matching alert within {timeout_s} s; got {self.posts!r}")
                self._cond.wait(left)

    def stop(self) -> None:
        """Stop serving."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)


@pytest.fixture
def alert_hook() -> Iterator[AlertHook]:
    """An HTTP server on 127.0.0.1 recording the runner's alert POSTs."""
    hook = AlertHook()
    yield hook
    hook.stop()


@pytest.fixture
def movable_clock() -> MovableClock:
    """A clock the test advances by hand."""
    return MovableClock()


def site_playbook(folder: Path, playbook_id: str, *, step_timeout_s: int | None = None,
                  pre_checks: bool = True, post_argv: str = "[show, ip, access-lists, WATCHSTANDER-BLOCK]",
                  post_expect: str = '"deny ip host {{ inputs.address }}"', rollback: bool = True,
                  timed: bool = False) -> Path:
    """A site playbook like block-address-ios-acl whose timeouts, checks and timer a test chooses.

    `timed`: an input `minutes` (1 to 60, default 1) and `revert_after_minutes` from it.
    """
    folder.mkdir(parents=True, exist_ok=True)
    step_timeout = f"\n    timeout_s: {step_timeout_s}" if step_timeout_s else ""
    text = f"""id: {playbook_id}
version: 1
title: Test block on the emulated router ({playbook_id})
description: A test variant of block-address-ios-acl.
risk: medium
timeout_s: 120
inputs:
  router:
    type: device
    role: cisco-router
    description: The router.
  address:
    type: ipv4
    description: The address.
  sequence:
    type: integer
    min: 10
    max: 9990
    description: ACL sequence number.
"""
    if timed:
        text += """  minutes:
    type: integer
    min: 1
    max: 60
    default: 1
    description: Minutes before the timed revert.
revert_after_minutes: "{{ inputs.minutes }}"
"""
    if pre_checks:
        text += """pre_checks:
  - id: acl-exists
    action: ssh.command
    timeout_s: 15
    args:
      target: "{{ inputs.router }}"
      argv: [show, ip, access-lists, WATCHSTANDER-BLOCK]
    expect:
      output_contains: WATCHSTANDER-BLOCK
"""
    text += f"""steps:
  - id: add-deny
    action: ssh.config{step_timeout}
    args:
      target: "{{{{ inputs.router }}}}"
      platform: cisco-ios
      lines:
        - ip access-list extended WATCHSTANDER-BLOCK
        - "{{{{ inputs.sequence }}}} deny ip host {{{{ inputs.address }}}} any log"
      save: false
post_checks:
  - id: deny-present
    action: ssh.command
    timeout_s: 15
    args:
      target: "{{{{ inputs.router }}}}"
      argv: {post_argv}
    expect:
      output_contains: {post_expect}
"""
    if rollback:
        text += """rollback:
  - id: remove-deny
    action: ssh.config
    timeout_s: 30
    args:
      target: "{{ inputs.router }}"
      platform: cisco-ios
      lines:
        - ip access-list extended WATCHSTANDER-BLOCK
        - "no {{ inputs.sequence }}"
      save: false
"""
    path = folder / f"{playbook_id}.yaml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def write_site_playbook() -> Callable[..., Path]:
    """`site_playbook(folder, id, ...)`: write a test variant of block-address-ios-acl."""
    return site_playbook


@pytest.fixture
def custom_router_kit(tmp_path: Path, ssh_keys: SshTestKeys) -> Iterator[Callable[..., tuple[RunKit, IosEmulator]]]:
    """Factory: an emulated router with the trust, authorized keys, config and clock a test chooses.

    make(known_hosts_lines=None (trust the emulator) | [...], authorized=None (ssh_keys.client) | [keys],
         extra_toml="", playbook_dirs=(), clock=system_clock, **emulator options)
    """
    emulators: list[IosEmulator] = []
    kits: list[RunKit] = []

    def make(*, known_hosts_lines: list[str] | None = None, authorized: list[SshKeyPair] | None = None,
             extra_toml: str = "", playbook_dirs: Sequence[Path] = (), clock: Clock = system_clock,
             **options: Any) -> tuple[RunKit, IosEmulator]:
        emulator = IosEmulator(ssh_keys.host, authorized if authorized is not None else [ssh_keys.client], **options)
        emulators.append(emulator)
        emulator.start()
        name = f"k{len(kits)}"
        kit = RunKit(tmp_path / f"agent-{name}", router_toml(tmp_path, ssh_keys, emulator, name="edge1",
                                                              known_hosts_lines=known_hosts_lines),
                     extra_toml, clock=clock, playbook_dirs=playbook_dirs)
        kits.append(kit)
        return kit, emulator

    yield make
    for kit in kits:
        kit.close()
    for emulator in emulators:
        emulator.stop()
