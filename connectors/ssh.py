"""SSH to devices with asyncssh: verified host keys, key authentication only, one connection per device.

Host keys come from the target's own known_hosts file and nothing else (never ~/.ssh, never
disabled). asyncssh only says that a key was "not trusted", so the client object below records the
key the server offered and whether known_hosts holds any key for that host: an empty match is
HostKeyUnknown, a non-empty one HostKeyChanged, and both carry the offered SHA256 fingerprint.

`configure` drives a Cisco-IOS-style CLI through an interactive shell (`terminal length 0`,
`enable`, `configure terminal`, the lines, `end`, optionally saving, `exit`); any answer line that
starts with `%` is the device refusing the line.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncssh

from .errors import (
    AuthenticationFailed,
    DeviceError,
    DeviceProtocolError,
    DeviceRefused,
    DeviceTimeout,
    DeviceUnreachable,
    HostKeyChanged,
    HostKeyError,
    HostKeyUnknown,
)

log = logging.getLogger(__name__)

PLATFORMS = ("linux", "cisco-ios")
DEFAULT_PORT = 22


@dataclass(frozen=True)
class SshAlgorithms:
    """Algorithm lists offered during key exchange; None keeps asyncssh's defaults for that list."""

    kex: tuple[str, ...] | None = None
    ciphers: tuple[str, ...] | None = None
    macs: tuple[str, ...] | None = None
    host_key: tuple[str, ...] | None = None


# FIPS 140 approved primitives only: NIST curves and MODP groups with SHA-2, AES in GCM or CTR
# mode, HMAC-SHA-2, ECDSA or RSA with SHA-2 host keys (no curve25519, chacha20, umac, ed25519).
# The client key should then be ECDSA (nistp256/384) or RSA as well.
FIPS_ALGORITHMS = SshAlgorithms(
    kex=("ecdh-sha2-nistp256", "ecdh-sha2-nistp384", "ecdh-sha2-nistp521",
         "diffie-hellman-group14-sha256", "diffie-hellman-group16-sha512"),
    ciphers=("aes256-gcm@openssh.com", "aes128-gcm@openssh.com", "aes256-ctr", "aes128-ctr"),
    macs=("hmac-sha2-256-etm@openssh.com", "hmac-sha2-512-etm@openssh.com", "hmac-sha2-256", "hmac-sha2-512"),
    host_key=("ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "rsa-sha2-256", "rsa-sha2-512"),
)


@dataclass(frozen=True, kw_only=True)
class SshTarget:
    """One device as the SSH connector sees it; `name` (the inventory name) is in every error."""

    name: str
    address: str
    port: int = DEFAULT_PORT
    user: str = ""
    key_file: Path | None = None
    client_key: bytes | None = field(default=None, repr=False)  # private key bytes from a systemd credential
    known_hosts: Path
    platform: str = "linux"  # "linux" | "cisco-ios"
    enable_secret: str | None = field(default=None, repr=False)
    algorithms: SshAlgorithms | None = None
    connect_timeout_s: float = 10.0


@dataclass(frozen=True)
class CommandResult:
    """What a command (or a configuration session) produced; output is bounded and decoded."""

    exit_status: int | None
    stdout: str
    stderr: str
    truncated: bool
    elapsed_s: float


@dataclass(frozen=True)
class HostKeyInfo:
    """The verified host key of a device and the server's version string."""

    fingerprint: str
    key_type: str
    server_version: str


class _VerifyingClient(asyncssh.SSHClient):
    """Matches known_hosts itself and remembers the offered key, so a refusal can say which key it was."""

    def __init__(self, known: asyncssh.SSHKnownHosts) -> None:
        self._known = known
        self.known_for_host: list[asyncssh.SSHKey] = []
        self.offered: asyncssh.SSHKey | None = None

    def match(self, host: str, addr: str, port: int | None) -> Any:
        """known_hosts callback for asyncssh: the trusted keys for this host (revoked ones left out)."""
        if port is None:
            results = [self._known.match(host, addr, None)]
        else:
            # OpenSSH's rule, stricter than asyncssh's: for a port other than 22 only `[name]:port`
            # entries count (asyncssh would fall back to the bare name, trusting a key for any port).
            results = [self._known.match(f"[{name}]:{port}", "", None) for name in dict.fromkeys((host, addr)) if name]
        host_keys = [key for result in results for key in result[0]]
        ca_keys = [key for result in results for key in result[1]]
        revoked = [key for result in results for key in result[2]]
        self.known_for_host = [*host_keys, *ca_keys, *revoked]
        # A revoked key is simply not trusted: it then reaches validate_host_public_key, which records it.
        trusted = [key for key in host_keys if key not in revoked]
        return trusted, ca_keys, []

    def validate_host_public_key(self, host: str, addr: str, port: int, key: asyncssh.SSHKey) -> bool:
        """Called by asyncssh only for a key known_hosts does not trust: record it and refuse."""
        self.offered = key
        return False

    def validate_host_ca_key(self, host: str, addr: str, port: int, key: asyncssh.SSHKey) -> bool:
        """A certificate signed by an untrusted CA: record the CA key and refuse."""
        self.offered = key
        return False

    def host_key_error(self, target: SshTarget, note: str) -> HostKeyError:
        """The HostKeyUnknown or HostKeyChanged for the key this connection was offered."""
        fingerprint = self.offered.get_fingerprint("sha256") if self.offered is not None else "unknown"
        key_type = self.offered.get_algorithm() if self.offered is not None else "unknown type"
        where = f"{target.address}:{target.port}"
        if self.known_for_host:
            known = ", ".join(sorted({key.get_algorithm() for key in self.known_for_host}))
            return HostKeyChanged(
                target.name,
                f"host key of {where} CHANGED: offered {key_type} {fingerprint}, but {target.known_hosts} "
                f"holds another key for this host ({known}){note}", fingerprint)
        return HostKeyUnknown(
            target.name,
            f"host key of {where} is unknown: offered {key_type} {fingerprint}, "
            f"no key for this host in {target.known_hosts}{note}", fingerprint)


@dataclass
class _Connection:
    target: SshTarget
    conn: asyncssh.SSHClientConnection


def _read_known_hosts(path: Path) -> tuple[asyncssh.SSHKnownHosts, str]:
    """The known_hosts file as asyncssh reads it, plus a note when it could not be used (then empty)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return asyncssh.SSHKnownHosts(), " (the file does not exist)"
    except (OSError, UnicodeDecodeError) as exc:
        return asyncssh.SSHKnownHosts(), f" (the file cannot be read: {type(exc).__name__})"
    try:
        return asyncssh.import_known_hosts(text), ""
    except (ValueError, asyncssh.KeyImportError) as exc:
        return asyncssh.SSHKnownHosts(), f" (the file is malformed: {exc})"


def _client_key(target: SshTarget) -> asyncssh.SSHKey:
    """The private key to authenticate with: the credential bytes, else the key file."""
    try:
        if target.client_key is not None:
            return asyncssh.import_private_key(target.client_key)
        if target.key_file is not None:
            return asyncssh.read_private_key(str(target.key_file))
    except (OSError, ValueError, asyncssh.KeyImportError) as exc:
        source = "the client key credential" if target.client_key is not None else str(target.key_file)
        raise AuthenticationFailed(target.name, f"cannot load {source}: {type(exc).__name__}") from exc
    raise AuthenticationFailed(target.name, "no client key configured (key_file or credential)")


def _algorithm_options(algorithms: SshAlgorithms | None) -> dict[str, Any]:
    if algorithms is None:
        return {}
    options: dict[str, Any] = {}
    for option, names in (("kex_algs", algorithms.kex), ("encryption_algs", algorithms.ciphers),
                          ("mac_algs", algorithms.macs), ("server_host_key_algs", algorithms.host_key)):
        if names is not None:
            options[option] = list(names)
    return options


async def _open_connection(target: SshTarget) -> asyncssh.SSHClientConnection:
    """Connect, verify the host key against the target's known_hosts and authenticate with its key."""
    known, note = await asyncio.to_thread(_read_known_hosts, target.known_hosts)
    key = _client_key(target)
    client = _VerifyingClient(known)
    where = f"{target.address}:{target.port}"
    try:
        return await asyncio.wait_for(
            asyncssh.connect(
                target.address, target.port,
                client_factory=lambda: client,
                known_hosts=client.match,
                x509_trusted_certs=None,
                config=None,
                username=target.user or (),
                client_keys=[key],
                agent_path=None,
                agent_forwarding=False,
                password=None,
                kbdint_auth=False,
                gss_auth=False,
                host_based_auth=False,
                preferred_auth="publickey",
                **_algorithm_options(target.algorithms),
            ),
            timeout=target.connect_timeout_s,
        )
    except asyncssh.HostKeyNotVerifiable as exc:
        raise client.host_key_error(target, note) from exc
    except asyncssh.PermissionDenied as exc:
        raise AuthenticationFailed(target.name, f"{where} refused the client key for user {target.user!r}") from exc
    except TimeoutError as exc:
        raise DeviceTimeout(target.name, f"no SSH session with {where} within {target.connect_timeout_s:g} s") from exc
    except OSError as exc:
        raise DeviceUnreachable(target.name, f"cannot connect to {where}: {exc.strerror or exc}") from exc
    except asyncssh.Error as exc:
        raise DeviceProtocolError(target.name, f"SSH with {where} failed: {exc.reason}") from exc
    except ValueError as exc:
        # asyncssh checks algorithm names (and other options) only when connecting.
        raise DeviceProtocolError(target.name, f"invalid SSH options for {where}: {exc}") from exc


async def _drain(stream: asyncssh.SSHReader[bytes], limit: int) -> tuple[bytes, bool]:
    """Read a stream to its end, keeping the first `limit` bytes (the rest is read and dropped)."""
    kept = bytearray()
    truncated = False
    while chunk := await stream.read(65536):
        room = limit - len(kept)
        if room > 0:
            kept += chunk[:room]
        if len(chunk) > room:
            truncated = True
    return bytes(kept), truncated


class SshPool:
    """Connections reused per device (one per target name, opened lazily, reopened when closed); bounded output."""

    def __init__(self, *, max_output: int = 65536) -> None:
        self._max_output = max_output
        self._connections: dict[str, _Connection] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    async def _connection(self, target: SshTarget, *, stale: asyncssh.SSHClientConnection | None = None
                          ) -> asyncssh.SSHClientConnection:
        """The open connection to `target`, opening one when there is none, it closed, or is `stale`."""
        lock = self._locks.setdefault(target.name, asyncio.Lock())
        async with lock:
            current = self._connections.get(target.name)
            if current is not None:
                if current.target == target and current.conn is not stale and not current.conn.is_closed():
                    return current.conn
                del self._connections[target.name]
                current.conn.close()
            conn = await _open_connection(target)
            self._connections[target.name] = _Connection(target, conn)
            return conn

    async def _process(self, target: SshTarget, command: str | None, **kwargs: Any
                       ) -> asyncssh.SSHClientProcess[Any]:
        """Open a session channel on the shared connection, reopening a dead connection once."""
        stale: asyncssh.SSHClientConnection | None = None
        for attempt in (1, 2):
            conn = await self._connection(target, stale=stale)
            try:
                return await conn.create_process(command, **kwargs)
            except asyncssh.ChannelOpenError as exc:
                # OPEN_CONNECT_FAILED: the connection closed before the channel opened, nothing was sent.
                if exc.code == asyncssh.OPEN_CONNECT_FAILED and attempt == 1:
                    log.info("SSH connection to %s was closed; reopening it", target.name)
                    stale = conn
                    continue
                raise DeviceProtocolError(target.name, f"the device refused a session: {exc.reason}") from exc
        raise AssertionError("unreachable")  # pragma: no cover

    async def run(self, target: SshTarget, command_line: str, timeout_s: float) -> CommandResult:
        """Run one command line; a non-zero exit status is a result, not an error."""
        started = time.monotonic()
        try:
            async with asyncio.timeout(timeout_s):
                process = await self._process(target, command_line, encoding=None, stdin=asyncssh.DEVNULL)
                try:
                    (out, out_cut), (err, err_cut) = await asyncio.gather(
                        _drain(process.stdout, self._max_output), _drain(process.stderr, self._max_output))
                    await process.wait_closed()
                finally:
                    process.close()
        except TimeoutError as exc:
            raise DeviceTimeout(target.name, f"command {command_line!r} did not finish within {timeout_s:g} s") from exc
        except DeviceError:
            raise
        except asyncssh.Error as exc:
            raise DeviceProtocolError(target.name, f"command {command_line!r} failed: {exc.reason}") from exc
        except OSError as exc:
            raise DeviceUnreachable(target.name, f"connection lost running {command_line!r}: {exc}") from exc
        return CommandResult(
            exit_status=process.exit_status,
            stdout=out.decode("utf-8", errors="replace"),
            stderr=err.decode("utf-8", errors="replace"),
            truncated=out_cut or err_cut,
            elapsed_s=time.monotonic() - started,
        )

    async def configure(self, target: SshTarget, lines: Sequence[str], *, save: bool, timeout_s: float
                        ) -> CommandResult:
        """Send configuration lines in order in an IOS configuration session; a `%` answer raises DeviceRefused."""
        if target.platform != "cisco-ios":
            raise DeviceRefused(target.name, "configuration sessions are for network devices "
                                f"(platform {target.platform!r} is not cisco-ios)")
        started = time.monotonic()
        session: _CliSession | None = None
        step = "opening the shell"
        try:
            async with asyncio.timeout(timeout_s):
                process = await self._process(target, None, term_type="vt100", term_size=(511, 24),
                                              encoding="utf-8", errors="replace")
                session = _CliSession(target, process, self._max_output)
                try:
                    step = "waiting for the first prompt"
                    prompt = await session.expect_prompt(step)
                    step = "terminal length 0"
                    prompt = await session.command(step)
                    if prompt.endswith(">"):
                        step = "enable"
                        prompt = await session.enable()
                    step = "configure terminal"
                    await session.command(step)
                    for line in lines:
                        step = line
                        await session.command(line)
                    step = "end"
                    await session.command(step)
                    if save:
                        step = "copy running-config startup-config"
                        await session.command(step, confirm=True)
                    step = "exit"
                    await session.leave()
                finally:
                    process.close()
        except TimeoutError as exc:
            raise DeviceTimeout(target.name, f"configuration session stalled at {step!r} "
                                f"(no prompt within {timeout_s:g} s in all)") from exc
        except DeviceError:
            raise
        except asyncssh.Error as exc:
            raise DeviceProtocolError(target.name, f"configuration session failed at {step!r}: {exc.reason}") from exc
        except OSError as exc:
            raise DeviceUnreachable(target.name, f"connection lost at {step!r}: {exc}") from exc
        return CommandResult(
            exit_status=process.exit_status,
            stdout=session.transcript(),
            stderr="",
            truncated=session.truncated,
            elapsed_s=time.monotonic() - started,
        )

    async def check(self, target: SshTarget) -> HostKeyInfo:
        """Connect afresh, verify the host key and authenticate; run nothing."""
        conn = await _open_connection(target)
        try:
            key = conn.get_server_host_key()
            if key is None:  # pragma: no cover - asyncssh always sets it once connected
                raise DeviceProtocolError(target.name, "the server sent no host key")
            return HostKeyInfo(
                fingerprint=key.get_fingerprint("sha256"),
                key_type=key.get_algorithm(),
                server_version=str(conn.get_extra_info("server_version", "")),
            )
        finally:
            conn.close()
            await conn.wait_closed()

    async def close(self) -> None:
        """Close every pooled connection."""
        connections, self._connections = list(self._connections.values()), {}
        for entry in connections:
            entry.conn.close()
        for entry in connections:
            await entry.conn.wait_closed()


# The prompt is the unfinished last line: a host name, an optional (config...) mode, then > or #.
_PROMPT = re.compile(r"^[A-Za-z0-9][\w.\-/]*(?:\([\w.\-]+\))?[>#] ?$")
_PASSWORD = re.compile(r"(?i)^password: ?$")
# "Destination filename [startup-config]?", "[confirm]", "Proceed? [yes/no]:" and the like.
_CONFIRM = re.compile(r"(?:\?|\[confirm\]) ?$")


class _CliSession:
    """An interactive IOS-style shell: send a line, read until the next prompt, notice `%` errors."""

    def __init__(self, target: SshTarget, process: asyncssh.SSHClientProcess[str], max_output: int) -> None:
        self._target = target
        self._process = process
        self._max_output = max_output
        self._received: list[str] = []
        self._size = 0
        self.truncated = False
        self._partial = ""  # the unfinished last line
        self._lines_since_send = 0
        self._errors: list[str] = []

    def transcript(self) -> str:
        """Everything received (bounded), with line ends normalised to \\n."""
        return "".join(self._received).replace("\r\n", "\n").replace("\r", "")

    def _keep(self, chunk: str) -> None:
        room = self._max_output - self._size
        if room > 0:
            self._received.append(chunk[:room])
            self._size += min(room, len(chunk))
        if len(chunk) > room:
            self.truncated = True

    def _feed(self, chunk: str) -> None:
        self._keep(chunk)
        *complete, self._partial = (self._partial + chunk).split("\n")
        for line in complete:
            text = line.replace("\r", "").strip()
            self._lines_since_send += 1
            if text.startswith("%"):
                self._errors.append(text)
        # A prompt is short; an unending line without a newline is kept bounded.
        self._partial = self._partial[-4096:]

    def _send(self, line: str) -> None:
        self._partial = ""
        self._lines_since_send = 0
        self._errors = []
        self._process.stdin.write(line + "\n")

    async def _expect(self, step: str, *patterns: re.Pattern[str]) -> tuple[int, str]:
        """Read until the unfinished line matches one of `patterns` (after our echo); (index, text)."""
        while True:
            text = self._partial.replace("\r", "").lstrip()
            # Our own echo ends in a newline: before it, the unfinished line is still the old prompt.
            if self._lines_since_send > 0:
                for index, pattern in enumerate(patterns):
                    if pattern.search(text):
                        return index, text.rstrip()
            chunk = await self._process.stdout.read(4096)
            if not chunk:
                raise DeviceProtocolError(self._target.name, f"the device closed the session at {step!r}")
            self._feed(chunk)

    async def expect_prompt(self, step: str) -> str:
        """Wait for a prompt; returns it (e.g. `router#`)."""
        self._lines_since_send = 1  # nothing was sent yet: a banner may precede the prompt
        return (await self._expect(step, _PROMPT))[1]

    async def command(self, line: str, *, confirm: bool = False) -> str:
        """Send `line` and wait for the prompt; a `%` line in the answer raises DeviceRefused."""
        self._send(line)
        patterns = (_PROMPT, _CONFIRM) if confirm else (_PROMPT,)
        for _ in range(3):
            index, prompt = await self._expect(line, *patterns)
            self._refused(line)
            if index == 0:
                return prompt
            self._process.stdin.write("\n")  # accept the default the device proposes
            self._lines_since_send = 0
        raise DeviceProtocolError(self._target.name, f"{line!r} kept asking for confirmation")

    def _refused(self, line: str) -> None:
        if self._errors:
            raise DeviceRefused(self._target.name, f"the device refused {line!r}: {self._errors[0]}")

    async def enable(self) -> str:
        """Enter privileged mode, answering a password prompt with the enable secret."""
        self._send("enable")
        index, prompt = await self._expect("enable", _PROMPT, _PASSWORD)
        if index == 1:
            if self._target.enable_secret is None:
                raise AuthenticationFailed(self._target.name, "the device asks for an enable password "
                                           "and none is configured")
            self._send(self._target.enable_secret)
            index, prompt = await self._expect("enable", _PROMPT, _PASSWORD)
            if index == 1 or self._errors:
                raise AuthenticationFailed(self._target.name, "the device refused the enable password")
        self._refused("enable")
        if not prompt.endswith("#"):
            raise AuthenticationFailed(self._target.name, f"enable did not reach privileged mode ({prompt!r})")
        return prompt

    async def leave(self, grace_s: float = 2.0) -> None:
        """Say `exit` and read until the device closes the session (or `grace_s` passes: the work is done)."""
        self._process.stdin.write("exit\n")

        async def rest() -> None:
            while chunk := await self._process.stdout.read(4096):
                self._keep(chunk)

        try:
            await asyncio.wait_for(rest(), grace_s)
        except TimeoutError:
            log.debug("%s kept the session open after exit; closing it", self._target.name)
