"""End-to-end fixtures: a site (config + store) driven only through `watchstander` commands, and
the scripted OpenAI-compatible server of tests/integration/triage, reused as it is."""

from __future__ import annotations

import contextlib
import grp
import importlib.util
import io
import itertools
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from watchstander.agent.cli.main import main
from watchstander.agent.demo.data import DEMO_ASSETS
from watchstander.playbooks import load_library

_TRIAGE_CONFTEST = Path(__file__).resolve().parents[1] / "triage" / "conftest.py"


def _load_scripted_server() -> ModuleType:
    """The triage tests' conftest as a plain module (its ScriptedServer, completion(), status())."""
    name = "watchstander_e2e_scripted_llm"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, _TRIAGE_CONFTEST)
    assert spec is not None and spec.loader is not None, _TRIAGE_CONFTEST
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


scripted = _load_scripted_server()
ScriptedServer = scripted.ScriptedServer

_sockets = itertools.count()

# The site: 10.20.0.0/16, with its resolver and gateway protected as in the demo configuration.
ASSETS = DEMO_ASSETS
# The device the analyst cannot know is pinned, as DEMO_CONFIG does, so a block needs only an
# address from the model. The capture interface is deliberately NOT pinned: a pinned input refuses
# any other value as bad_parameter:interface whatever it contains, and the interface cases must be
# refused for their content, not for differing from the pin.
PINNED = """
[[devices]]
name = "fw-dmz"
address = "192.0.2.1"
roles = ["linux-firewall"]

[policy.defaults.block-address-nftables]
firewall = "fw-dmz"
"""


@dataclass
class Site:
    """One site's config and store, used only through `watchstander.agent.cli.main.main`."""

    root: Path
    config: Path

    def run(self, *argv: str) -> tuple[int, str, str]:
        """Run one command with this site's --config; returns (status, stdout, stderr)."""
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main([*argv, "--config", str(self.config)])
        return code, out.getvalue(), err.getvalue()

    def ok(self, *argv: str) -> str:
        """Run a command that must succeed; its stdout."""
        code, out, err = self.run(*argv)
        assert code == 0, f"watchstander {' '.join(argv)} exited {code}: {err}"
        return out

    def approve_playbooks(self) -> list[str]:
        """`watchstander playbooks approve ID` for every shipped playbook; the ids approved."""
        ids = [p.id for p in load_library()]
        for pid in ids:
            self.ok("playbooks", "approve", pid, "--comment", "e2e: reviewed")
        return ids

    def replay(self, *files: Path, fmt: str = "json") -> tuple[str, float]:
        """`watchstander replay FILE... --no-progress`; (stdout, wall seconds)."""
        t0 = time.perf_counter()
        out = self.ok("replay", "--no-progress", "--format", fmt, *map(str, files))
        return out, time.perf_counter() - t0

    def suggestions(self) -> list[dict[str, Any]]:
        """`suggestions list --format json`."""
        return json.loads(self.ok("suggestions", "list", "--format", "json"))["suggestions"]  # type: ignore[no-any-return]

    def audit(self) -> list[dict[str, Any]]:
        """`audit export --format jsonl`, parsed."""
        return [json.loads(line) for line in self.ok("audit", "export", "--format", "jsonl").splitlines() if line]

    def incident(self, incident_id: int) -> dict[str, Any]:
        """`incidents show ID --format json`."""
        return json.loads(self.ok("incidents", "show", str(incident_id), "--format", "json"))  # type: ignore[no-any-return]

    def incidents(self) -> list[dict[str, Any]]:
        """`incidents list --format json`."""
        return json.loads(self.ok("incidents", "list", "--format", "json"))  # type: ignore[no-any-return]


def new_site(root: Path, triage: str = "", extra: str = "") -> Site:
    """Write a site config in `root`: store beside it, a control socket no daemon serves."""
    root.mkdir(parents=True)
    # A Unix socket path must stay under 107 bytes, which a pytest tmp_path may not.
    sock = Path(tempfile.gettempdir()) / f"wse2e-{os.getpid()}-{next(_sockets)}.sock"
    group = grp.getgrgid(os.getgid()).gr_name
    text = (f'[store]\nurl = "sqlite:///{root / "w.db"}"\n\n'
            f'[control]\nsocket = "{sock}"\nsocket_group = "{group}"\n'
            f"{ASSETS}{PINNED}{extra}\n{triage}\n")
    cfg = root / "watchstander.toml"
    cfg.write_text(text, encoding="utf-8")
    return Site(root, cfg)


@pytest.fixture
def make_site(tmp_path: Path) -> Callable[..., Site]:
    """Factory: a new site under tmp_path (see new_site)."""
    names = itertools.count()
    return lambda triage="", extra="": new_site(tmp_path / f"site{next(names)}", triage, extra)


@contextlib.contextmanager
def scripted_server() -> Iterator[Any]:
    """The scripted OpenAI-compatible server on 127.0.0.1:0, with proxies and OpenAI env vars cleared."""
    with pytest.MonkeyPatch.context() as mp:
        for var in scripted.PROXY_VARS:
            mp.delenv(var, raising=False)
        mp.setenv("NO_PROXY", "*")
        server = ScriptedServer()
        server.start()
        try:
            yield server
        finally:
            server.stop()


@pytest.fixture
def llm_server() -> Iterator[Any]:
    """A scripted server for one test."""
    with scripted_server() as server:
        yield server


def triage_section(server: Any, key_file: Path | None = None, **settings: Any) -> str:
    """A [triage] table pointing at the scripted server."""
    values: dict[str, Any] = {"model": "openai:scripted-model", "base_url": server.url, "timeout_s": 5.0}
    if key_file is not None:
        values["api_key_file"] = str(key_file)
    values.update(settings)
    return "[triage]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in values.items())


def syslog_time(at: datetime) -> str:
    """A classic syslog timestamp."""
    return at.strftime("%b %e %H:%M:%S")


def auth_log(path: Path, attackers: dict[str, list[str]], *, host: str = "bastion",
             now: datetime | None = None) -> Path:
    """An auth.log: for each attacker address, one failed sshd login per user name given.

    User names are what the attacker typed, so they carry whatever text the attacker likes; with
    five or more distinct names the brute-force finding keeps them in `users_sample`.
    """
    now = now or datetime.now(timezone.utc)
    start = now - timedelta(minutes=30)
    lines: list[str] = []
    for a, (address, users) in enumerate(attackers.items()):
        for k, user in enumerate(users):
            at = start + timedelta(seconds=a * 5 + k * 20)
            lines.append(f"{syslog_time(at)} {host} sshd[{4100 + a * 100 + k}]: Failed password for invalid user "
                         f"{user} from {address} port {50000 + k} ssh2")
    lines.sort(key=lambda ln: ln[:15])
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def records(audit: list[dict[str, Any]], action: str, subject: str | None = None) -> list[dict[str, Any]]:
    """Audit records with this action (and subject)."""
    return [r for r in audit if r["action"] == action and (subject is None or r["subject"] == subject)]


@dataclass(frozen=True)
class Kit:
    """Helpers the test modules reach through one fixture (they cannot import a conftest)."""

    new_site: Callable[..., Site] = new_site
    scripted_server: Callable[[], Any] = scripted_server
    triage_section: Callable[..., str] = triage_section
    auth_log: Callable[..., Path] = auth_log
    records: Callable[..., list[dict[str, Any]]] = records
    answer: Callable[..., Any] = scripted.answer
    status: Callable[..., Any] = scripted.status
    dynamic: Callable[..., Any] = scripted.dynamic
    Reply: type = scripted.Reply
    completion: Callable[..., bytes] = scripted.completion
    model_version: str = scripted.MODEL_VERSION


@pytest.fixture(scope="session")
def kit() -> Kit:
    """Config, telemetry and scripted-reply builders."""
    return Kit()
