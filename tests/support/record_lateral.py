"""Record lateral movement over admin protocols between network namespaces, with its ground truth.

    sudo .venv/bin/python -m tests.support.record_lateral [OUT_DIR]

Five namespaces share a bridge in a sixth ("sw") on 10.0.0.0/24: an admin host A (10.0.0.10), a
workstation C (10.0.0.20) and three servers (10.0.0.31-33). Each server runs Debian's real OpenSSH
server (/usr/sbin/sshd) on 22 and small Python listeners on 80 (web), 445 (SMB), 3389 (RDP) and 5985
(WinRM's HTTP). tcpdump on the bridge (promiscuous, so it sees what the switch forwards; snap length
128) writes two pcaps, one per phase, recorded back to back:

- learning.pcap: for LEARN_S seconds A routinely logs in to the servers with `ssh` (key accepted)
  and asks WinRM for its identity with `curl`; C only browses the servers' web pages.
- movement.pcap: A goes on with its routine (one server new to it), then C, which never used an
  admin protocol, connects to the servers over SMB (`curl smb://`), RDP (a Python client sending
  the X.224 Connection Request that mstsc sends first), WinRM (`curl`) and SSH (`ssh`, key refused).

TRUTH.yaml says which parts are real tools and which are Python, and the learning time the tests
configure (the detector's default is 7 days of observed traffic; the recording has LEARN_S seconds).
"""

from __future__ import annotations

import datetime
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from tests.support.netns import Lab, Namespace

ADMIN, WORKSTATION = "10.0.0.10", "10.0.0.20"
SERVERS = ("10.0.0.31", "10.0.0.32", "10.0.0.33")
OUT = Path(__file__).resolve().parents[1] / "data" / "captures" / "lateral"
LEARN_S = 45.0  # real seconds of routine traffic in learning.pcap
LEARNING_S_IN_TESTS = 30.0  # LateralConfig.learning_s the tests configure: less than LEARN_S
SSHD = "/usr/sbin/sshd"

# Web on 80 and WinRM on 5985 (401 Negotiate, as Windows answers an unauthenticated WS-Man POST);
# SMB on 445 reads the negotiate and hangs up; RDP on 3389 confirms the X.224 connection, then closes.
LISTENERS = """
import socket, sys, threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
ADDR = sys.argv[1]
class Web(BaseHTTPRequestHandler):
    def do_GET(self):
        body = b"<html>intranet</html>"
        self.send_response(200); self.send_header("Content-Length", str(len(body))); self.end_headers()
        self.wfile.write(body)
    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.send_response(401); self.send_header("WWW-Authenticate", "Negotiate")
        self.send_header("Content-Length", "0"); self.end_headers()
    def log_message(self, *args):
        pass
X224_CC = bytes.fromhex("030000130ed000001234000200080000000000")
def raw(port, reply):
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((ADDR, port)); s.listen(16)
    while True:
        c, _ = s.accept(); c.settimeout(3)
        try:
            c.recv(4096)
            if reply:
                c.sendall(reply)
        except OSError:
            pass
        c.close()
for port in (80, 5985):
    threading.Thread(target=ThreadingHTTPServer((ADDR, port), Web).serve_forever, daemon=True).start()
threading.Thread(target=raw, args=(445, b""), daemon=True).start()
raw(3389, X224_CC)
"""

# The first PDU an RDP client sends: TPKT + X.224 Connection Request + cookie + RDP_NEG_REQ (TLS|CredSSP).
RDP_CLIENT = """
import socket, sys
cookie = b"Cookie: mstshash=ops\\r\\n"
neg = bytes([1, 0, 8, 0, 3, 0, 0, 0])
x224 = bytes([6 + len(cookie) + len(neg), 0xE0, 0, 0, 0, 0, 0]) + cookie + neg
s = socket.create_connection((sys.argv[1], 3389), 5)
s.sendall(bytes([3, 0]) + (4 + len(x224)).to_bytes(2, "big") + x224)
print(s.recv(64).hex())
s.close()
"""

WSMAN_IDENTIFY = (
    '<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope" '
    'xmlns:wsmid="http://schemas.dmtf.org/wbem/wsman/identity/1/wsmanidentity.xsd">'
    "<s:Header/><s:Body><wsmid:Identify/></s:Body></s:Envelope>"
)


class Clients:
    """The client commands of each admin protocol, run in a namespace; each one is logged."""

    def __init__(self, workdir: Path) -> None:
        self.admin_key = workdir / "admin_key"
        self.stolen_key = workdir / "other_key"
        self.log: list[dict[str, object]] = []

    def argv(self, service: str, server: str, key: Path) -> list[str]:
        """The command line of one connection to `server` over `service`."""
        if service == "ssh":
            return ["ssh", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no", "-o",
                    "UserKnownHostsFile=/dev/null", "-o", "ConnectTimeout=5", "-o", "LogLevel=ERROR",
                    "-i", str(key), f"root@{server}", "uptime"]
        if service == "winrm":
            return ["curl", "-s", "-m", "5", "-o", "/dev/null", "-w", "%{http_code}", "-X", "POST",
                    "-H", "Content-Type: application/soap+xml;charset=UTF-8", "--data", WSMAN_IDENTIFY,
                    f"http://{server}:5985/wsman"]
        if service == "smb":
            return ["curl", "-s", "-m", "5", "-u", "ops:Winter2026", "-o", "/dev/null",
                    f"smb://{server}/C$/Windows/win.ini"]
        if service == "rdp":
            return [sys.executable, "-c", RDP_CLIENT, server]
        if service == "web":
            return ["curl", "-s", "-m", "5", "-o", "/dev/null", "-w", "%{http_code}", f"http://{server}/"]
        raise ValueError(service)

    def run(self, ns: Namespace, who: str, host: str, service: str, server: str, phase: str) -> None:
        """Run one client connection in `ns` and log it (its failure can be the point)."""
        key = self.admin_key if who == "A" else self.stolen_key
        argv = self.argv(service, server, key)
        start = time.time()
        proc = ns.run(argv, check=False, timeout=30)
        shown = "python3 -c RDP_CLIENT " + server if service == "rdp" else " ".join(argv)
        self.log.append({"phase": phase, "time": round(start, 3), "client": who, "src": host, "dst": server,
                         "service": service, "command": shown.replace(str(key.parent), "$WORKDIR"),
                         "exit": proc.returncode, "output": (proc.stdout or proc.stderr).strip()[:80]})


def start_sshd(ns: Namespace, address: str, workdir: Path, admin_pub: str) -> None:
    """Debian's sshd in `ns` on address:22, letting root in with the admin key only."""
    workdir.mkdir(mode=0o700)
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(workdir / "host_key")],
                   check=True, timeout=30)
    keys = workdir / "authorized_keys"
    keys.write_text(admin_pub + "\n", encoding="ascii")
    keys.chmod(0o600)
    config = workdir / "sshd_config"
    config.write_text("\n".join([
        "Port 22", f"ListenAddress {address}", f"HostKey {workdir / 'host_key'}",
        f"PidFile {workdir / 'sshd.pid'}", f"AuthorizedKeysFile {keys}",
        # /tmp is world-writable: StrictModes would refuse a key file below it.
        "StrictModes no", "PermitRootLogin prohibit-password", "PasswordAuthentication no",
        "KbdInteractiveAuthentication no", "UsePAM no", "PrintMotd no", "LogLevel VERBOSE", "",
    ]), encoding="utf-8")
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
    subprocess.run([SSHD, "-t", "-f", str(config)], check=True, timeout=30)
    with (workdir / "sshd.log").open("wb") as log:
        ns.popen([SSHD, "-D", "-e", "-f", str(config)], stdin=subprocess.DEVNULL, stdout=log,
                 stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 10
    while b"Server listening on" not in (workdir / "sshd.log").read_bytes():
        if time.monotonic() > deadline:
            raise RuntimeError(f"sshd in {ns.name} did not start: {(workdir / 'sshd.log').read_text()!r}")
        time.sleep(0.05)


def versions() -> dict[str, str]:
    """The first line of each real tool's version output."""
    out: dict[str, str] = {}
    for tool, arg in (("ssh", "-V"), (SSHD, "-V"), ("curl", "--version"), ("tcpdump", "--version")):
        text = subprocess.run([tool, arg], capture_output=True, text=True, check=False)
        lines = [ln for ln in (text.stdout + text.stderr).splitlines() if ln.strip() and "usage" not in ln]
        out[Path(tool).name] = lines[0].strip() if lines else "?"
    return out


def start_capture(sw: Namespace, pcap: Path) -> subprocess.Popen[bytes]:
    """tcpdump on the bridge (promiscuous: it sees forwarded frames), snap length 128."""
    dump = sw.popen(["tcpdump", "-i", "br0", "-s", "128", "-U", "-n", "-w", str(pcap), "ip"],
                    stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    assert dump.stderr is not None
    dump.stderr.readline()
    time.sleep(0.3)
    return dump


def stop_capture(dump: subprocess.Popen[bytes]) -> None:
    """Let the last packets land, then stop tcpdump."""
    time.sleep(1.0)
    dump.terminate()
    dump.wait(timeout=5)


def record(out: Path, learn_s: float = LEARN_S) -> dict[str, object]:
    """Record learning.pcap and movement.pcap into `out`; return the ground truth."""
    out.mkdir(parents=True, exist_ok=True)
    with Lab("lat") as lab, tempfile.TemporaryDirectory(prefix="ws-lateral-") as tmp:
        work = Path(tmp)
        sw = lab.namespace("sw")
        sw.run(["ip", "link", "add", "br0", "type", "bridge"])
        sw.run(["ip", "link", "set", "br0", "up"])
        hosts: dict[str, Namespace] = {}
        for i, (name, addr) in enumerate([("A", ADMIN), ("C", WORKSTATION),
                                          *((f"S{n}", s) for n, s in enumerate(SERVERS, 1))]):
            ns = lab.namespace(name.lower())
            subprocess.run(["ip", "link", "add", "eth0", "netns", ns.name, "type", "veth",
                            "peer", "name", f"p{i}", "netns", sw.name], check=True, timeout=15)
            sw.run(["ip", "link", "set", f"p{i}", "master", "br0"])
            sw.run(["ip", "link", "set", f"p{i}", "up"])
            ns.run(["ip", "addr", "add", f"{addr}/24", "dev", "eth0"])
            ns.run(["ip", "link", "set", "eth0", "up"])
            hosts[name] = ns
        clients = Clients(work)
        for key in (clients.admin_key, clients.stolen_key):
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True, timeout=30)
        admin_pub = clients.admin_key.with_suffix(".pub").read_text(encoding="ascii").strip()
        for n, server in enumerate(SERVERS, 1):
            ns = hosts[f"S{n}"]
            start_sshd(ns, server, work / f"sshd{n}", admin_pub)
            ns.popen([sys.executable, "-c", LISTENERS, server], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(1.5)  # bridge ports forwarding, listeners bound
        a, c = hosts["A"], hosts["C"]

        dump = start_capture(sw, out / "learning.pcap")
        try:
            started, step = time.monotonic(), 0
            while time.monotonic() - started < learn_s:
                # A's routine: SSH to S1 and S2 in turn, WinRM to S1; C browses the intranet.
                clients.run(a, "A", ADMIN, "ssh", SERVERS[step % 2], "learning")
                if step % 2 == 0:
                    clients.run(a, "A", ADMIN, "winrm", SERVERS[0], "learning")
                clients.run(c, "C", WORKSTATION, "web", SERVERS[step % 3], "learning")
                step += 1
                time.sleep(3.0)
        finally:
            stop_capture(dump)

        dump = start_capture(sw, out / "movement.pcap")
        try:
            for who, ns, host, service, server in [
                ("A", a, ADMIN, "ssh", SERVERS[1]),
                ("C", c, WORKSTATION, "web", SERVERS[0]),
                ("A", a, ADMIN, "ssh", SERVERS[2]),  # a server A never logged in to: same service
                ("A", a, ADMIN, "winrm", SERVERS[1]),
                ("C", c, WORKSTATION, "smb", SERVERS[0]),
                ("C", c, WORKSTATION, "smb", SERVERS[1]),
                ("C", c, WORKSTATION, "rdp", SERVERS[0]),
                ("C", c, WORKSTATION, "winrm", SERVERS[1]),
                ("C", c, WORKSTATION, "ssh", SERVERS[0]),
                ("C", c, WORKSTATION, "ssh", SERVERS[2]),
                ("A", a, ADMIN, "ssh", SERVERS[0]),
            ]:
                clients.run(ns, who, host, service, server, "movement")
                time.sleep(1.0)
        finally:
            stop_capture(dump)
    return truth(out, clients.log)


def truth(out: Path, log: list[dict[str, object]]) -> dict[str, object]:
    """The ground truth of a recording: hosts, what is real, the expected findings and every connection."""
    moves = [e for e in log if e["phase"] == "movement" and e["client"] == "C" and e["service"] != "web"]
    expected: dict[str, dict[str, object]] = {}
    techniques = {"smb": "T1021.002", "rdp": "T1021.001", "ssh": "T1021.004", "winrm": "T1021.006"}
    for e in moves:
        service = str(e["service"])
        entry = expected.setdefault(service, {"attacker": WORKSTATION, "service": service,
                                              "technique": techniques[service], "victims": []})
        victims = entry["victims"]
        assert isinstance(victims, list)
        if e["dst"] not in victims:
            victims.append(e["dst"])
    tools = versions()
    return {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d"),
        "files": {name: (out / name).stat().st_size for name in ("learning.pcap", "movement.pcap")},
        "replay_order": ["learning.pcap", "movement.pcap"],
        "hosts": {"A": {"address": ADMIN, "role": "admin host (routine SSH and WinRM)"},
                  "C": {"address": WORKSTATION, "role": "workstation that never used admin protocols"},
                  **{f"S{n}": {"address": s, "role": "server"} for n, s in enumerate(SERVERS, 1)}},
        "real": {
            "network": "six Linux network namespaces, veth pairs on one Linux bridge",
            "capture": f"tcpdump -i br0 -s 128 on the bridge ({tools['tcpdump']})",
            "ssh": f"Debian's OpenSSH: ssh client ({tools['ssh']}) and /usr/sbin/sshd per server; "
                   "A's key is accepted (runs uptime), C's key is refused",
            "winrm": f"curl ({tools['curl']}) POSTing a WS-Man Identify to :5985/wsman; the server is a "
                     "Python HTTP server answering 401 Negotiate, not Windows",
            "smb": "curl's SMB client (smb://) sends its SMB negotiate to a Python listener on 445 that hangs "
                   "up; curl 7.88 then waits for its -m 5 timeout (exit 28), no SMB server",
            "rdp": "a Python client sending the X.224 Connection Request + RDP_NEG_REQ that mstsc sends "
                   "first, to a Python listener on 3389 answering a Connection Confirm; no RDP tool",
            "web": "curl GET to a Python HTTP server on 80 (benign)",
        },
        "configured": {
            "learning": f"the tests set [detectors.lateral] learning_s = {LEARNING_S_IN_TESTS:g} (default 7 days); "
                        f"learning.pcap holds about {LEARN_S:g} s of routine traffic, timestamps untouched",
        },
        "expected_findings": list(expected.values()),
        "quiet": [{"host": ADMIN, "why": "A used SSH and WinRM during learning; afterwards, even to a "
                                         "server new to it, that is routine"},
                  {"host": WORKSTATION, "service": "web", "why": "port 80 is no admin protocol"}],
        "connections": log,
    }


def main() -> None:
    """Record into OUT (or argv[1]) and write TRUTH.yaml beside the pcaps."""
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else OUT
    doc = record(out)
    header = ("# Ground truth for the recorded lateral movement in this folder (tests/support/record_lateral.py).\n"
              "# Replay learning.pcap, then movement.pcap. 'real' says which parts are real tools.\n")
    (out / "TRUTH.yaml").write_text(header + yaml.safe_dump(doc, sort_keys=False))


if __name__ == "__main__":
    main()
