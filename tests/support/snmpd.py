"""Debian's real net-snmp agent (/usr/sbin/snmpd) as a test device, and an SNMP switch built from it.

`Snmpd` runs snmpd in the foreground with its own config (`-C -c`), log file, pid file and
persistent directory (SNMP_PERSISTENT_DIR and `persistentDir`), so /etc/snmp and /var/lib/snmp are
never read or written. Its config holds SNMPv3 authPriv users (`createUser` + `rwuser ... authpriv`)
and no sysContact/sysLocation/sysName lines, which leaves those three objects writable.

`SnmpSwitch` is a switch for the switch-port playbooks: snmpd inside a network namespace of its
own with veth "ports" (gi0-1, gi0-2, each the namespace end of a veth pair), reached from the host
over another veth. net-snmp implements IF-MIB ifAdminStatus SETs on Linux by changing the link's
IFF_UP flag, so shutting a port over SNMP really takes the interface down; `admin_up()` reads
that state with `ip link`, independently of SNMP. Needs root (privileged tests only).

Fixtures, defined as `<name>_fixture` so that importing them into a test module or conftest
(`from support.snmpd import snmpd_v3_fixture  # noqa: F401`) does not clash with the parameter
name: `snmpd_v3` (loopback, unprivileged), `snmp_switch` (namespace, root), `silent_udp_port` (a
UDP port on 127.0.0.1 where nothing ever answers).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest

from support.netns import Lab, Namespace, netns_skip_reason
from watchstander.connectors.snmp import SnmpTarget, SnmpV3Credentials

SNMPD = "/usr/sbin/snmpd"
SNMPGET = "/usr/bin/snmpget"
SYS_DESCR = "1.3.6.1.2.1.1.1.0"
SYS_UPTIME = "1.3.6.1.2.1.1.3.0"
SYS_CONTACT = "1.3.6.1.2.1.1.4.0"
SYS_NAME = "1.3.6.1.2.1.1.5.0"
SYS_LOCATION = "1.3.6.1.2.1.1.6.0"
IF_DESCR = "1.3.6.1.2.1.2.2.1.2"
IF_ADMIN_STATUS = "1.3.6.1.2.1.2.2.1.7"
# net-snmp's names for the protocols SnmpV3Credentials offers.
_NETSNMP_AUTH = {"SHA-256": "SHA-256", "SHA-384": "SHA-384", "SHA-512": "SHA-512"}
_NETSNMP_PRIV = {"AES-128": "AES", "AES-192": "AES-192", "AES-256": "AES-256"}
_READY = "NET-SNMP version"


class SnmpdError(RuntimeError):
    """snmpd could not be started; the message holds the reason and the end of its log."""


def snmpd_skip_reason() -> str | None:
    """Why snmpd cannot run here (Debian package `snmpd` missing), or None when it can."""
    if not os.access(SNMPD, os.X_OK):
        return f"needs Debian's snmpd at {SNMPD} (apt-get install snmpd)"
    return None


@dataclass(frozen=True)
class SnmpUser:
    """An SNMPv3 USM user configured on the agent (read-write, authPriv only)."""

    name: str = "watchstander"
    auth_protocol: str = "SHA-256"
    auth_key: str = field(default="auth-key-for-tests", repr=False)
    priv_protocol: str = "AES-128"
    priv_key: str = field(default="priv-key-for-tests", repr=False)

    def credentials(self) -> SnmpV3Credentials:
        """These keys as the connector takes them."""
        return SnmpV3Credentials(
            user=self.name, auth_protocol=self.auth_protocol,  # type: ignore[arg-type]
            auth_key=self.auth_key, priv_protocol=self.priv_protocol,  # type: ignore[arg-type]
            priv_key=self.priv_key,
        )


DEFAULT_USERS = (
    SnmpUser(),
    SnmpUser("watchstander512", "SHA-512", "auth-key-512-for-tests", "AES-256", "priv-key-256-for-tests"),
)


def free_udp_port(host: str = "127.0.0.1") -> int:
    """A UDP port on host that was free a moment ago."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


class Snmpd:
    """One snmpd process with its own config, log, pid file and persistent directory under workdir."""

    def __init__(
        self,
        workdir: Path,
        *,
        address: str = "127.0.0.1",
        port: int | None = None,
        users: Sequence[SnmpUser] = DEFAULT_USERS,
        namespace: Namespace | None = None,
        extra_config: str = "",
    ) -> None:
        self.workdir = workdir
        self.address = address
        self.port = port
        self.users = tuple(users)
        self.namespace = namespace
        self.extra_config = extra_config
        self.persistent_dir = workdir / "persist"
        self.client_dir = workdir / "client"
        self.config_path = workdir / "snmpd.conf"
        self.log_path = workdir / "snmpd.log"
        self.pid_path = workdir / "snmpd.pid"
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def user(self) -> SnmpUser:
        """The first configured user (SHA-256 + AES-128 by default)."""
        return self.users[0]

    @property
    def endpoint(self) -> str:
        """The agent address as net-snmp writes it (udp:ADDR:PORT, udp6:[ADDR]:PORT)."""
        return f"udp6:[{self.address}]:{self.port}" if ":" in self.address else f"udp:{self.address}:{self.port}"

    def target(self, name: str = "snmp-lab", *, user: SnmpUser | None = None, **overrides: Any) -> SnmpTarget:
        """The SnmpTarget for this agent as `name`, with a configured user's credentials (no retries)."""
        assert self.port is not None, "start() first"
        target = SnmpTarget(name, self.address, self.port, v3=(user or self.user).credentials(), retries=0)
        return replace(target, **overrides)

    def start(self, timeout: float = 10.0) -> Snmpd:
        """Write the config and start snmpd; return once it logged that it is serving."""
        reason = snmpd_skip_reason()
        if reason is not None:
            raise SnmpdError(reason)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.persistent_dir.mkdir(mode=0o700, exist_ok=True)
        self.client_dir.mkdir(mode=0o700, exist_ok=True)
        # A port picked by binding port 0 can be taken again before snmpd binds it: try a few.
        attempts = 1 if self.port is not None else 3
        for attempt in range(attempts):
            if self.port is None or attempt > 0:
                self.port = free_udp_port(self.address)
            try:
                self._start_once(timeout)
                return self
            except SnmpdError:
                if attempt == attempts - 1:
                    raise
        return self

    def _start_once(self, timeout: float) -> None:
        self.config_path.write_text(self._config_text(), encoding="ascii")
        self.log_path.write_bytes(b"")
        argv = [SNMPD, "-f", "-C", "-c", str(self.config_path), "-Lf", str(self.log_path),
                "-p", str(self.pid_path), self.endpoint]
        if self.namespace is not None:
            argv = self.namespace.argv(argv)
        self._proc = subprocess.Popen(
            argv, env=self.env(), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                code = self._proc.returncode
                self._proc = None
                raise SnmpdError(f"snmpd exited {code} on {self.address}:{self.port}: {self.log_tail()}")
            if _READY in self.log_path.read_text(encoding="utf-8", errors="replace"):
                return
            time.sleep(0.02)
        self.stop()
        raise SnmpdError(f"snmpd did not start within {timeout:g} s: {self.log_tail()}")

    def env(self) -> dict[str, str]:
        """Environment for snmpd and the net-snmp CLI tools: our persistent dir, no MIB loading."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("SNMP", "MIB"))}
        env.update({"SNMP_PERSISTENT_DIR": str(self.persistent_dir), "MIBS": "", "SNMPCONFPATH": str(self.workdir)})
        return env

    def _config_text(self) -> str:
        lines = [
            "# written by tests/support/snmpd.py",
            f"[snmp] persistentDir {self.persistent_dir}",
            "sysDescr Watchstander test agent (net-snmp)",
            "sysServices 72",
            "dontLogTCPWrappersConnects yes",
        ]
        for user in self.users:
            lines.append(
                f"createUser {user.name} {_NETSNMP_AUTH[user.auth_protocol]} {user.auth_key} "
                f"{_NETSNMP_PRIV[user.priv_protocol]} {user.priv_key}"
            )
            lines.append(f"rwuser {user.name} authpriv")
        return "\n".join(lines) + "\n" + self.extra_config

    def cli_get(self, oid: str, *, user: SnmpUser | None = None) -> str:
        """Read one OID with net-snmp's own snmpget (an independent client); the value as it prints it."""
        if shutil.which(SNMPGET) is None:
            raise SnmpdError(f"needs {SNMPGET} (apt-get install snmp)")
        u = user or self.user
        argv = [SNMPGET, "-v3", "-l", "authPriv", "-u", u.name, "-a", _NETSNMP_AUTH[u.auth_protocol],
                "-A", u.auth_key, "-x", _NETSNMP_PRIV[u.priv_protocol], "-X", u.priv_key,
                "-Oqv", "-t", "2", "-r", "1", self.endpoint, oid]
        env = self.env() | {"SNMP_PERSISTENT_DIR": str(self.client_dir)}
        proc = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=15, check=False)
        if proc.returncode != 0:
            raise SnmpdError(f"snmpget {oid} exited {proc.returncode}: {proc.stderr.strip()}")
        return proc.stdout.strip()

    def log_tail(self, lines: int = 15) -> str:
        """The last lines of snmpd's log, for error messages."""
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return "(no log)"
        return " | ".join(text.strip().splitlines()[-lines:]) or "(empty log)"

    def stop(self) -> None:
        """Terminate snmpd (kill it if it lingers) and wait for it."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)


@dataclass
class SnmpSwitch:
    """An snmpd "switch" in its own namespace; ports are veth ends whose ifAdminStatus is writable."""

    agent: Snmpd
    namespace: Namespace
    ports: Mapping[str, int]  # port (interface) name -> ifIndex

    @property
    def port_name(self) -> str:
        """The first port's interface name."""
        return next(iter(self.ports))

    @property
    def if_index(self) -> int:
        """The first port's ifIndex: shut it and enable it again."""
        return self.ports[self.port_name]

    def target(self, name: str = "access-switch", **overrides: Any) -> SnmpTarget:
        """The SnmpTarget for the switch's agent."""
        return self.agent.target(name, **overrides)

    def admin_up(self, port: int | str | None = None) -> bool:
        """Whether the port's link is administratively up (IFF_UP), read with `ip link`, not SNMP."""
        name = self._name(port)
        out = self.namespace.run(["ip", "-o", "link", "show", "dev", name]).stdout
        flags = re.search(r"<([^>]*)>", out)
        if flags is None:
            raise SnmpdError(f"cannot read the flags of {name}: {out!r}")
        return "UP" in flags.group(1).split(",")

    def set_admin(self, port: int | str | None, up: bool) -> None:
        """Bring a port up or down with `ip link`, bypassing SNMP (snmpd may report the old state for a few s)."""
        self.namespace.run(["ip", "link", "set", "dev", self._name(port), "up" if up else "down"])

    def _name(self, port: int | str | None) -> str:
        if port is None:
            return self.port_name
        if isinstance(port, str):
            return port
        for name, index in self.ports.items():
            if index == port:
                return name
        raise KeyError(f"no port with ifIndex {port}")


def start_switch(lab: Lab, workdir: Path, port_names: Sequence[str] = ("gi0-1", "gi0-2")) -> SnmpSwitch:
    """Build the switch namespace in lab (ports before snmpd starts, so its ifTable lists them)."""
    ns = lab.namespace("snmpsw")
    link = lab.veth(None, ns, right_name="mgmt0")
    ports: dict[str, int] = {}
    for name in port_names:
        ns.run(["ip", "link", "add", name, "type", "veth", "peer", "name", f"{name}-peer"])
        ns.run(["ip", "link", "set", f"{name}-peer", "up"])
        ns.run(["ip", "link", "set", name, "up"])
        ports[name] = int(ns.run(["cat", f"/sys/class/net/{name}/ifindex"]).stdout.strip())
    agent = Snmpd(workdir, address=str(link.right.ip), port=161, namespace=ns).start()
    return SnmpSwitch(agent, ns, ports)


@pytest.fixture(name="snmpd_v3")
def snmpd_v3_fixture(tmp_path: Path) -> Iterator[Snmpd]:
    """A started snmpd on 127.0.0.1 with the SNMPv3 authPriv users of DEFAULT_USERS."""
    reason = snmpd_skip_reason()
    if reason is not None:
        pytest.skip(reason)
    agent = Snmpd(tmp_path / "snmpd").start()
    try:
        yield agent
    finally:
        agent.stop()


@pytest.fixture(name="snmp_switch")
def snmp_switch_fixture(tmp_path: Path) -> Iterator[SnmpSwitch]:
    """An snmpd switch in a network namespace, ports gi0-1 and gi0-2 up (root only)."""
    reason = snmpd_skip_reason() or netns_skip_reason()
    if reason is not None:
        pytest.skip(reason)
    with Lab("snmp") as lab:
        switch = start_switch(lab, tmp_path / "switch")
        try:
            yield switch
        finally:
            switch.agent.stop()


@pytest.fixture(name="silent_udp_port")
def silent_udp_port_fixture() -> Iterator[int]:
    """A UDP port on 127.0.0.1 bound by a socket that never reads or answers."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]
