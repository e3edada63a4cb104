"""Debian's real OpenSSH server in a test namespace, and the system account it lets in.

`Sshd` runs /usr/sbin/sshd in the foreground with its own config, host key and pid file (never
/etc/ssh's); `SystemUser` is a throwaway system account with one authorized key and an optional
sudoers drop-in, validated with `visudo -cf` before it is installed. Both undo themselves.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

from support.netns import Namespace

SSHD = "/usr/sbin/sshd"
SUDOERS_D = Path("/etc/sudoers.d")


class DeviceSetupError(RuntimeError):
    """A test device could not be set up; the message says which part and why."""


def _check(argv: list[str], *, input: str | None = None) -> str:
    proc = subprocess.run(argv, capture_output=True, text=True, input=input, timeout=30, check=False)
    if proc.returncode != 0:
        raise DeviceSetupError(f"{' '.join(argv)} exited {proc.returncode}: {proc.stderr.strip()}")
    return proc.stdout


def make_key(path: Path, comment: str) -> str:
    """Generate an ed25519 key pair without passphrase at path; return the public key line."""
    _check(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)])
    return path.with_suffix(".pub").read_text(encoding="ascii").strip()


def fingerprint(public_key_file: Path) -> str:
    """The SHA256 fingerprint (`SHA256:...`) of a public key file, as ssh prints it."""
    return _check(["ssh-keygen", "-l", "-E", "sha256", "-f", str(public_key_file)]).split()[1]


class SystemUser:
    """A system account with a home, one authorized ed25519 key and maybe a sudoers drop-in."""

    def __init__(self, name: str, home: Path, *, created: bool = False) -> None:
        self.name = name
        self.home = home
        self.sudoers: Path | None = SUDOERS_D / name if created else None
        self._created = created

    def create(self, authorized_key: str) -> None:
        """Add the account (shell /bin/sh, usable for key logins only) and authorize the key."""
        # "*" rather than useradd's "!": with UsePAM no, sshd refuses accounts whose password is locked.
        _check(["useradd", "--system", "--create-home", "--home-dir", str(self.home),
                "--shell", "/bin/sh", "--password", "*", "--user-group", self.name])
        self._created = True
        ssh_dir = self.home / ".ssh"
        ssh_dir.mkdir(mode=0o700)
        keys = ssh_dir / "authorized_keys"
        keys.write_text(authorized_key + "\n", encoding="ascii")
        keys.chmod(0o600)
        shutil.chown(ssh_dir, self.name, self.name)
        shutil.chown(keys, self.name, self.name)

    def install_sudoers(self, text: str) -> Path:
        """Validate text with `visudo -cf` and install it as /etc/sudoers.d/<name> (0440)."""
        # sudo ignores files in sudoers.d whose name contains a dot: safe to write, check, rename.
        staging = SUDOERS_D / f".{self.name}.tmp"
        staging.write_text(text, encoding="utf-8")
        staging.chmod(0o440)
        try:
            _check(["visudo", "-c", "-q", "-f", str(staging)])
        except DeviceSetupError:
            staging.unlink()
            raise
        target = SUDOERS_D / self.name
        staging.rename(target)
        self.sudoers = target
        return target

    def remove(self) -> None:
        """Delete the sudoers drop-in, the account and its home."""
        if self.sudoers is not None:
            self.sudoers.unlink(missing_ok=True)
            self.sudoers = None
        (SUDOERS_D / f".{self.name}.tmp").unlink(missing_ok=True)
        if self._created:
            subprocess.run(["userdel", "--remove", "--force", self.name], capture_output=True, timeout=30,
                           check=False)
            self._created = False
        shutil.rmtree(self.home, ignore_errors=True)


class Sshd:
    """/usr/sbin/sshd in the foreground inside a namespace, with its own config and host key."""

    def __init__(self, ns: Namespace, address: str, workdir: Path, users: list[str], port: int = 22) -> None:
        self.ns = ns
        self.address = address
        self.port = port
        self.workdir = workdir
        self.users = users
        self.host_key = workdir / "ssh_host_ed25519_key"
        self.config = workdir / "sshd_config"
        self.log = workdir / "sshd.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 10.0) -> None:
        """Write key and config, check them with `sshd -t`, start sshd and wait until it listens."""
        self.workdir.mkdir(mode=0o700, parents=True, exist_ok=True)
        make_key(self.host_key, f"watchstander-test-{os.getpid()}")
        self.config.write_text(self._config_text(), encoding="utf-8")
        # The privilege-separation directory; Debian's unit creates it, nothing does here.
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
        _check([SSHD, "-t", "-f", str(self.config)])
        with self.log.open("wb") as log:
            self.process = self.ns.popen([SSHD, "-D", "-e", "-f", str(self.config)],
                                         stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while b"Server listening on" not in self.log.read_bytes():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise DeviceSetupError(f"sshd in {self.ns.name} did not start: {self.log.read_text()!r}")
            time.sleep(0.02)

    def stop(self) -> None:
        """Stop sshd (the namespace's teardown kills any session it left behind)."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)

    @property
    def public_host_key(self) -> str:
        """The host key as `ssh-ed25519 AAAA...` (without comment)."""
        kind, blob = self.host_key.with_suffix(".pub").read_text(encoding="ascii").split()[:2]
        return f"{kind} {blob}"

    @property
    def fingerprint(self) -> str:
        """The host key's SHA256 fingerprint."""
        return fingerprint(self.host_key.with_suffix(".pub"))

    def known_hosts_line(self) -> str:
        """The known_hosts line for this server (`ADDR key`, or `[ADDR]:PORT key` off port 22)."""
        host = self.address if self.port == 22 else f"[{self.address}]:{self.port}"
        return f"{host} {self.public_host_key}"

    def _config_text(self) -> str:
        return "\n".join([
            f"Port {self.port}",
            f"ListenAddress {self.address}",
            f"HostKey {self.host_key}",
            f"PidFile {self.workdir / 'sshd.pid'}",
            "AuthorizedKeysFile .ssh/authorized_keys",
            "PubkeyAuthentication yes",
            "PasswordAuthentication no",
            "KbdInteractiveAuthentication no",
            "PermitRootLogin no",
            "UsePAM no",
            "StrictModes yes",
            f"AllowUsers {' '.join(self.users)}",
            "AllowTcpForwarding no",
            "AllowAgentForwarding no",
            "X11Forwarding no",
            "PermitTunnel no",
            "PrintMotd no",
            "PrintLastLog no",
            # The agent may open a connection per step, several at once.
            "MaxStartups 50:30:100",
            "LogLevel VERBOSE",
            "",
        ])
