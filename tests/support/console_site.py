"""A real daemon with its web console enabled, for browser tests: config, seeded store, process, syslog feed.

The site: a SQLite store in a temporary folder, syslog over UDP on 127.0.0.1, the control socket
under /tmp, the console on 127.0.0.1 with mutual TLS from `support.pki`, and four people in
`[console.roles]` (operator, two approvers, a compliance officer mapped by e-mail). Seeding runs in
the test process over the same store before the daemon starts: it uses the App's own services
(approvals, incident store, review queue), so what the console shows was made by the real code.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from support.pki import ConsolePki
from support.site_policy import SITE_POLICY_TOML
from watchstander.agent.app.wiring import App
from watchstander.agent.cli.context import Context
from watchstander.agent.control.review_methods import will_run
from watchstander.agent.models import Finding, Incident, Provenance, RecommendedAction, TriageVerdict
from watchstander.playbooks import load_library

ATTACKER = "203.0.113.9"


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    """A port the kernel just gave out on 127.0.0.1 (TCP or UDP); free again when returned."""
    with socket.socket(socket.AF_INET, kind) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def actor_of(principal: str) -> str:
    """The review queue's name for a console user (`console:` + the [console.roles] key)."""
    return f"console:{principal}"


@dataclass
class ConsoleSite:
    """Where the site's files are, the ports, and the daemon process once started."""

    root: Path
    pki: ConsolePki
    config: Path
    db: Path
    console_port: int
    syslog_port: int
    socket_dir: Path
    principals: dict[str, str]  # person name -> [console.roles] key
    process: subprocess.Popen[bytes] | None = None
    log: Path = field(init=False)

    def __post_init__(self) -> None:
        self.log = self.root / "daemon.log"

    @property
    def origin(self) -> str:
        """https://127.0.0.1:PORT"""
        return f"https://127.0.0.1:{self.console_port}"

    def actor(self, person: str) -> str:
        """The actor name the console gives `person` (e.g. 'console:1000000002@mil')."""
        return actor_of(self.principals[person])

    def send_syslog(self, lines: Sequence[bytes]) -> None:
        """Send each line as one UDP datagram to the daemon's syslog intake."""
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx:
            for line in lines:
                tx.sendto(line, ("127.0.0.1", self.syslog_port))

    def log_text(self) -> str:
        """What the daemon wrote to stderr so far (for failure messages)."""
        return self.log.read_text(encoding="utf-8", errors="replace") if self.log.exists() else ""


def write_site(root: Path, pki: ConsolePki) -> ConsoleSite:
    """Write the config for a site under `root` (ports chosen now)."""
    socket_dir = Path(tempfile.mkdtemp(prefix="wsb", dir="/tmp"))  # AF_UNIX paths must stay short
    principals = {
        "operator": pki.operator.upn,
        "approver": pki.approver.upn,
        "approver2": pki.approver2.upn,
        "compliance": pki.compliance.email,  # mapped by e-mail: principal_from tries upn, then email
    }
    site = ConsoleSite(root, pki, root / "watchstander.toml", root / "w.db", free_port(), free_port(socket.SOCK_DGRAM),
                       socket_dir, principals)
    roles = {"operator": "operator", "approver": "approver", "approver2": "approver", "compliance": "compliance"}
    role_lines = "\n".join(f'"{principals[p]}" = ["{r}"]' for p, r in roles.items())
    site.config.write_text(f"""\
[store]
url = "sqlite:///{site.db}"

[sources]
syslog_udp = ["127.0.0.1:{site.syslog_port}"]
flush_s = 0.2

[control]
socket = "{socket_dir}/c.sock"
socket_group = "root"

[runner]
auto_run = false  # approved stays approved: the devices of this site do not exist
{SITE_POLICY_TOML}
[console]
enabled = true
listen = "127.0.0.1:{site.console_port}"
cert_file = "{pki.server_cert}"
key_file = "{pki.server_key}"
client_ca = ["{pki.ca}"]
crl = "{pki.crl}"

[console.roles]
{role_lines}
""", encoding="utf-8")
    return site


# ---------------------------------------------------------------------- seeding (before the daemon starts)

@dataclass(frozen=True)
class Seeded:
    """Ids of what the seed made."""

    incident: int
    medium: int  # block-address-nftables, one approver needed, requested by the triage
    high: int  # switch-port-shutdown, two approvers needed
    own: int  # an edit by the approver, who is therefore its requester and cannot approve it
    expired: int  # created five hours ago: past the four-hour TTL
    medium_commands: tuple[str, ...]  # what approving `medium` will run, as the review queue renders it


def _store_incident(app: App, address: str, title: str) -> int:
    """Write an incident with one brute-force finding through the App's incident store; its id."""
    now = app.clock().timestamp()
    finding = Finding("bruteforce", "SSH password guessing", "high", {"attacker": address}, ("T1110",),
                      now - 60, now, 12)
    inc = Incident(f"fp-{address}-{title}", f"attacker:{address}", title, "high", now - 60, now,
                   {finding.key: finding})
    repo = app.incident_store()
    with app.store.begin() as conn:
        inc_id = int(repo.upsert_incident(conn, inc))
        repo.upsert_findings(conn, inc_id, inc.findings.values())
    return inc_id


def _review(app: App, inc_id: int, actions: Sequence[RecommendedAction], actor: str) -> list[int]:
    """Give the incident a verdict recommending `actions` and queue them as `actor`; the new suggestion ids."""
    verdict = TriageVerdict(severity="high", confidence=0.9, disposition="true_positive",
                            summary="password guessing from one address", rationale="seeded by the browser tests",
                            recommended_actions=tuple(actions),
                            provenance=Provenance(analyst="baseline", analyst_version="test"))
    repo = app.incident_store()
    full = repo.get(inc_id)
    assert full is not None
    full.verdict = verdict
    with app.store.begin() as conn:
        repo.set_verdict(conn, full)
    out = app.review_queue().review(full, verdict, actor=actor)
    return [int(s.id) for s in out.created]


def seed(site: ConsoleSite) -> Seeded:
    """Approve the shipped playbooks; an incident with a medium and a high suggestion; a self-requested; an expired."""
    def block(address: str) -> RecommendedAction:
        return RecommendedAction(playbook="block-address-nftables", parameters={"address": address},
                                 justification="stop the guessing")

    ctx = Context(config_path=site.config)
    try:
        app = ctx.app
        for playbook in load_library():
            app.approvals.approve_with(playbook, ("uid:0:root", "uid:65534:nobody"))
        incident = _store_incident(app, ATTACKER, "SSH password guessing against bastion")
        medium, high = _review(app, incident, [
            block(ATTACKER), RecommendedAction(playbook="switch-port-shutdown", parameters={"if_index": 7},
                                               justification="isolate the port")], "watchstander:triage")
        own_incident = _store_incident(app, "198.51.100.23", "SSH password guessing against web1")
        (triaged,) = _review(app, own_incident, [block("198.51.100.23")], "watchstander:triage")
        # An edit makes its editor the requester of the new suggestion: the approver's own request.
        own = app.review_queue().edit(triaged, site.actor("approver"), {"address": "198.51.100.24"},
                                      "the whole /24 guesses; this is the busiest").id
        queue = app.review_queue()
        plan = will_run(queue, queue.get(medium))["will_run"]
        commands = tuple(str(step["command"]) for step in plan or ())
    finally:
        ctx.close()
    then = datetime.now(UTC) - timedelta(hours=5)
    past = Context(config_path=site.config, clock=lambda: then)
    try:
        old_incident = _store_incident(past.app, "198.51.100.77", "SSH password guessing, last week's")
        (expired,) = _review(past.app, old_incident, [block("198.51.100.77")], "watchstander:triage")
    finally:
        past.close()
    return Seeded(incident, medium, high, own, expired, commands)


# ---------------------------------------------------------------------- the daemon process

def _wait_listening(site: ConsoleSite, process: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"the daemon exited with {process.returncode}:\n{site.log_text()[-4000:]}")
        try:
            with socket.create_connection(("127.0.0.1", site.console_port), timeout=0.5):
                if "listening: syslog" in site.log_text():
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"the console did not listen on {site.origin} within {timeout:.0f} s:\n"
                         f"{site.log_text()[-4000:]}")


@contextmanager
def running(site: ConsoleSite, timeout: float = 60.0) -> Iterator[ConsoleSite]:
    """`watchstander run --config SITE` as a subprocess until the block ends (SIGTERM, then a clean exit)."""
    with site.log.open("wb") as log:
        process = subprocess.Popen([sys.executable, "-m", "watchstander.agent.cli.main", "run", "--config",
                                    str(site.config)], stdout=subprocess.DEVNULL, stderr=log,
                                   env={**os.environ, "PYTHONUNBUFFERED": "1"})
    site.process = process
    try:
        _wait_listening(site, process, timeout)
        yield site
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)
        shutil.rmtree(site.socket_dir, ignore_errors=True)


def brute_force_lines(source: str, n: int = 12, host: str = "bastion", user: str = "root") -> list[bytes]:
    """RFC 3164 sshd 'Failed password' lines from `source`, as the SSH brute-force detector reads them."""
    now = datetime.now(UTC)
    stamp = f"{now:%b} {now.day:2d} {now:%H:%M:%S}"
    return [f"<38>{stamp} {host} sshd[{100 + i}]: Failed password for {user} from {source} port {40000 + i} ssh2"
            .encode() for i in range(n)]
