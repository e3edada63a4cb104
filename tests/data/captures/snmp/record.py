"""Re-record the SNMP captures in this folder: Debian's net-snmp tools against a real snmpd on loopback.

Run as root from the repository root: `.venv/bin/python tests/data/captures/snmp/record.py`.
Every capture is tcpdump's own output (`tcpdump -i lo -w`); TRUTH.md says what each one holds.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[2]))  # tests/, for support.snmpd

from support.snmpd import Snmpd

COMMUNITIES = "rocommunity public 127.0.0.1\nrwcommunity private 127.0.0.1\n"
GUESSES = ("admin", "cisco", "secret", "manager", "snmp", "router", "switch", "monitor", "default",
           "community", "password", "write")


def tool(agent: Snmpd, *argv: str) -> None:
    """Run one net-snmp client command against the agent (its failures are the point of some captures)."""
    subprocess.run([*argv], env=agent.env(), capture_output=True, timeout=30, check=False)


def capture(name: str, port: int, actions: list[list[str]], agent: Snmpd) -> None:
    """Record the actions' packets on lo to NAME.pcap."""
    out = HERE / f"{name}.pcap"
    dump = subprocess.Popen(["tcpdump", "-i", "lo", "-U", "-w", str(out), f"udp port {port} or icmp"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    assert dump.stderr is not None
    dump.stderr.readline()  # "listening on lo ...": the capture has started
    time.sleep(0.2)
    for argv in actions:
        tool(agent, *argv)
    time.sleep(1.0)
    dump.terminate()
    dump.wait(timeout=10)


def main() -> None:
    """Record walk, guess, set and sweep captures."""
    with tempfile.TemporaryDirectory() as tmp:
        agent = Snmpd(Path(tmp), port=161, extra_config=COMMUNITIES).start()
        try:
            ep = agent.endpoint
            port = agent.port
            assert port is not None
            quick = ["-t", "0.3", "-r", "0"]
            capture("walk", port, [
                ["snmpget", "-v2c", "-c", "public", ep, "1.3.6.1.2.1.1.1.0", "1.3.6.1.2.1.1.5.0"],
                ["snmpwalk", "-v2c", "-c", "public", ep, "1.3.6.1.2.1.1"],
                ["snmpwalk", "-v1", "-c", "public", ep, "1.3.6.1.2.1.2.2.1.2"],
                ["snmpbulkwalk", "-v2c", "-c", "public", ep, "1.3.6.1.2.1.2.2.1.7"],
            ], agent)
            capture("guess", port, [
                *[["snmpget", "-v2c", "-c", c, *quick, ep, "1.3.6.1.2.1.1.1.0"] for c in GUESSES],
                *[["snmpget", "-v3", "-l", "noAuthNoPriv", "-u", u, *quick, ep, "1.3.6.1.2.1.1.1.0"]
                  for u in ("admin", "root", "snmpuser")],
            ], agent)
            capture("set", port, [
                ["snmpset", "-v2c", "-c", "private", ep, "1.3.6.1.2.1.1.4.0", "s", "noc@example.net"],
                ["snmpset", "-v2c", "-c", "public", ep, "1.3.6.1.2.1.1.6.0", "s", "owned"],
                ["snmpset", "-v1", "-c", "public", ep, "1.3.6.1.2.1.1.6.0", "s", "owned"],
            ], agent)
            capture("sweep", port, [
                ["snmpget", "-v2c", "-c", "public", *quick, f"udp:127.0.1.{h}:{port}", "1.3.6.1.2.1.1.1.0"]
                for h in range(1, 41)
            ], agent)
        finally:
            agent.stop()


if __name__ == "__main__":
    main()
