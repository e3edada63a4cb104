"""A real Linux firewall for tests: a namespace with sshd, nftables and a sudo-limited account.

Layout (all made by the test, removed at teardown):

    host namespace (the agent) --mgmt veth, 10.2xx.x.x/30-- fw namespace --ext veth-- attacker
                                                     sshd on MGMT:22    192.168.56.254/24   192.168.56.1/24

The fw namespace holds the `inet watchstander` table exactly as docs/playbooks.md
("Provisioning a Linux firewall") tells operators to provision it, and the account may run only
the nft and ss commands that section's sudoers rule allows. A firewall is also a Linux host: the
same device serves the `linux-host` role (linux-volatile-forensics).
"""

from __future__ import annotations

import itertools
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

from support.netns import Lab, Namespace, netns_skip_reason
from support.sshd import SSHD, Sshd, SystemUser, make_key

# Both texts are quoted verbatim in docs/playbooks.md; test_firewall_device.py checks they match.
NFT_RULESET = """\
table inet watchstander {
	set block_v4 {
		type ipv4_addr
		flags timeout
	}
	chain input {
		type filter hook input priority -10; policy accept;
		ip saddr @block_v4 drop
	}
	chain forward {
		type filter hook forward priority -10; policy accept;
		ip saddr @block_v4 drop
	}
}
"""

SUDOERS_TEMPLATE = r"""# Watchstander: block-address-nftables (linux-firewall)
{user} ALL=(root) NOPASSWD: /usr/sbin/nft list set inet watchstander block_v4, \
    /usr/sbin/nft ^add element inet watchstander block_v4 \{{ ([0-9]{{1,3}}\.){{3}}[0-9]{{1,3}} timeout [0-9]{{1,5}}m \}}$, \
    /usr/sbin/nft ^(get|delete) element inet watchstander block_v4 \{{ ([0-9]{{1,3}}\.){{3}}[0-9]{{1,3}} \}}$
# Watchstander: linux-volatile-forensics (linux-host)
{user} ALL=(root) NOPASSWD: /usr/bin/ss -tuapn
"""

_instances = itertools.count()

ATTACKER_ADDRESS = "192.168.56.1"
INSIDE_ADDRESS = "192.168.56.254"

REQUIRED_BINARIES = ("ip", "nft", "sudo", "visudo", "ssh", "ssh-keygen", "useradd", "userdel")

# Accepts on INSIDE_ADDRESS, port 0, and prints the port: a service for the attacker to reach.
_LISTENER = """
import socket, sys
s = socket.socket()
s.bind((sys.argv[1], 0))
s.listen(64)
print(s.getsockname()[1], flush=True)
while True:
    c, _ = s.accept()
    c.close()
"""

# Exit 0: connected; 1: refused (the packets got through); 2: no answer (dropped).
_PROBE = """
import socket, sys
try:
    socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=float(sys.argv[3])).close()
except ConnectionRefusedError:
    sys.exit(1)
except OSError:
    sys.exit(2)
"""


def firewall_skip_reason() -> str | None:
    """Why a LinuxFirewall cannot be built here, or None when it can."""
    reason = netns_skip_reason()
    if reason is not None:
        return reason
    missing = [name for name in REQUIRED_BINARIES if shutil.which(name) is None]
    if not Path(SSHD).exists():
        missing.append(SSHD)
    if missing:
        return f"needs {', '.join(missing)} (Debian: openssh-server openssh-client nftables sudo iproute2 passwd)"
    version = re.search(r"(\d+)\.(\d+)\.(\d+)", "\n".join(_lines(["sudo", "-V"])[:1]))
    if version is None or tuple(int(part) for part in version.groups()) < (1, 9, 10):
        return "needs sudo 1.9.10 or later (regular expressions in sudoers, Debian 12 has 1.9.13)"
    return None


@dataclass
class LinuxFirewall:
    """The running device: where to connect, as whom, with which key, and how to inspect it."""

    name: str
    mgmt_address: str
    ssh_port: int
    user: str
    client_key: Path
    known_hosts: Path
    host_public_key: str
    host_key_fingerprint: str
    attacker_address: str
    inside_address: str
    listener_port: int
    namespace: Namespace
    attacker: Namespace
    workdir: Path
    sshd: Sshd

    def nft(self, *args: str) -> str:
        """Run `nft ARGS` as root inside the firewall (for the test's own inspection); its stdout."""
        return self.namespace.run(["nft", *args]).stdout

    def run(self, argv: Sequence[str], *, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run argv as root inside the firewall namespace."""
        return self.namespace.run(argv, check=check)

    def block_set(self) -> str:
        """`nft list set inet watchstander block_v4`, as root."""
        return self.nft("list", "set", "inet", "watchstander", "block_v4")

    def reachable_from_attacker(self, port: int | None = None, timeout: float = 1.0) -> bool:
        """Whether a TCP connection from 192.168.56.1 to the firewall gets any answer.

        Connected or refused both mean the packets passed; no answer within timeout means they
        were dropped. The default port is the firewall's own test listener.
        """
        argv = [sys.executable, "-I", "-S", "-c", _PROBE, self.inside_address,
                str(port or self.listener_port), str(timeout)]
        status = self.attacker.run(argv, check=False, timeout=timeout + 10).returncode
        if status not in (0, 1, 2):
            raise RuntimeError(f"probe from the attacker namespace failed with status {status}")
        return status in (0, 1)

    def ssh_argv(self, remote: Sequence[str] | str, *, known_hosts: Path | None = None) -> list[str]:
        """OpenSSH client command line running remote: a command line, or an argv quoted like the runner does."""
        line = remote if isinstance(remote, str) else shlex.join(remote)
        return [
            "ssh", "-F", "/dev/null", "-i", str(self.client_key),
            "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes",
            "-o", f"UserKnownHostsFile={known_hosts or self.known_hosts}",
            "-o", "GlobalKnownHostsFile=/dev/null", "-o", "ConnectTimeout=5",
            "-p", str(self.ssh_port), "-l", self.user, self.mgmt_address, "--", line,
        ]

    def ssh(self, remote: Sequence[str] | str, *, known_hosts: Path | None = None) -> subprocess.CompletedProcess[str]:
        """Run remote over SSH as the provisioned user with the OpenSSH client."""
        return subprocess.run(self.ssh_argv(remote, known_hosts=known_hosts), capture_output=True, text=True,
                              timeout=30, check=False)


# A firewall is a Linux host; the forensics playbook's device is the same thing.
LinuxHost = LinuxFirewall


def sudoers_text(user: str) -> str:
    """The sudoers drop-in for the account `user` (docs/playbooks.md, "sudo rules")."""
    return SUDOERS_TEMPLATE.format(user=user)


def _dead(pid: str) -> bool:
    return int(pid) != os.getpid() and not Path(f"/proc/{pid}").exists()


def remove_leftovers(tag: str = "fw") -> None:
    """Remove what an earlier run killed before its teardown left behind (its pid is gone)."""
    for name in _lines(["ip", "netns", "list"]):
        match = re.fullmatch(rf"ws-{re.escape(tag)}\d*-(?:fw|attacker)-(\d+)", name.split(" ")[0])
        if match and _dead(match.group(1)):
            stale = Namespace(match.group(0), [])
            for pid in stale.pids():
                with suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            subprocess.run(["ip", "netns", "del", stale.name], capture_output=True, timeout=15, check=False)
    for line in _lines(["ip", "-o", "link", "show"]):
        match = re.search(r"^\d+: (ws(\d+)x\d+)[@:]", line)
        if match and _dead(match.group(2)):
            subprocess.run(["ip", "link", "del", match.group(1)], capture_output=True, timeout=15, check=False)
    for line in _lines(["getent", "passwd"]):
        match = re.fullmatch(r"wsfw(\d+)x\d+", line.split(":")[0])
        if match and _dead(match.group(1)):
            SystemUser(match.group(0), Path(line.split(":")[5]), created=True).remove()
    for workdir in Path(tempfile.gettempdir()).glob(f"ws-{tag}*"):
        match = re.fullmatch(rf"ws-{re.escape(tag)}\d*-(\d+)-.*", workdir.name)
        if match and _dead(match.group(1)):
            shutil.rmtree(workdir, ignore_errors=True)


def _lines(argv: list[str]) -> list[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=15, check=False).stdout.splitlines()


@contextmanager
def start_linux_firewall(tag: str = "fw") -> Iterator[LinuxFirewall]:
    """Build the firewall, yield it, and tear everything down whatever happens inside."""
    remove_leftovers(tag)
    pid = os.getpid()
    # Several firewalls may be alive in one process (a module's and a session's fixture).
    number = next(_instances)
    tag = f"{tag}{number}"
    user = f"wsfw{pid}x{number}"
    with ExitStack() as stack:
        # Not pytest's tmp dir: that is 0700 root, and sshd reads authorized_keys as the user.
        workdir = Path(tempfile.mkdtemp(prefix=f"ws-{tag}-{pid}-"))
        stack.callback(shutil.rmtree, workdir, ignore_errors=True)
        workdir.chmod(0o755)
        client_dir = workdir / "client"
        client_dir.mkdir(mode=0o700)

        # Registered before the lab so that it runs after the lab has killed the user's sessions.
        account = SystemUser(user, workdir / "home")
        stack.callback(account.remove)
        lab = stack.enter_context(Lab(tag))
        fw = lab.namespace("fw")
        attacker = lab.namespace("attacker")
        mgmt = lab.veth(None, fw, right_name="mgmt0")
        lab.veth(fw, attacker, left=f"{INSIDE_ADDRESS}/24", right=f"{ATTACKER_ADDRESS}/24",
                 left_name="ext0", right_name="eth0")
        fw.run(["nft", "-f", "-"], input=NFT_RULESET)

        client_key = client_dir / "id_ed25519"
        account.create(make_key(client_key, f"watchstander-agent-{pid}"))
        account.install_sudoers(sudoers_text(user))

        mgmt_address = str(mgmt.right.ip)
        sshd = Sshd(fw, mgmt_address, workdir / "sshd", [user])
        stack.callback(sshd.stop)
        sshd.start()
        known_hosts = client_dir / "known_hosts"
        known_hosts.write_text(sshd.known_hosts_line() + "\n", encoding="ascii")

        listener = fw.popen([sys.executable, "-I", "-S", "-c", _LISTENER, INSIDE_ADDRESS],
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE)
        assert listener.stdout is not None
        listener_port = int(listener.stdout.readline())

        yield LinuxFirewall(
            name=f"fw-{pid}-{number}", mgmt_address=mgmt_address, ssh_port=sshd.port, user=user,
            client_key=client_key, known_hosts=known_hosts, host_public_key=sshd.public_host_key,
            host_key_fingerprint=sshd.fingerprint, attacker_address=ATTACKER_ADDRESS,
            inside_address=INSIDE_ADDRESS, listener_port=listener_port, namespace=fw, attacker=attacker,
            workdir=workdir, sshd=sshd,
        )


def wait_until(predicate: Callable[[], bool], timeout: float, interval: float = 0.1) -> bool:
    """Poll predicate until it is true (True) or timeout passes (False)."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(interval)
