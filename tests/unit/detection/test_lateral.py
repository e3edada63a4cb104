"""Lateral movement: learning window, first use of an admin service, and memory kept in a real SQLite store."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from watchstander.agent.config.detectors import LateralConfig
from watchstander.agent.detection.detectors.lateral import InMemory, LateralMemory, LateralMovementDetector
from watchstander.agent.models import Finding
from watchstander.agent.store.lateral import LateralStore
from watchstander.agent.store.schema import open_store
from watchstander.connectors.events import ACK, NETWORK, PSH, SYN, Event

DAY = 86400.0
T0 = 1_700_000_000.0


def syn(t: float, src: str, dst: str, dport: int) -> Event:
    return Event(t, "pcap", NETWORK, src, dst, 50000, dport, "tcp", SYN, ref=f"p#{t:.0f}")


def flow(t: float, src: str, dst: str, dport: int, flags: int = SYN | ACK | PSH) -> Event:
    return Event(t, "zeek", NETWORK, src, dst, 50000, dport, "tcp", flags,
                 attrs={"flow": True, "packets": 10, "bytes": 4000, "duration": 3.0, "orig_bytes": 1500})


def heartbeat(start: float, end: float) -> list[Event]:
    """Ordinary web traffic every ten minutes: what makes the time between admin connections observed."""
    n = int((end - start) // 600)
    return [syn(start + 600 * i, "10.0.0.50", "93.184.216.34", 80) for i in range(n)]


def learned_week(days: int = 8, first_day: int = 0) -> list[Event]:
    """Days of ordinary admin traffic (a week of learning and a day by default): the admin box uses SSH and RDP, the file server clients SMB."""
    out = heartbeat(T0 + first_day * DAY, T0 + (first_day + days) * DAY + 60)
    for day in range(first_day, first_day + days):
        t = T0 + day * DAY
        out += [syn(t + 10, "10.0.0.2", "10.0.0.20", 22), syn(t + 20, "10.0.0.2", "10.0.0.21", 3389)]
        out += [flow(t + 30 + i, f"10.0.1.{i}", "10.0.0.5", 445) for i in range(1, 20)]
    return sorted(out, key=lambda e: e.time)


def detect(events: list[Event], memory: LateralMemory | None = None, **config: Any) -> list[Finding]:
    found: list[Finding] = []
    det = LateralMovementDetector(LateralConfig(**config), found.append, memory)
    for ev in events:
        det.feed(ev)
    return found


def test_nothing_alerts_while_learning() -> None:
    events = learned_week(6) + [syn(T0 + 6 * DAY, "10.0.1.7", "10.0.0.99", 5985)]
    assert detect(events) == []


def test_a_stitched_capture_spanning_weeks_is_not_a_week_of_learning() -> None:
    # admin connections a week apart with nothing in between: barely two hours observed
    events = [syn(T0 + w * 7 * DAY + i, f"10.0.1.{w}", "10.0.0.5", 22) for w in range(5) for i in range(3)]
    assert detect(events) == []


def test_first_use_after_learning_is_reported_with_its_technique() -> None:
    after = T0 + 8 * DAY + 100
    events = learned_week() + [
        syn(after, "10.0.1.7", "10.0.0.30", 3389),          # RDP: never used by 10.0.1.7
        syn(after + 1, "10.0.1.7", "10.0.0.31", 3389),      # joins the same finding
        flow(after + 2, "10.0.1.8", "10.0.0.40", 5986),     # WinRM from a Zeek record
        syn(after + 3, "10.0.1.9", "10.0.0.5", 445),        # SMB: a known habit of 10.0.1.9
        syn(after + 4, "10.0.0.2", "10.0.0.22", 22),        # SSH: known for the admin box
        syn(after + 5, "10.0.1.7", "203.0.113.4", 22),      # to the internet: not lateral
    ]
    rdp, winrm = detect(events)
    assert rdp.techniques == ("T1021.001",) and winrm.techniques == ("T1021.006",)
    assert rdp.entities == {"attacker": "10.0.1.7", "victim": "10.0.0.30", "service": "rdp"}
    assert rdp.counts["targets"] == 2 and rdp.counts["connections"] == 2
    assert "10.0.1.7" in rdp.title and "RDP" in rdp.title
    assert winrm.entities["attacker"] == "10.0.1.8"


def test_a_new_pair_is_reported_once_then_known() -> None:
    after = T0 + 8 * DAY + 100
    events = learned_week() + [syn(after, "10.0.1.7", "10.0.0.30", 22),
                               syn(after + 2 * 3600, "10.0.1.7", "10.0.0.31", 22)]
    (f,) = detect(events)
    assert f.techniques == ("T1021.004",) and f.count == 1


def test_benign_controls_admin_hosts_acks_and_continuations() -> None:
    after = T0 + 8 * DAY + 100
    assert detect(learned_week() + [syn(after, "10.0.0.3", "10.0.0.30", 22)], admin_hosts=["10.0.0.3"]) == []
    established = [Event(after, "pcap", NETWORK, "10.0.1.7", "10.0.0.30", 5, 22, "tcp", ACK)]
    continuation = [flow(after, "10.0.1.7", "10.0.0.30", 445, flags=ACK | PSH)]
    assert detect(learned_week() + established + continuation) == []


def test_learned_pairs_and_learning_progress_survive_a_restart_in_sqlite(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'store' / 'watchstander.db'}"
    store = open_store(url)
    try:
        assert detect(learned_week(4), LateralStore(store)) == []
    finally:
        store.close()
    # A new process, a new store object on the same file, started a month later: four days of
    # learning are kept (the month the sensor was off is not), and so are the pairs learned then.
    store = open_store(url)
    try:
        memory = LateralStore(store)
        observed, pairs = memory.load()
        assert 4 * DAY - 3600 - 600 <= observed <= 4 * DAY + 60  # saved each observed hour
        assert ("10.0.0.2", "ssh", T0 + 10) in pairs and ("10.0.1.3", "smb", T0 + 33) in pairs
        later = learned_week(2, first_day=30)  # six days observed in all: still learning
        assert detect(later, memory) == []
        resumed = learned_week(3, first_day=40)
        after = T0 + 43 * DAY
        found = detect(resumed + [syn(after, "10.0.0.2", "10.0.0.20", 22), syn(after + 1, "10.0.1.3", "10.0.0.5", 445),
                                  syn(after + 2, "10.0.1.3", "10.0.0.77", 3389)], memory)
        assert [f.entities["service"] for f in found] == ["rdp"]
        assert found[0].attributes["learned_s"] >= 7 * DAY
        assert ("10.0.1.3", "rdp", after + 2) in memory.load()[1]
        memory.save_pair("10.0.1.3", "rdp", after + 99)  # a known pair keeps its first time
        assert ("10.0.1.3", "rdp", after + 2) in memory.load()[1]
    finally:
        store.close()


def test_in_memory_default_and_bound() -> None:
    mem = InMemory()
    det = LateralMovementDetector(LateralConfig(max_pairs=100, learning_s=0), lambda f: None, mem)
    for i in range(500):
        det.feed(syn(T0 + i, f"10.2.{i // 250}.{i % 250}", "10.0.0.1", 22))
    assert len(det.known) == 100 and len(mem.pairs) == 500  # beyond the cap, still saved


hostile = st.one_of(st.none(), st.integers(), st.floats(allow_nan=True), st.text(max_size=8), st.booleans(),
                    st.lists(st.integers(), max_size=2))


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(
    st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-10, 10**11)),
    st.sampled_from(["10.0.0.1", "10.0.0.2", None, "x", "fd00::1", ""]),
    st.sampled_from(["10.0.0.9", None, "", "fd00::2", "8.8.8.8"]),
    st.one_of(st.none(), st.sampled_from([22, 139, 445, 3389, 5985, 5986, 80]), st.integers(-5, 70000)),
    st.one_of(st.integers(-5, 300), st.none()),
    st.one_of(st.none(), st.dictionaries(st.sampled_from(["flow", "bytes"]), hostile)),
), max_size=60))
def test_hostile_events_never_crash(items: list[Any]) -> None:
    events = [Event(t, "h", NETWORK, s, d, 1, dp, "tcp", fl, attrs=a)  # type: ignore[arg-type]
              for t, s, d, dp, fl, a in items]
    detect(events, learning_s=0, max_pairs=100)


class _Flaky(InMemory):
    """A memory whose saves fail while `down` (a store that went away), and whose load can fail too."""

    def __init__(self) -> None:
        super().__init__()
        self.down = False

    def load(self) -> tuple[float, list[tuple[str, str, float]]]:
        if self.down:
            raise OSError("server closed the connection unexpectedly")
        return super().load()

    def save_pair(self, src: str, service: str, first_seen: float) -> None:
        if self.down:
            raise OSError("server closed the connection unexpectedly")
        super().save_pair(src, service, first_seen)


def test_a_memory_that_fails_saves_loses_no_finding_and_catches_up_later(monkeypatch: Any) -> None:
    import watchstander.agent.detection.detectors.lateral as lateral

    found: list[Finding] = []
    memory = _Flaky()
    det = LateralMovementDetector(LateralConfig(learning_s=0), found.append, memory)
    memory.down = True
    det.feed(syn(T0, "10.0.1.7", "10.0.0.30", 445))
    det.feed(syn(T0 + 1, "10.0.1.8", "10.0.0.31", 3389))
    assert [f.entities["attacker"] for f in found] == ["10.0.1.7", "10.0.1.8"]  # found although unsaved
    assert memory.pairs == {} and det.memory_failures == 1  # one attempt, then a pause
    memory.down = False
    clock = [lateral.time.monotonic() + lateral.MEMORY_RETRY_S + 1]
    monkeypatch.setattr(lateral.time, "monotonic", lambda: clock[0])
    det.feed(syn(T0 + 2, "10.0.1.9", "10.0.0.32", 22))
    assert set(memory.pairs) == {("10.0.1.7", "smb"), ("10.0.1.8", "rdp"), ("10.0.1.9", "ssh")}


def test_attaching_a_memory_that_cannot_be_read_keeps_the_one_it_had_and_a_later_store_gets_what_was_learned() -> None:
    found: list[Finding] = []
    det = LateralMovementDetector(LateralConfig(learning_s=0), found.append)
    det.feed(syn(T0, "10.0.1.7", "10.0.0.30", 445))
    broken = _Flaky()
    broken.down = True
    try:
        det.attach_memory(broken)
        raise AssertionError("a memory that cannot be read must not be attached")
    except OSError:
        pass
    assert isinstance(det.memory, InMemory) and not isinstance(det.memory, _Flaky)
    store_memory = _Flaky()
    det.attach_memory(store_memory)
    assert set(store_memory.pairs) == {("10.0.1.7", "smb")}  # learned while away, handed over
    det.feed(syn(T0 + 5, "10.0.1.7", "10.0.0.31", 445))
    assert len(found) == 1  # the pair learned before the attach is still known
