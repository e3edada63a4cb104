"""Followed files in the daemon (issue 9): resumed after a crash from the offset of the last stored
flush, and bounded in memory whatever a writer appends.

The crash and memory tests run the real daemon (`watchstander run`) as a process; the others drive
a FollowedFile on a loop with a real store.
"""

from __future__ import annotations

import asyncio
import grp
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from watchstander.agent.clock import Clock, system_clock
from watchstander.agent.daemon.follow import FollowedFile
from watchstander.agent.daemon.sources import Checkpointing, Sink
from watchstander.agent.store.engine import Store, connect
from watchstander.agent.store.incidents import IncidentStore
from watchstander.agent.store.offsets import OffsetStore
from watchstander.agent.store.schema import open_store
from watchstander.connectors.events import Event

pytestmark = pytest.mark.integration


def failed_logins(src: str, n: int, minute: int) -> bytes:
    """`n` sshd failed-password lines from `src`, one a second from 11:`minute`:00 on Nov 27."""
    return b"".join(f"Nov 27 11:{minute:02d}:{i:02d} bastion sshd[{100 + i}]: Failed password for root from "
                    f"{src} port {40000 + i} ssh2\n".encode() for i in range(n))


def wait_until(predicate: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def read_position(pid: int, path: Path) -> int | None:
    """Where the process `pid` has read `path` up to (its open descriptor's offset), or None."""
    fd_dir = Path(f"/proc/{pid}/fd")
    try:
        for fd in fd_dir.iterdir():
            try:
                if os.readlink(fd) == str(path):
                    for line in Path(f"/proc/{pid}/fdinfo/{fd.name}").read_text().splitlines():
                        if line.startswith("pos:"):
                            return int(line.split()[1])
            except OSError:
                continue
    except OSError:
        return None
    return None


class DaemonProcess:
    """`watchstander run --config CFG` as a child process, its log in a file."""

    def __init__(self, tmp: Path, files: list[Path], flush_s: float, extra: str = "") -> None:
        self.tmp = tmp
        self.sock_dir = tempfile.mkdtemp(dir="/tmp")  # AF_UNIX paths must stay short
        self.cfg = tmp / "w.toml"
        self.url = f"sqlite:///{tmp / 'w.db'}"
        self.files = files
        self.flush_s = flush_s
        self.extra = extra
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = tmp / "daemon.log"

    def start(self) -> int:
        listed = ", ".join(f'"{p}"' for p in self.files)
        self.cfg.write_text(
            f'[store]\nurl = "{self.url}"\n[sources]\nsyslog_udp = []\nfiles = [{listed}]\nflush_s = {self.flush_s}\n'
            f'{self.extra}\n[control]\nsocket = "{self.sock_dir}/c.sock"\n'
            f'socket_group = "{grp.getgrgid(os.getgid()).gr_name}"\n', encoding="utf-8")
        exe = Path(sys.executable).with_name("watchstander")
        cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "watchstander.agent.cli.main"]
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen([*cmd, "run", "--config", str(self.cfg)], stdout=subprocess.DEVNULL,
                                         stderr=log, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        mark = self.log.stat().st_size
        wait_until(lambda: b"listening:" in self.log.read_bytes()[mark:] or self.proc.poll() is not None,  # type: ignore[union-attr]
                   "the daemon to start")
        assert self.proc.poll() is None, self.log.read_text(errors="replace")[-3000:]
        return self.proc.pid

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=20)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            assert self.proc.wait(timeout=30) == 0, self.log.read_text(errors="replace")[-3000:]
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()

    def cleanup(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        shutil.rmtree(self.sock_dir, ignore_errors=True)


@pytest.fixture
def daemon_process(tmp_path: Path) -> Iterator[Callable[..., DaemonProcess]]:
    made: list[DaemonProcess] = []

    def make(files: list[Path], flush_s: float, extra: str = "") -> DaemonProcess:
        d = DaemonProcess(tmp_path, files, flush_s, extra)
        made.append(d)
        return d

    yield make
    for d in made:
        d.cleanup()


def stored_offset(url: str, path: Path) -> int | None:
    store = connect(url)
    try:
        pos = OffsetStore(store, system_clock).get(str(path))
    finally:
        store.close()
    return None if pos is None else pos.offset


def test_kill_9_between_flushes_loses_no_line_and_counts_none_twice(
        tmp_path: Path, daemon_process: Callable[..., DaemonProcess]) -> None:
    auth = tmp_path / "auth.log"
    auth.write_bytes(failed_logins("198.51.100.7", 12, 0))  # history before the first start: not read
    history = auth.stat().st_size
    n, m = 12, 15
    daemon = daemon_process([auth], flush_s=4)
    pid = daemon.start()
    wait_until(lambda: read_position(pid, auth) == history, "the follower to open the file at its end")

    with open(auth, "ab") as fh:
        fh.write(failed_logins("192.0.2.50", n, 1))
    after_n = auth.stat().st_size
    wait_until(lambda: stored_offset(daemon.url, auth) == after_n, "a flush to store the offset after N lines")

    with open(auth, "ab") as fh:  # read by the detectors, never flushed: the crash window
        fh.write(failed_logins("192.0.2.50", m, 5))
    after_m = auth.stat().st_size
    wait_until(lambda: read_position(pid, auth) == after_m, "the follower to read the M lines")
    daemon.kill()
    assert stored_offset(daemon.url, auth) == after_n, "a flush came before the kill: the crash window was missed"

    daemon.flush_s = 0.3
    daemon.start()
    wait_until(lambda: stored_offset(daemon.url, auth) == after_m, "the restarted daemon to store the M lines")
    daemon.stop()

    assert f"resuming at byte {after_n}".encode() in daemon.log.read_bytes()
    store = open_store(daemon.url)
    try:
        incidents = IncidentStore(store, system_clock).list()
    finally:
        store.close()
    attackers = {a for i in incidents for a in i.entities().get("attacker", [])}
    assert "198.51.100.7" not in attackers  # the first start began at the end of the file
    counts = sorted(f.count for i in incidents if "192.0.2.50" in i.entities().get("attacker", [])
                    for f in i.findings.values() if f.detector == "bruteforce")
    # One finding per run (the restarted detector opens its own window): each line counted once.
    assert counts == [n, m]


def peak_rss_mb(pid: int) -> float:
    """The process's peak resident set (VmHWM), in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM in /proc status")


def test_a_200_mb_line_without_newline_keeps_the_daemon_small_and_is_skipped(
        tmp_path: Path, daemon_process: Callable[..., DaemonProcess]) -> None:
    auth = tmp_path / "auth.log"
    auth.write_bytes(b"")
    daemon = daemon_process([auth], flush_s=0.3)
    pid = daemon.start()
    wait_until(lambda: read_position(pid, auth) == 0, "the follower to open the file")
    before = peak_rss_mb(pid)
    block = b"A" * (4 * 1024 * 1024)
    with open(auth, "ab") as fh:
        fh.writelines(block for _ in range(50))
        fh.write(b"\n" + failed_logins("192.0.2.60", 12, 0))
    size = auth.stat().st_size
    wait_until(lambda: stored_offset(daemon.url, auth) == size, "the lines after the long one to be stored",
               timeout=60)
    peak = peak_rss_mb(pid)
    daemon.stop()
    # Growth, not the absolute size: what the daemon imports (console, detectors) is not what is bounded here.
    assert peak - before < 48, f"daemon peaked at {peak:.0f} MiB (started at {before:.0f} MiB)"
    log = daemon.log.read_text(errors="replace")
    assert "skipped record (overlong line dropped, 1 so far)" in log
    store = open_store(daemon.url)
    try:
        incidents = IncidentStore(store, system_clock).list()
    finally:
        store.close()
    counts = [f.count for i in incidents for f in i.findings.values() if f.detector == "bruteforce"]
    assert counts == [12]


class Collect:
    """A sink that keeps every event fed, on the loop thread like the daemon's."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    def sink(self) -> Sink:
        return Sink(asyncio.get_running_loop(), self.events.extend)


def _store(tmp_path: Path) -> Store:
    return open_store(f"sqlite:///{tmp_path / 'w.db'}")


async def _settle(follower: FollowedFile, path: Path) -> None:
    deadline = time.monotonic() + 10
    def caught_up() -> bool:
        fh = follower._fh
        st = path.stat()
        return fh is not None and os.fstat(fh.fileno()).st_ino == st.st_ino and follower._pos == st.st_size

    while not caught_up():
        assert time.monotonic() < deadline, "follower did not catch up"
        await asyncio.sleep(0.02)


def _run_once(path: Path, tmp_path: Path, clock: Clock, append: bytes = b"", flush: bool = True,
              store: Store | None = None) -> tuple[list[Event], FollowedFile]:
    """Start a follower with the store's offsets (a store opened afresh: a new process), append,
    checkpoint like a flush, stop."""
    seen = Collect()
    own = store is None
    store = _store(tmp_path) if store is None else store
    follower = FollowedFile(path, clock, interval=0.02, offsets=OffsetStore(store, clock))

    async def scenario() -> None:
        await follower.start(seen.sink())
        await _settle(follower, path)
        if append:
            with open(path, "ab") as fh:
                fh.write(append)
            await _settle(follower, path)
        if flush:
            follower.mark()
            follower.flushed()
        await follower.stop()

    try:
        asyncio.run(scenario())
    finally:
        if own:
            store.close()
    return seen.events, follower


def test_follower_is_a_checkpointing_source(tmp_path: Path, clock: Clock) -> None:
    assert isinstance(FollowedFile(tmp_path / "x.log", clock), Checkpointing)


def test_restart_resumes_the_same_file_and_rereads_a_replaced_one(tmp_path: Path, clock: Clock) -> None:
    log = tmp_path / "auth.log"
    log.write_bytes(failed_logins("198.51.100.1", 3, 0))
    events, _ = _run_once(log, tmp_path, clock, append=failed_logins("192.0.2.1", 4, 1))
    assert [e.src for e in events] == ["192.0.2.1"] * 4  # first start: from the end

    with open(log, "ab") as fh:  # written while no daemon ran
        fh.write(failed_logins("192.0.2.2", 5, 2))
    events, follower = _run_once(log, tmp_path, clock)
    assert [e.src for e in events] == ["192.0.2.2"] * 5
    assert follower.counters["resumed"] == 1
    assert events[0].ref is not None and events[0].ref.endswith(":5")  # numbering carries on from the stored line

    log.rename(tmp_path / "auth.log.1")  # rotated while down: the new file is all unread
    log.write_bytes(failed_logins("192.0.2.3", 2, 3))
    events, follower = _run_once(log, tmp_path, clock)
    assert [e.src for e in events] == ["192.0.2.3"] * 2
    assert follower.counters["resumed"] == 0

    # Same inode, same size or more, other first bytes: replaced in place (copytruncate + rewrite).
    log.write_bytes(failed_logins("192.0.2.4", 3, 4))
    events, _ = _run_once(log, tmp_path, clock)
    assert [e.src for e in events] == ["192.0.2.4"] * 3


def test_a_reload_takes_over_where_the_stopped_follower_was_not_where_the_store_is(
        tmp_path: Path, clock: Clock) -> None:
    log = tmp_path / "auth.log"
    log.write_bytes(b"")
    store = _store(tmp_path)
    try:
        _run_once(log, tmp_path, clock, store=store)  # stored: the end of the empty file
        # Read, then stopped by a reload whose flush failed: nothing stored, the lines are in the detectors.
        events, _ = _run_once(log, tmp_path, clock, append=failed_logins("192.0.2.1", 3, 0), flush=False,
                              store=store)
        assert len(events) == 3
        events, follower = _run_once(log, tmp_path, clock, append=failed_logins("192.0.2.2", 2, 1), store=store)
        assert [e.src for e in events] == ["192.0.2.2"] * 2
        assert follower.counters["resumed"] == 1
    finally:
        store.close()


def test_rotation_and_truncation_while_following(tmp_path: Path, clock: Clock) -> None:
    log = tmp_path / "auth.log"
    log.write_bytes(b"")
    seen = Collect()
    follower = FollowedFile(log, clock, interval=0.02)

    async def scenario() -> None:
        await follower.start(seen.sink())
        await _settle(follower, log)
        with open(log, "ab") as fh:
            fh.write(failed_logins("192.0.2.1", 2, 0))
        await _settle(follower, log)
        log.rename(tmp_path / "auth.log.1")
        with open(tmp_path / "auth.log.1", "ab") as fh:  # the writer still has the old file open
            fh.write(failed_logins("192.0.2.2", 2, 1))
        log.write_bytes(failed_logins("192.0.2.3", 2, 2))
        await _settle(follower, log)
        log.write_bytes(failed_logins("192.0.2.4", 1, 3))  # truncated and rewritten, shorter
        await _settle(follower, log)
        await follower.stop()

    asyncio.run(scenario())
    assert [e.src for e in seen.events] == ["192.0.2.1"] * 2 + ["192.0.2.2"] * 2 + ["192.0.2.3"] * 2 + ["192.0.2.4"]
    assert follower.counters["rotations"] == 2


def test_offset_store_keeps_one_row_per_path_with_64_bit_inodes(tmp_path: Path, clock: Clock) -> None:
    from watchstander.agent.store.offsets import FileOffset

    store = _store(tmp_path)
    try:
        offsets = OffsetStore(store, clock)
        assert offsets.get("/var/log/auth.log") is None
        big = 2**64 - 1
        offsets.save(FileOffset("/var/log/auth.log", big, big, 10, 1, 10, "a" * 64))
        offsets.save(FileOffset("/var/log/auth.log", big, big - 1, 2**40, 7, 4096, "b" * 64))
        assert offsets.get("/var/log/auth.log") == FileOffset("/var/log/auth.log", big, big - 1, 2**40, 7, 4096,
                                                             "b" * 64)
    finally:
        store.close()
