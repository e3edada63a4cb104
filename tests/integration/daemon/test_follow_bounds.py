"""Readers hold at most one bounded line in memory (issue 9): a 300 MB line costs neither the EVE
reader nor the DNS-name reader more than a few megabytes, and reading goes on after it."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import pytest

from watchstander.agent.clock import Clock
from watchstander.agent.daemon.follow import FollowedFile
from watchstander.agent.daemon.sources import Sink
from watchstander.connectors.events import Event

pytestmark = pytest.mark.integration

ALERT = json.dumps({"timestamp": "2026-11-27T11:00:00.000000+0000", "event_type": "alert", "src_ip": "203.0.113.9",
                    "dest_ip": "10.0.0.25", "src_port": 1, "dest_port": 80, "proto": "TCP",
                    "alert": {"signature": "ET EXPLOIT test", "signature_id": 9, "category": "x", "severity": 1}})

READ = """
import json, sys
from pathlib import Path
from watchstander.connectors.dnsnames import read_dns_names
from watchstander.connectors.ids import read_eve
from watchstander.connectors.skips import SkipCounter
import logging
skips = SkipCounter(logging.getLogger("bench"), "t")
reader = read_eve if sys.argv[1] == "eve" else read_dns_names
events = list(reader(Path(sys.argv[2]), skips=skips))
hwm = [l for l in Path("/proc/self/status").read_text().splitlines() if l.startswith("VmHWM:")][0]
print(json.dumps({"events": len(events), "skipped": dict(skips.counts), "peak_mb": int(hwm.split()[1]) / 1024}))
"""


@pytest.fixture(scope="module")
def long_line_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("long") / "long.json"
    block = b"A" * (4 * 1024 * 1024)
    with open(path, "wb") as fh:
        fh.write(b'{"event_type": "alert", "x": "')
        fh.writelines(block for _ in range(75))
        fh.write(b'"}\nwww.example.com\n' + ALERT.encode() + b"\n")
    yield path
    path.unlink()


def _read(kind: str, path: Path) -> dict[str, object]:
    out = subprocess.run([sys.executable, "-c", READ, kind, str(path)], capture_output=True, timeout=100, check=True)
    result: dict[str, object] = json.loads(out.stdout)
    return result


def test_eve_reader_skips_a_300_mb_line_in_bounded_memory(long_line_file: Path) -> None:
    result = _read("eve", long_line_file)
    assert result["events"] == 1
    assert result["skipped"] == {"overlong EVE record": 1, "invalid JSON": 1}
    assert isinstance(result["peak_mb"], float) and result["peak_mb"] < 100, result


def test_dns_name_reader_skips_a_300_mb_line_in_bounded_memory(long_line_file: Path) -> None:
    result = _read("dnsnames", long_line_file)
    assert result["events"] == 1
    assert result["skipped"] == {"overlong line": 1, "not a DNS name": 1}
    assert isinstance(result["peak_mb"], float) and result["peak_mb"] < 100, result


def test_follower_drops_overlong_lines_whole_and_keeps_numbering(tmp_path: Path, clock: Clock) -> None:
    log = tmp_path / "auth.log"
    log.write_bytes(b"")
    seen: list[Event] = []
    follower = FollowedFile(log, clock, interval=0.02, max_message=600, chunk=256)
    line = b"Nov 27 11:00:%02d bastion sshd[1]: Failed password for root from 192.0.2.%d port 1 ssh2\n"

    async def scenario() -> None:
        await follower.start(Sink(asyncio.get_running_loop(), seen.extend))
        while follower._fh is None:
            await asyncio.sleep(0.01)
        with open(log, "ab") as fh:
            fh.write(line % (1, 1) + b"x" * 700 + b"\n" + line % (2, 2) + b"y" * 5000)
            fh.flush()
            await asyncio.sleep(0.2)  # the unfinished long line is being dropped, not held
            fh.write(b"y\n" + line % (3, 3) + b"z" * 601 + b"\n" + (line % (4, 4)).rstrip(b"\n"))
        while follower._pos != log.stat().st_size:
            await asyncio.sleep(0.01)
        follower.mark()
        await follower.stop()

    asyncio.run(scenario())
    assert [(e.src, e.ref) for e in seen] == [("192.0.2.1", "file:auth.log:1"), ("192.0.2.2", "file:auth.log:3"),
                                              ("192.0.2.3", "file:auth.log:5")]
    assert follower.counters["skipped_overlong"] == 3
    assert follower.skips.counts["overlong line dropped"] == 3
    assert len(follower._pending) < 600
