"""systemd integration without libsystemd: notifications (sd_notify) and the watchdog's interval."""

from __future__ import annotations

import logging
import os
import socket

log = logging.getLogger(__name__)


def sd_notify(state: str) -> None:
    """Tell systemd about our state when it is listening (Type=notify); otherwise do nothing."""
    addr = os.environ.get("NOTIFY_SOCKET")
    if not addr:
        return
    if addr.startswith("@"):
        addr = "\0" + addr[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
            s.sendto(state.encode(), addr)
    except OSError as exc:
        log.debug("sd_notify failed: %s", exc)


def watchdog_interval_s() -> float | None:
    """How often to send WATCHDOG=1 (half of WatchdogSec=), or None when no watchdog watches us.

    Like sd_watchdog_enabled(3): WATCHDOG_USEC set and positive, and WATCHDOG_PID, when set, ours
    (a child we start inherits the environment but must not ping for us).
    """
    usec = os.environ.get("WATCHDOG_USEC", "")
    pid = os.environ.get("WATCHDOG_PID", "")
    try:
        interval = int(usec)
        if pid and int(pid) != os.getpid():
            return None
    except ValueError:
        return None
    return interval / 2e6 if interval > 0 else None
