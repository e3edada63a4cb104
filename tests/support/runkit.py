"""An agent over a real SQLite store with a device inventory: propose, approve and run suggestions.

Tests that run playbooks against real test devices build one `RunKit` and describe their devices
with the TOML builders below; everything else (guard, review queue, approvals, audit, runner) is
the agent's own code.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from watchstander.agent.app.runs import RunService
from watchstander.agent.app.wiring import App
from watchstander.agent.clock import Clock, system_clock
from watchstander.agent.config.load import load_config
from watchstander.agent.models import RecommendedAction
from watchstander.agent.store.runs import Run
from watchstander.agent.store.schema import open_store
from watchstander.playbooks.runner import Executor

REQUESTER = "uid:1001:alice"
APPROVERS = ("uid:1002:bob", "uid:1003:carol")


def ssh_device_toml(name: str, address: str, *, port: int, user: str, key_file: Path, known_hosts: Path,
                    roles: Sequence[str], platform: str = "linux", algorithms: str = "default") -> str:
    """One [[devices]] entry reached over SSH with a key file."""
    return (f'[[devices]]\nname = "{name}"\naddress = "{address}"\nport = {port}\nplatform = "{platform}"\n'
            f'roles = {list(roles)!r}\n'.replace("'", '"')
            + f'[devices.ssh]\nuser = "{user}"\nkey_file = "{key_file}"\nknown_hosts = "{known_hosts}"\n'
              f'algorithms = "{algorithms}"\nconnect_timeout_s = 5\n\n')


def snmp_device_toml(name: str, address: str, *, port: int, user: str, auth_key_file: Path, priv_key_file: Path,
                     roles: Sequence[str], auth_protocol: str = "SHA-256", priv_protocol: str = "AES-128") -> str:
    """One [[devices]] entry reached over SNMPv3 authPriv with key files."""
    return (f'[[devices]]\nname = "{name}"\naddress = "{address}"\nplatform = "linux"\n'
            f'roles = {list(roles)!r}\n'.replace("'", '"')
            + f'[devices.snmp]\nport = {port}\nuser = "{user}"\nauth_protocol = "{auth_protocol}"\n'
              f'priv_protocol = "{priv_protocol}"\nauth_key_file = "{auth_key_file}"\n'
              f'priv_key_file = "{priv_key_file}"\n\n')


def secret_file(path: Path, text: str) -> Path:
    """Write a credential file only its owner may read."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    path.chmod(0o600)
    return path


class RunKit:
    """An App over its own store and config, with helpers to propose, approve and run suggestions."""

    def __init__(self, tmp_path: Path, devices_toml: str = "", extra_toml: str = "", *,
                 clock: Clock = system_clock, playbook_dirs: Sequence[Path] = (), runner_toml: str = "") -> None:
        """`runner_toml`: extra `key = value` lines for the [runner] table (the kit writes that table)."""
        self.dir = tmp_path
        tmp_path.mkdir(parents=True, exist_ok=True)
        self.config_path = tmp_path / "watchstander.toml"
        dirs = ", ".join(f'"{d}"' for d in playbook_dirs)
        self.config_path.write_text(
            f'[store]\nurl = "sqlite:///{tmp_path / "w.db"}"\n'
            f'[playbooks]\ndirs = [{dirs}]\n'
            f'[runner]\ncapture_dir = "{tmp_path / "captures"}"\ncredentials_dir = "{tmp_path / "credentials"}"\n'
            f'{runner_toml}\n'
            f'{extra_toml}\n{devices_toml}', encoding="utf-8")
        self.clock = clock
        self.reopen()

    def reopen(self) -> None:
        """(Re)load the config and open the store: what a restarted agent does."""
        self.config = load_config(self.config_path)
        self.store = open_store(self.config.store.resolved_url())
        self.app = App(self.config, self.store, self.clock)

    def close(self) -> None:
        """Close the app and the store."""
        self.app.close()
        self.store.close()

    def approve_playbook(self, playbook_id: str) -> None:
        """Approve the catalogue's playbook definition (two people, so high risk is complete too)."""
        playbook = self.app.catalogue().get(playbook_id)
        self.app.approvals.approve_with(playbook, ("test:admin-1", "test:admin-2"), "approved for the test")

    def propose(self, playbook_id: str, params: Mapping[str, Any], incident_id: int | None = None) -> int:
        """A pending suggestion made by the guard from an operator's recommendation; returns its id."""
        self.approve_playbook(playbook_id)
        action = RecommendedAction(playbook=playbook_id, parameters=dict(params), justification="test run")
        decision = self.app.guard().check_action(action, "operator", rate_limit=False)
        assert decision.allowed, f"guard refused: {decision.reason} ({decision.detail})"
        outcome = self.app.review_queue().submit(incident_id, [decision], actor=REQUESTER)
        assert outcome.created, "no suggestion created (a duplicate of an open one?)"
        return outcome.created[0].id

    def approve(self, suggestion_id: int, approvers: Sequence[str] = APPROVERS) -> None:
        """Approve a suggestion as enough distinct people."""
        queue = self.app.review_queue()
        for who in approvers:
            s = queue.approve(suggestion_id, who, "ok")
            if s.state == "approved":
                return

    def approved(self, playbook_id: str, params: Mapping[str, Any]) -> int:
        """Propose and approve in one go; returns the suggestion id."""
        sid = self.propose(playbook_id, params)
        self.approve(sid)
        return sid

    def service(self, executors: dict[str, Executor] | None = None) -> RunService:
        """A RunService over this app (real executors unless some are given)."""
        return RunService(self.app, executors=executors)

    def run(self, suggestion_id: int, actor: str = "uid:1004:operator") -> Run:
        """Run one approved suggestion to its end, in a fresh event loop."""
        service = self.service()

        async def go() -> Run:
            try:
                return await service.run_suggestion(suggestion_id, actor)
            finally:
                await service.ssh.close()

        return asyncio.run(go())

    def revert(self, run_id: int, actor: str = "uid:1004:operator") -> Run:
        """Revert one run in a fresh event loop."""
        service = self.service()

        async def go() -> Run:
            try:
                return await service.revert(run_id, actor)
            finally:
                await service.ssh.close()

        return asyncio.run(go())

    def now(self) -> datetime:
        """The kit's clock."""
        return self.clock()
