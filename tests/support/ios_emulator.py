"""An asyncssh server on 127.0.0.1 that behaves like a small Cisco-IOS-style router CLI.

It stands in for the router and switch playbooks where no real device can exist on this machine.
It runs on its own thread and event loop, so synchronous tests and asyncio tests alike can use it:

    with IosEmulator(keys.host, [keys.client]) as router:
        ...  # ssh -p router.port watchstander@127.0.0.1
        assert router.sessions[-1] == ["terminal length 0", "enable", ...]

What it understands: prompts `router>`, `router#`, `router(config)#`, `router(config-ext-nacl)#`,
`router(config-if)#`; `enable` (with an optional password), `disable`, `terminal length N`,
`configure terminal`, `ip access-list extended NAME` and its entries (`SEQ deny|permit ip
host A.B.C.D|any host A.B.C.D|any [log]`, `no SEQ`), `interface NAME` with `shutdown` / `no
shutdown` / `description`, `exit`, `end`, `show access-lists`, `show ip access-lists [NAME]`,
`show running-config [interface NAME]`, `show startup-config`, `show interfaces NAME [status]`, `show ip arp`,
`copy running-config startup-config` (asks for the destination) and `write memory`. Anything else
answers `% Invalid input detected at '^' marker.`

An exec request (`ssh router show ip access-lists`) runs one command in privileged mode and exits
with status 0, or 1 when the command was refused. Every session's received lines are recorded in
`sessions`; the configuration state is shared by all sessions and inspectable from the test.
"""

from __future__ import annotations

import asyncio
import copy
import ipaddress
import re
import threading
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Self

import asyncssh

from support.sshkeys import SshKeyPair, known_hosts_line

BLOCK_ACL = "WATCHSTANDER-BLOCK"
INVALID = "% Invalid input detected at '^' marker."
_ENTRY = re.compile(
    r"^(?:(?P<seq>\d{1,10})\s+)?(?P<action>deny|permit)\s+ip\s+(?P<src>host\s+\S+|any)\s+(?P<dst>host\s+\S+|any)"
    r"(?P<log>\s+log)?$")
_NAME = re.compile(r"^[A-Za-z0-9][\w.\-]{0,63}$")


@dataclass
class IosState:
    """The device's configuration: ACLs (name -> sequence -> entry text) and interfaces (name -> shut down)."""

    hostname: str = "router"
    acls: dict[str, dict[int, str]] = field(default_factory=dict)
    interfaces: dict[str, bool] = field(default_factory=dict)
    descriptions: dict[str, str] = field(default_factory=dict)
    # address -> (MAC as IOS prints it, e.g. 0050.56aa.0015; age in minutes or "-" for its own; interface)
    arp: dict[str, tuple[str, str, str]] = field(default_factory=dict)

    def render(self) -> str:
        """The configuration as `show running-config` prints it."""
        out = ["Building configuration...", "", "Current configuration:", "!", f"hostname {self.hostname}", "!"]
        for name, shut in self.interfaces.items():
            out.append(f"interface {name}")
            if name in self.descriptions:
                out.append(f" description {self.descriptions[name]}")
            out.extend([" shutdown" if shut else " no shutdown", "!"])
        for name, entries in self.acls.items():
            out.append(f"ip access-list extended {name}")
            out.extend(f" {seq} {text}" for seq, text in sorted(entries.items()))
            out.append("!")
        out.append("end")
        return "\n".join(out) + "\n"


class _Invalid(Exception):
    """The line is not understood in this mode."""


class _Cli:
    """One session's view of the CLI: its mode, and the commands valid in each mode."""

    def __init__(self, emulator: IosEmulator, *, privileged: bool,
                 ask: Callable[[str, bool], Awaitable[str]]) -> None:
        self._emu = emulator
        self._ask = ask
        self.mode = "exec" if privileged else "user"
        self._acl: str | None = None
        self._interface: str | None = None
        self.closed = False

    def prompt(self) -> str:
        """The prompt for the current mode."""
        host = self._emu.state.hostname
        return {"user": f"{host}>", "exec": f"{host}#", "config": f"{host}(config)#",
                "nacl": f"{host}(config-ext-nacl)#", "if": f"{host}(config-if)#"}[self.mode]

    async def execute(self, line: str) -> tuple[str, bool]:
        """Run one line; returns (output, refused)."""
        words = line.split()
        if not words:
            return "", False
        if self._emu.fail_on is not None and line.strip() == self._emu.fail_on:
            return self._invalid(), True
        try:
            output = await self._dispatch(words)
        except _Invalid:
            return self._invalid(), True
        return output, output.startswith("%")

    def _invalid(self) -> str:
        return " " * len(self.prompt()) + "^\n" + INVALID + "\n\n"

    async def _dispatch(self, words: list[str]) -> str:
        if self.mode in ("user", "exec"):
            return await self._exec(words)
        # The lock is never held across an await: the test's thread reads the state under it.
        with self._emu.lock:
            if self.mode == "nacl":
                handled = self._nacl(words)
            elif self.mode == "if":
                handled = self._if(words)
            else:
                handled = None
            if handled is not None:
                return handled
            return self._config(words)

    async def _exec(self, words: list[str]) -> str:
        lowered = [w.lower() for w in words]
        if lowered in (["exit"], ["logout"], ["quit"]):
            self.closed = True
            return ""
        if lowered[:2] in (["terminal", "length"], ["term", "len"]) and len(words) == 3 and words[2].isdigit():
            return ""
        if lowered == ["enable"]:
            if self.mode == "exec":
                return ""
            if self._emu.enable_password is not None:
                answer = await self._ask("Password: ", False)
                if answer != self._emu.enable_password:
                    return "% Access denied\n\n"
            self.mode = "exec"
            return ""
        if lowered == ["disable"]:
            self.mode = "user"
            return ""
        if lowered[:1] == ["show"]:
            with self._emu.lock:
                return self._show(words[1:], lowered[1:])
        if self.mode != "exec":
            raise _Invalid
        if lowered in (["configure", "terminal"], ["conf", "t"], ["configure"]):
            self.mode = "config"
            return "Enter configuration commands, one per line.  End with CNTL/Z.\n"
        if lowered == ["copy", "running-config", "startup-config"]:
            answer = await self._ask("Destination filename [startup-config]? ", True)
            if answer.strip() not in ("", "startup-config"):
                return "%Error opening " + answer.strip() + " (No such file or directory)\n"
            self._emu.save()
            return "Building configuration...\n[OK]\n"
        if lowered in (["write", "memory"], ["write"], ["wr"]):
            self._emu.save()
            return "Building configuration...\n[OK]\n"
        raise _Invalid

    def _show(self, words: list[str], lowered: list[str]) -> str:
        state = self._emu.state
        if lowered == ["access-lists"] or lowered[:2] == ["ip", "access-lists"] and len(words) <= 3:
            names = list(state.acls) if len(words) != 3 else [n for n in state.acls if n == words[2]]
            out = []
            for name in names:
                out.append(f"Extended IP access list {name}")
                out.extend(f"    {seq} {text}" for seq, text in sorted(state.acls[name].items()))
            return "".join(line + "\n" for line in out)
        if lowered == ["ip", "arp"]:
            rows = ["Protocol  Address          Age (min)  Hardware Addr   Type   Interface"]
            rows += [f"Internet  {ip:<15} {age:>10}   {mac:<14}  ARPA   {iface}"
                     for ip, (mac, age, iface) in sorted(state.arp.items())]
            return "\n".join(rows) + "\n"
        if self.mode != "exec" and lowered[:1] in (["running-config"], ["startup-config"]):
            raise _Invalid
        if lowered == ["running-config"]:
            return state.render()
        if lowered == ["startup-config"]:
            return self._emu.startup_config()
        if lowered[:2] == ["running-config", "interface"] and len(words) == 3:
            name = self._interface_name(words[2])
            lines = [f"interface {name}"]
            if name in state.descriptions:
                lines.append(f" description {state.descriptions[name]}")
            lines.append(" shutdown" if state.interfaces[name] else " no shutdown")
            body = "\n".join([*lines, "end"]) + "\n"
            return f"Building configuration...\n\nCurrent configuration : {len(body)} bytes\n!\n{body}"
        if lowered[:1] == ["interfaces"] and len(words) in (2, 3) and lowered[2:] in ([], ["status"]):
            name = self._interface_name(words[1])
            shut = state.interfaces[name]
            if lowered[2:] == ["status"]:
                status = "disabled" if shut else "connected"
                return f"Port      Name  Status       Vlan  Duplex  Speed Type\n{name}  {status}  1  auto  auto\n"
            admin = "administratively down" if shut else "up"
            return f"{name} is {admin}, line protocol is {'down' if shut else 'up'}\n"
        raise _Invalid

    def _interface_name(self, word: str) -> str:
        for name in self._emu.state.interfaces:
            if name.lower() == word.lower():
                return name
        raise _Invalid

    def _config(self, words: list[str]) -> str:
        state = self._emu.state
        lowered = [w.lower() for w in words]
        if lowered == ["end"]:
            self.mode = "exec"
            return ""
        if lowered == ["exit"]:
            self.mode = "config" if self.mode in ("nacl", "if") else "exec"
            return ""
        if lowered[:3] == ["ip", "access-list", "extended"] and len(words) == 4 and _NAME.match(words[3]):
            state.acls.setdefault(words[3], {})
            self._acl, self.mode = words[3], "nacl"
            return ""
        if lowered[:4] == ["no", "ip", "access-list", "extended"] and len(words) == 5:
            state.acls.pop(words[4], None)
            self.mode = "config"
            return ""
        if lowered[:1] == ["interface"] and len(words) == 2:
            self._interface, self.mode = self._interface_name(words[1]), "if"
            return ""
        raise _Invalid

    def _nacl(self, words: list[str]) -> str | None:
        assert self._acl is not None
        entries = self._emu.state.acls.setdefault(self._acl, {})
        if len(words) == 2 and words[0].lower() == "no" and words[1].isdigit():
            entries.pop(int(words[1]), None)
            return ""
        match = _ENTRY.match(" ".join(words).lower())
        if match is None:
            return None
        for end in ("src", "dst"):
            if match[end].startswith("host"):
                try:
                    ipaddress.IPv4Address(match[end].split()[1])
                except ValueError:
                    raise _Invalid from None
        seq = int(match["seq"]) if match["seq"] else max(entries, default=0) + 10
        if not 1 <= seq <= 2147483647:
            raise _Invalid
        if seq in entries:
            return "% Duplicate sequence number\n"
        src, dst = (" ".join(match[end].split()) for end in ("src", "dst"))
        entries[seq] = f"{match['action']} ip {src} {dst}" + (" log" if match["log"] else "")
        return ""

    def _if(self, words: list[str]) -> str | None:
        assert self._interface is not None
        state = self._emu.state
        lowered = [w.lower() for w in words]
        if lowered == ["shutdown"]:
            state.interfaces[self._interface] = True
            return ""
        if lowered == ["no", "shutdown"]:
            state.interfaces[self._interface] = False
            return ""
        if lowered[:1] == ["description"] and len(words) > 1:
            state.descriptions[self._interface] = " ".join(words[1:])
            return ""
        return None


class _Server(asyncssh.SSHServer):
    def __init__(self, emulator: IosEmulator) -> None:
        self._emu = emulator
        self._conn: asyncssh.SSHServerConnection | None = None

    def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
        self._conn = conn
        self._emu._connection_made(conn)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._conn is not None:
            self._emu._connection_lost(self._conn)

    def begin_auth(self, username: str) -> bool:
        return True

    def password_auth_supported(self) -> bool:
        return False

    def kbdint_auth_supported(self) -> bool:
        return False

    def public_key_auth_supported(self) -> bool:
        return True

    def validate_public_key(self, username: str, key: asyncssh.SSHKey) -> bool:
        return username == self._emu.user and key.public_data in self._emu._authorized

    def auth_completed(self) -> None:
        with self._emu.lock:
            self._emu.logins += 1


class IosEmulator:
    """A Cisco-IOS-style SSH device on 127.0.0.1, port chosen by the system, on its own thread."""

    def __init__(self, host_key: SshKeyPair, authorized_keys: Sequence[SshKeyPair], *,
                 user: str = "watchstander", hostname: str = "router",
                 enable_password: str | None = None, fail_on: str | None = None, delay_s: float = 0.0,
                 preload_block_acl: bool = True,
                 interfaces: Sequence[str] = ("GigabitEthernet0/1", "GigabitEthernet0/2"),
                 server_options: Mapping[str, Any] | None = None) -> None:
        self.host_key = host_key
        self.user = user
        self.enable_password = enable_password
        self.fail_on = fail_on
        self.delay_s = delay_s
        self._authorized = {asyncssh.read_public_key(str(key.public_path)).public_data for key in authorized_keys}
        self._server_options = dict(server_options or {})
        self.lock = threading.RLock()
        self.state = IosState(hostname=hostname, interfaces={name: False for name in interfaces})
        if preload_block_acl:
            self.state.acls[BLOCK_ACL] = {10000: "permit ip any any"}
        self._startup = copy.deepcopy(self.state)
        self._sessions: list[list[str]] = []
        self.connections = 0
        self.logins = 0
        self._open: set[asyncssh.SSHServerConnection] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncssh.SSHAcceptor | None = None
        self._started = threading.Event()
        self._failure: BaseException | None = None
        self.port = 0

    # -- what tests look at -------------------------------------------------------------------

    @property
    def host_key_fingerprint(self) -> str:
        """The SHA256 fingerprint of the host key, as ssh and asyncssh print it."""
        return self.host_key.fingerprint

    def known_hosts_line(self, host: str = "127.0.0.1") -> str:
        """The known_hosts line that trusts this emulator (`[127.0.0.1]:PORT ssh-ed25519 ...`)."""
        return known_hosts_line(host, self.port, self.host_key)

    @property
    def sessions(self) -> list[list[str]]:
        """The lines each session sent, in order (an exec request is a one-line session)."""
        with self.lock:
            return [list(lines) for lines in self._sessions]

    def acl(self, name: str = BLOCK_ACL) -> list[str]:
        """The entries of an ACL as `show ip access-lists` prints them (`10 deny ip host 1.2.3.4 any log`)."""
        with self.lock:
            return [f"{seq} {text}" for seq, text in sorted(self.state.acls.get(name, {}).items())]

    def interface_shutdown(self, name: str) -> bool:
        """Whether the interface is administratively down in the running configuration."""
        with self.lock:
            return self.state.interfaces[name]

    def set_arp(self, address: str, mac: str, *, age: str = "0",
                interface: str = "GigabitEthernet0/1") -> None:
        """Put an entry in the ARP table `show ip arp` prints (mac in IOS form, 0050.56aa.0015)."""
        with self.lock:
            self.state.arp[address] = (mac, age, interface)

    def running_config(self) -> str:
        """`show running-config`."""
        with self.lock:
            return self.state.render()

    def startup_config(self) -> str:
        """`show startup-config`: the configuration as last saved."""
        with self.lock:
            return self._startup.render()

    def disconnect_all(self) -> None:
        """Close every open connection from the device's side (as a reload or an idle timeout would)."""
        loop = self._loop
        if loop is None or not loop.is_running():
            return

        async def close_all() -> None:
            for conn in list(self._open):
                conn.close()
            for conn in list(self._open):
                await conn.wait_closed()

        asyncio.run_coroutine_threadsafe(close_all(), loop).result(10)

    def save(self) -> None:
        """copy running-config startup-config."""
        with self.lock:
            self._startup = copy.deepcopy(self.state)

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self) -> Self:
        """Start listening; returns self once the port is known."""
        if self._thread is not None:
            raise RuntimeError("the emulator is already started")
        self._thread = threading.Thread(target=self._run, name=f"ios-emulator-{id(self):x}", daemon=True)
        self._thread.start()
        if not self._started.wait(15):
            raise RuntimeError("the IOS emulator did not start within 15 s")
        if self._failure is not None:
            self._thread.join(5)
            raise RuntimeError(f"the IOS emulator failed to start: {self._failure!r}") from self._failure
        return self

    def stop(self) -> None:
        """Close every connection and the listener, and end the thread."""
        if self._thread is None:
            return
        if self._loop is not None and self._loop.is_running():
            self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(15)
        self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)
        try:
            try:
                loop.run_until_complete(self._listen())
            except BaseException as exc:  # noqa: BLE001 - handed to start() in the test's thread
                self._failure = exc
                return
            finally:
                self._started.set()
            loop.run_forever()
        finally:
            loop.run_until_complete(self._shutdown())
            loop.run_until_complete(loop.shutdown_asyncgens())
            asyncio.set_event_loop(None)
            loop.close()

    async def _listen(self) -> None:
        self._server = await asyncssh.create_server(
            lambda: _Server(self), "127.0.0.1", 0,
            server_host_keys=[str(self.host_key.private_path)],
            process_factory=self._session,
            x509_trusted_certs=None,
            **self._server_options,
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def _shutdown(self) -> None:
        if self._server is not None:
            self._server.close()
        for conn in list(self._open):
            conn.close()
        for conn in list(self._open):
            await conn.wait_closed()
        if self._server is not None:
            await self._server.wait_closed()
        me = asyncio.current_task()
        for _ in range(10):
            tasks = [task for task in asyncio.all_tasks() if task is not me]
            if not tasks:
                break
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    def _connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
        with self.lock:
            self.connections += 1
            self._open.add(conn)

    def _connection_lost(self, conn: asyncssh.SSHServerConnection) -> None:
        with self.lock:
            self._open.discard(conn)

    # -- sessions -------------------------------------------------------------------------------

    async def _session(self, process: asyncssh.SSHServerProcess[str]) -> None:
        record: list[str] = []
        with self.lock:
            self._sessions.append(record)
        try:
            if process.command is not None:
                await self._exec(process, record)
            else:
                await self._shell(process, record)
        except (asyncssh.Error, OSError, ConnectionError):
            pass  # the client went away; what it sent is recorded
        finally:
            if not process.is_closing():
                process.close()

    async def _exec(self, process: asyncssh.SSHServerProcess[str], record: list[str]) -> None:
        line = (process.command or "").strip()
        with self.lock:
            record.append(line)

        async def no_answer(prompt: str, echo: bool) -> str:
            process.stdout.write(prompt)
            return ""

        cli = _Cli(self, privileged=True, ask=no_answer)
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        output, refused = await cli.execute(line)
        process.stdout.write(output)
        process.exit(1 if refused else 0)

    async def _shell(self, process: asyncssh.SSHServerProcess[str], record: list[str]) -> None:
        async def read_line() -> str | None:
            while True:
                try:
                    line = await process.stdin.readline()
                except (asyncssh.TerminalSizeChanged, asyncssh.BreakReceived, asyncssh.SignalReceived):
                    continue
                if not line:
                    return None
                line = line.rstrip("\r\n")
                with self.lock:
                    record.append(line)
                return line

        # With a pty the channel is asyncssh's line editor, which can stop echoing (for a password).
        editor: Any = process.channel if process.get_terminal_type() is not None else None

        async def ask(prompt: str, echo: bool) -> str:
            process.stdout.write(prompt)
            if not echo and editor is not None:
                editor.set_echo(False)
            try:
                answer = await read_line()
            finally:
                if not echo and editor is not None:
                    editor.set_echo(True)
            return answer or ""

        cli = _Cli(self, privileged=False, ask=ask)
        process.stdout.write("\n")
        while not cli.closed:
            process.stdout.write(cli.prompt())
            line = await read_line()
            if line is None:
                break
            if self.delay_s:
                await asyncio.sleep(self.delay_s)
            output, _refused = await cli.execute(line)
            process.stdout.write(output)
        process.exit(0)

