"""Syslog over RELP (rsyslog's omrelp): every message acknowledged once the daemon holds it.

A RELP sender keeps each message until our `200 OK` for its transaction number arrives, and sends
again whatever it holds when a connection breaks or the daemon restarts. Plain TCP cannot do that:
what sat in a socket buffer when the connection broke is gone. What is acknowledged here has been
handed to the detectors, so the window a crash can lose is the same as for every network source
(docs/daemon.md, "What a crash can lose"), and nothing is lost in transit.

The listener is the stream listener of the TCP sources (connection caps, per-source caps, idle and
slow-sender timeouts), with a RELP session on each connection instead of syslog framing.
"""

from __future__ import annotations

import logging
import time
from importlib import metadata

from watchstander.connectors.relp import RelpSession

from ..app.wiring import App
from ..detection.pipeline import registered_syslog_needs
from .sources import Source
from .syslog import CENSUS, _Connection, _StreamListener


def _software() -> str:
    try:
        return f"watchstander,{metadata.version('watchstander')}"
    except metadata.PackageNotFoundError:
        return "watchstander"


class _RelpConnection(_Connection):
    """One RELP session: frames in; messages delivered, then acknowledged by their transaction number."""

    def __init__(self, listener: _StreamListener, peer: str, now: float) -> None:
        super().__init__(listener, peer, now)
        self.session = RelpSession(listener.max_message, software=_software())

    def data_received(self, data: bytes) -> None:
        if self.closed:
            return
        now = time.monotonic()
        self.last = now
        try:
            CENSUS.by_activity.move_to_end(self)
        except KeyError:
            pass  # already forgotten: it is being closed
        exchange = self.session.feed(data)
        if not self.session.pending:
            self.frame_started = None
        elif exchange.messages or self.frame_started is None:
            self.frame_started = now
        if exchange.messages:
            self._deliver(exchange.messages)  # held by the detectors before the sender may forget them
        if exchange.reply and self.transport is not None:
            self.transport.write(exchange.reply)
        if exchange.error is not None:
            self.listener.counters["framing_errors"] += 1
            self.listener.limiter.log(logging.WARNING, "relp", "%s: %s from %s; session closed",
                                      self.listener.name, exchange.error, self.peer)
        if exchange.closed:
            self.listener.counters["sessions_closed"] += 1
            self.closed = True
            if self.transport is not None:
                self.transport.close()  # after the replies above are written
            self.listener.forget(self)

    def eof_received(self) -> bool | None:
        # The sender went away mid-session: whatever it sent unacknowledged, it sends again.
        if self.session.pending:
            self.listener.counters["incomplete_frames"] += 1
        return False


class SyslogRelp(_StreamListener):
    """Syslog over RELP on one HOST:PORT (plain TCP; for TLS, use syslog over TLS or a tunnel)."""

    kind = "syslog-relp"
    connection_class = _RelpConnection


def relp_sources(app: App) -> list[Source]:
    """One RELP listener per [sources] syslog_relp entry."""
    src = app.config.sources
    needs = registered_syslog_needs()
    # The connection caps and timeouts are [sources.tcp]'s: one census of stream senders.
    return [SyslogRelp(hp, app.clock, src.max_message, src.tcp, needs) for hp in src.syslog_relp]
