"""The daemon's control socket: an asyncio Unix stream server answering one JSON request per line.

Every connection is identified once, from SO_PEERCRED, before any request is read; the caller
never says who it is. A caller without a role is refused there and then; the others are admitted
within per-uid and per-role limits, so that a flood of connections cannot take the slots of the
people who decide. Each method declares the role it needs in the registry, and the server
checks it before the handler runs. Handlers are synchronous (they use the store) and run one at a
time in a worker thread, so two operators deciding on the same suggestion are serialised here as
well as in the database, and the event loop never waits on SQLite.
"""

from __future__ import annotations

import asyncio
import grp
import logging
import os
import socket
import stat
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..clock import Clock
from ..config.control import ControlConfig
from ..errors import ConfigError, Exit, WatchstanderError
from .errors import ControlError, MessageTooLarge, NoRole, PermissionDenied, UnknownMethod, error_code
from .identity import Identity, Resolver, make_resolver, peer_credentials
from .protocol import PROTOCOL_VERSION, RequestId, decode_request, failure, success
from .registry import MethodRegistry

log = logging.getLogger(__name__)

SOCKET_MODE = 0o660
DIRECTORY_MODE = 0o750
# Admission, decided after the caller is identified: a caller without a role never takes a slot,
# one uid holds at most MAX_PER_UID connections, and callers who decide (approver, admin) keep
# RESERVED_FOR_DECIDERS of the MAX_CONNECTIONS slots that nobody else may take.
MAX_CONNECTIONS = 64
MAX_PER_UID = 8
RESERVED_FOR_DECIDERS = 16
LINGER_S = 0.2


def register_builtin_methods(registry: MethodRegistry, clock: Clock) -> None:
    """`ping` and `whoami`, which every role may call."""

    def ping(identity: Identity, params: dict[str, Any]) -> dict[str, Any]:
        allowed = [m.name for m in registry.methods.values() if identity.has(m.role)]
        return {"pong": True, "protocol": PROTOCOL_VERSION, "time": clock().isoformat(),
                "pid": os.getpid(), "methods": sorted(allowed)}

    def whoami(identity: Identity, params: dict[str, Any]) -> dict[str, Any]:
        return identity.as_dict()

    registry.register_method("ping", "viewer", ping)  # every role includes viewer
    registry.register_method("whoami", "viewer", whoami)


@dataclass
class _Bound:
    path: Path
    inode: int


# Loop turns an accepted connection takes to reach its handler (accept, transport, connection_made,
# the handler's first step), with room to spare.
ACCEPT_TURNS = 10


class ControlServer:
    """Serves the registry's methods on the configured Unix socket to authenticated local users."""

    def __init__(self, config: ControlConfig, handlers: MethodRegistry, clock: Clock, *,
                 resolver: Resolver | None = None) -> None:
        self.config = config
        self.registry = handlers
        self.clock = clock
        self._resolve = resolver or make_resolver(config.roles)
        if "ping" not in handlers and "whoami" not in handlers:
            register_builtin_methods(handlers, clock)
        self._server: asyncio.Server | None = None
        self._bound: _Bound | None = None
        self._clients: set[asyncio.Task[Any]] = set()
        self._admitted: dict[int, int] = {}  # uid -> open admitted connections
        self._others = 0  # admitted connections of callers who are not deciders
        self._closing = False
        self._executor: ThreadPoolExecutor | None = None

    @property
    def path(self) -> Path:
        """The socket's path."""
        return self.config.socket

    async def start(self) -> None:
        """Create the socket (0660, the configured group) in its directory (0750) and start serving."""
        path = self.config.socket
        gid = self._group_id()
        _prepare_directory(path.parent, gid)
        _clear_stale_socket(path)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.bind(str(path))
            # Permissions are set between bind and listen: until listen() nobody can connect,
            # so there is no moment at which the socket is reachable with the umask's mode.
            os.chmod(path, SOCKET_MODE)
            # Only when it differs: a service already running with that group (the unit's Group=)
            # needs no chown, so its unit can forbid the call (SystemCallFilter=~@privileged).
            if gid is not None and os.stat(path).st_gid != gid:
                os.chown(path, -1, gid)
            self._bound = _Bound(path, os.stat(path).st_ino)
        except OSError as exc:
            sock.close()
            _unlink_quietly(path)
            raise ControlError(f"cannot create control socket {path}: {exc.strerror or exc}") from exc
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="control")
        self._server = await asyncio.start_unix_server(self._serve_client, sock=sock,
                                                       limit=self.config.max_message)
        log.info("control socket listening on %s (group %s, %d methods)", path,
                 self.config.socket_group or "unchanged", len(self.registry.methods))

    async def stop(self) -> None:
        """Stop accepting, end open connections, remove the socket if it is still ours."""
        if self._server is not None:
            self._closing = True
            # Stop accepting first, then let connections already being accepted reach their handler
            # (which sees _closing and hangs up), and only then close the server: closing it while
            # an accept is in flight makes Python 3.11's asyncio fail that accept and leak its socket.
            loop = asyncio.get_running_loop()
            for sock in self._server.sockets:
                try:
                    loop.remove_reader(sock.fileno())
                except (NotImplementedError, ValueError):
                    pass
            for _ in range(ACCEPT_TURNS):
                await asyncio.sleep(0)
            self._server.close()
            for task in list(self._clients):
                task.cancel()
            if self._clients:
                await asyncio.gather(*self._clients, return_exceptions=True)
            await self._server.wait_closed()
            await asyncio.sleep(0)  # closed transports release their sockets on the next turn
            self._server = None
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None
        if self._bound is not None:
            try:
                # Another daemon may have replaced the socket since; only remove the one we made.
                if os.stat(self._bound.path).st_ino == self._bound.inode:
                    os.unlink(self._bound.path)
            except FileNotFoundError:
                pass
            self._bound = None

    def _group_id(self) -> int | None:
        name = self.config.socket_group
        if name is None:
            return None
        try:
            return grp.getgrnam(name).gr_gid
        except KeyError:
            raise ConfigError(f"control socket group {name!r} does not exist",
                              [("control.socket_group", f"no group named {name!r} on this host")]) from None

    async def _serve_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._clients.add(task)
        try:
            if self._closing:
                return
            identity = self._identify(writer)
            if identity is None:
                writer.write(failure(None, "internal", "cannot identify the caller; see the daemon's log", 1))
                await writer.drain()
                return
            if not identity.roles:
                err = _no_role(identity)
                log.warning("control: %s refused: %s", identity.principal, error_code(err))
                await self._turn_away(reader, writer, failure(None, err.code, str(err), err.exit_status))
                return
            refusal = self._admit(identity)
            if refusal is not None:
                log.info("control: %s turned away: %s", identity.principal, refusal)
                await self._turn_away(reader, writer, failure(None, "busy", refusal, Exit.UNAVAILABLE))
                return
            try:
                await self._requests(identity, reader, writer)
            finally:
                self._release(identity)
        except (ConnectionError, OSError) as exc:
            log.debug("control connection ended: %s", exc)
        finally:
            writer.close()
            if task is not None:
                self._clients.discard(task)

    async def _turn_away(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, answer: bytes) -> None:
        """Answer once and hang up without reading a request."""
        writer.write(answer)
        await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
        # A request already sent and left unread would make the close a reset, which can reach the
        # peer before the answer does; a short read lets the answer arrive. It holds no slot.
        try:
            await asyncio.wait_for(reader.read(self.config.max_message), LINGER_S)
        except TimeoutError:
            pass

    def _admit(self, identity: Identity) -> str | None:
        """Count the connection in; the reason it is turned away otherwise."""
        held = self._admitted.get(identity.uid, 0)
        if held >= MAX_PER_UID:
            return f"{identity.principal} already has {held} control connections open; close one and try again"
        total = sum(self._admitted.values())
        decider = _decides(identity)
        limit = MAX_CONNECTIONS if decider else MAX_CONNECTIONS - RESERVED_FOR_DECIDERS
        if (total if decider else self._others) >= limit:
            return "too many control connections; try again"
        self._admitted[identity.uid] = held + 1
        if not decider:
            self._others += 1
        return None

    def _release(self, identity: Identity) -> None:
        held = self._admitted.get(identity.uid, 0) - 1
        if held > 0:
            self._admitted[identity.uid] = held
        else:
            self._admitted.pop(identity.uid, None)
        if not _decides(identity):
            self._others -= 1

    def _identify(self, writer: asyncio.StreamWriter) -> Identity | None:
        sock = writer.get_extra_info("socket")
        try:
            return self._resolve(peer_credentials(sock))
        except Exception:  # the barrier around the account database (NSS may reach LDAP)
            log.exception("control: cannot resolve the peer's credentials")
            return None

    async def _requests(self, identity: Identity, reader: asyncio.StreamReader,
                        writer: asyncio.StreamWriter) -> None:
        while True:
            try:
                line = await asyncio.wait_for(reader.readuntil(b"\n"), self.config.timeout_s)
            except asyncio.IncompleteReadError as exc:
                line = exc.partial  # the last request may come without its newline
                if not line.strip():
                    return
            except asyncio.LimitOverrunError as exc:
                err = MessageTooLarge(f"request longer than {self.config.max_message} bytes")
                log.warning("control: %s sent an oversized request", identity.principal)
                writer.write(failure(None, err.code, str(err), err.exit_status))
                await writer.drain()
                # Skip to the end of the overlong line so that the next request is read whole; hang
                # up if it goes on and on (closing with unread data would reset the connection and
                # could swallow the answer above, so reading it is also the polite way out).
                if not await asyncio.wait_for(_skip_line(reader, exc.consumed, 64 * self.config.max_message),
                                              self.config.timeout_s):
                    return
                continue
            except TimeoutError:
                return
            if not line.strip():
                continue
            writer.write(await self._dispatch(identity, line))
            await writer.drain()

    async def _dispatch(self, identity: Identity, line: bytes) -> bytes:
        rid: RequestId = None
        name = "?"
        try:
            rid, name, params = decode_request(line)
            if not identity.roles:  # admission refuses them; kept so that no path can skip the check
                raise _no_role(identity)
            method = self.registry.get(name)
            if method is None:
                raise UnknownMethod(f"no control method {name!r}")
            if not identity.has(method.role):
                raise PermissionDenied(f"{name} needs the {method.role} role; {identity.principal} has "
                                       f"{', '.join(sorted(identity.roles))}")
            assert self._executor is not None
            loop = asyncio.get_running_loop()
            result = await loop.run_in_executor(self._executor, method.handler, identity, params)
            if not isinstance(result, dict):
                raise TypeError(f"control method {name} returned {type(result).__name__}, not a dict")
            log.info("control: %s %s ok", identity.principal, name)
            return success(rid, result)
        except WatchstanderError as exc:
            level = logging.WARNING if isinstance(exc, PermissionDenied) else logging.INFO
            log.log(level, "control: %s %s refused: %s (%s)", identity.principal, name, error_code(exc), exc)
            return failure(rid, error_code(exc), str(exc), exc.exit_status, details(exc))
        except Exception:  # the barrier around a method handler (STYLE rule 2)
            log.exception("control: method %s for %s failed", name, identity.principal)
            return failure(rid, "internal", f"{name} failed inside the daemon; details are in its log", 1)


def _decides(identity: Identity) -> bool:
    """Whether the caller may decide on suggestions (approver, and admin which includes it)."""
    return identity.has("approver")


def _no_role(identity: Identity) -> NoRole:
    return NoRole(f"{identity.username or 'uid ' + str(identity.uid)} has no Watchstander role: none "
                  "of their groups is listed under [control.roles]; ask an administrator")


async def _skip_line(reader: asyncio.StreamReader, pending: int, budget: int) -> bool:
    """Discard the rest of an overlong line; False when the peer closed or the budget ran out."""
    skipped = 0
    while skipped <= budget:
        try:
            await reader.readexactly(pending)
            skipped += pending
            await reader.readuntil(b"\n")
            return True
        except asyncio.LimitOverrunError as exc:
            pending = exc.consumed
        except asyncio.IncompleteReadError:
            return False
    return False


def details(exc: BaseException) -> dict[str, Any]:
    """The public scalar attributes of a project error (suggestion id, state, reason...), for the client."""
    return {k: v for k, v in vars(exc).items()
            if not k.startswith("_") and k not in ("code", "exit_status", "problems")
            and (v is None or isinstance(v, (str, int, float, bool)))}


def _prepare_directory(directory: Path, gid: int | None) -> None:
    if not directory.exists():
        directory.mkdir(mode=DIRECTORY_MODE, parents=True)
        os.chmod(directory, DIRECTORY_MODE)  # mkdir's mode is filtered by the umask
        if gid is not None and os.stat(directory).st_gid != gid:
            os.chown(directory, -1, gid)
        return
    # An existing directory is left as it is (it may be /run/watchstander from systemd, or shared),
    # but one where anybody may replace our socket is refused.
    mode = directory.stat().st_mode
    if mode & stat.S_IWOTH and not mode & stat.S_ISVTX:
        raise ControlError(f"{directory} is world-writable; refusing to put the control socket there")


def _clear_stale_socket(path: Path) -> None:
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(st.st_mode):
        raise ControlError(f"{path} exists and is not a socket; refusing to replace it")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(1.0)
    try:
        probe.connect(str(path))
    except (ConnectionRefusedError, FileNotFoundError):
        log.info("removing stale control socket %s", path)
        _unlink_quietly(path)
        return
    except OSError as exc:
        raise ControlError(f"cannot probe existing control socket {path}: {exc.strerror or exc}") from exc
    finally:
        probe.close()
    raise ControlError(f"another process is already serving the control socket {path}")


def _unlink_quietly(path: Path) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
