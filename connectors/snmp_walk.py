"""Repeated SNMP reads of one device (polling): GET and a GETBULK walk of several columns at once.

`connectors.snmp` builds an SnmpEngine per call so that calls share nothing; that costs 0.1 to
0.5 s of CPU each (the MIB load), which a poller paying it every interval for every device cannot
afford. `SnmpSession` keeps one engine for one target on one event loop until `close()`.
`snmp_walk` is the one-shot form. Errors are translated as `connectors.snmp` does (DeviceTimeout,
AuthenticationFailed, DeviceRefused, DeviceProtocolError, DeviceUnreachable); the privacy-key
probe of `snmp_get` is not repeated here: a poller that gets no answer reports a timeout.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

from pysnmp.error import PySnmpError
from pysnmp.hlapi.v3arch.asyncio import ContextData, ObjectIdentity, ObjectType, SnmpEngine, bulk_cmd, get_cmd
from pysnmp.proto import errind, rfc1905

from .errors import DeviceProtocolError, DeviceRefused, DeviceUnreachable
from .snmp import (
    SnmpTarget,
    SnmpVarBind,
    _auth_data,
    _checked_oid,
    _indication_error,
    _no_answer,
    _transport,
    _varbind,
)

log = logging.getLogger(__name__)

MAX_ROWS = 10_000  # per column: a device answering forever is a protocol error, not a table
_END = (rfc1905.NoSuchObject, rfc1905.NoSuchInstance, rfc1905.EndOfMibView)


class SnmpSession:
    """One SnmpEngine for many reads of one target, on the event loop that first uses it."""

    def __init__(self, target: SnmpTarget) -> None:
        self.target = target
        self._engine: SnmpEngine | None = None

    async def get(self, oids: Sequence[str], *, timeout_s: float) -> list[SnmpVarBind]:
        """Read numeric `oids` in one GET; a missing object is DeviceRefused naming its OID."""
        if not oids:
            raise ValueError("get needs at least one OID")
        names = [_checked_oid(oid) for oid in oids]
        answer = await self._bounded(self._get(names, timeout_s), timeout_s, "GET")
        for vb in answer:
            if vb[1] is None:
                raise DeviceRefused(self.target.name, f"no such object {vb[0]}")
        return [_varbind(self.target, oid, value) for oid, value in answer]

    async def walk(self, roots: Sequence[str], *, timeout_s: float, max_repetitions: int = 25) -> list[SnmpVarBind]:
        """Every object under each numeric OID in `roots`, walked side by side with GETBULK; column by column."""
        if not roots:
            raise ValueError("walk needs at least one OID")
        names = [_checked_oid(oid) for oid in roots]
        columns = await self._bounded(self._walk(names, timeout_s, max_repetitions), timeout_s, "walk")
        return [vb for root in names for vb in columns[root]]

    def close(self) -> None:
        """Release the engine's socket and timers."""
        engine, self._engine = self._engine, None
        if engine is not None:
            engine.close_dispatcher()

    async def _bounded(self, work: Any, timeout_s: float, what: str) -> Any:
        if timeout_s <= 0:
            raise ValueError("timeout_s must be positive")
        try:
            return await asyncio.wait_for(work, timeout_s)
        except TimeoutError as exc:
            raise _no_answer(self.target, timeout_s) from exc
        except PySnmpError as exc:
            raise DeviceProtocolError(self.target.name, f"SNMP {what} on {self.target.endpoint} failed: {exc}") from exc
        except OSError as exc:
            raise DeviceUnreachable(self.target.name,
                                    f"cannot reach {self.target.endpoint}: {exc.strerror or exc}") from exc

    async def _engine_now(self) -> SnmpEngine:
        if self._engine is None:
            self._engine = await asyncio.to_thread(SnmpEngine)
        return self._engine

    async def _request(self, timeout_s: float) -> tuple[SnmpEngine, Any, Any]:
        engine = await self._engine_now()
        transport = await _transport(self.target, timeout_s / (self.target.retries + 1), self.target.retries)
        return engine, _auth_data(self.target), transport

    def _check(self, indication: Any, status: Any, what: str, timeout_s: float) -> None:
        if isinstance(indication, errind.RequestTimedOut):
            raise _no_answer(self.target, timeout_s)
        if indication is not None:
            raise _indication_error(self.target, indication)
        if status is not None and int(status) != 0:
            raise DeviceRefused(self.target.name, f"{what} refused by {self.target.endpoint}: {status.prettyPrint()}")

    async def _get(self, oids: list[str], timeout_s: float) -> list[tuple[str, Any]]:
        engine, auth, transport = await self._request(timeout_s)
        indication, status, _index, answer = await get_cmd(
            engine, auth, transport, ContextData(), *(ObjectType(ObjectIdentity(o)) for o in oids), lookupMib=False)
        self._check(indication, status, "GET", timeout_s)
        return [(str(name), None if isinstance(value, _END) else value) for name, value in answer]

    async def _walk(self, roots: list[str], timeout_s: float, repetitions: int) -> dict[str, list[SnmpVarBind]]:
        columns: dict[str, list[SnmpVarBind]] = {root: [] for root in roots}
        cursors = {root: root for root in roots}
        pending = list(roots)
        while pending:
            engine, auth, transport = await self._request(timeout_s)
            indication, status, _index, answer = await bulk_cmd(
                engine, auth, transport, ContextData(), 0, repetitions,
                *(ObjectType(ObjectIdentity(cursors[root])) for root in pending), lookupMib=False)
            self._check(indication, status, f"GETBULK {pending[0]}", timeout_s)
            done: set[str] = set()
            advanced: set[str] = set()
            for i, (name, value) in enumerate(answer):  # row-major: one varbind per pending column per repetition
                root = pending[i % len(pending)]
                if root in done:
                    continue
                oid = str(name)
                if isinstance(value, _END) or not oid.startswith(root + "."):
                    done.add(root)
                    continue
                columns[root].append(_varbind(self.target, oid, value))
                cursors[root] = oid
                advanced.add(root)
                if len(columns[root]) > MAX_ROWS:
                    raise DeviceProtocolError(self.target.name,
                                              f"walk {root} on {self.target.endpoint}: over {MAX_ROWS} rows")
            # A column the answer did not move forward would be asked again forever.
            pending = [root for root in pending if root not in done and root in advanced]
        return columns


async def snmp_walk(target: SnmpTarget, roots: Sequence[str], *, timeout_s: float) -> list[SnmpVarBind]:
    """Every object under each numeric OID in `roots` (an empty subtree gives nothing), with its own engine."""
    session = SnmpSession(target)
    try:
        return await session.walk(roots, timeout_s=timeout_s)
    finally:
        session.close()
        await asyncio.sleep(0)  # let the dispatcher's cancelled timer task finish on this loop

