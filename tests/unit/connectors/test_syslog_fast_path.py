"""The syslog decoder's fast paths are exact: the same Events, skips and repairs as the general path.

Three claims, each checked with hypothesis:
- an RFC 5424 line taken by the fast 5424 shape yields exactly what the general parser yields
  (time to the microsecond, host, app, message, typed event or not, repairs and skips);
- a BSD line with a hostname and a plain tag yields exactly what the general parser yields;
- with `needs`, the decoder yields exactly the Events it yields without, minus the `log` events
  `needs` does not want, and counts those in `unneeded`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from watchstander.connectors.events import LOG, Event, ReceiptTime, excerpt
from watchstander.connectors.syslog import MAX_LINE, UNNEEDED_MARK, SyslogParser, SyslogSource
from watchstander.connectors.syslog_messages import EVERY_LINE, NO_LINE, SyslogNeeds, normalize, union

from .conftest import fixed_clock, new_skips

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

MESSAGES = st.sampled_from([
    "Failed password for root from 10.0.0.1 port 22 ssh2",
    "Failed password for invalid user admin from 2001:db8::1 port 5555 ssh2",
    "Accepted publickey for ops from 10.20.0.3 port 45933 ssh2",
    "Invalid user webmaster from 173.234.31.186",
    "pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost=203.0.113.9  user=root",
    "authentication failure; logname= uid=0 euid=0 tty=NODEVssh ruser= rhost=218.188.2.4",
    "query[A] example.org from 10.0.0.2",
    "(root) CMD (run-parts /etc/cron.hourly) seq=42",
    "Started Session 12 of user ops.",
    "[UFW BLOCK] IN=eth0 OUT= SRC=198.51.100.6 DST=10.20.0.5 PROTO=TCP DPT=43754",
    "Authentication failed from 192.0.2.7", '[bob] FAIL LOGIN: Client "::ffff:192.0.2.8"', "", " ", "x" * 600,
])
APPS = st.sampled_from(["sshd", "sshd(pam_unix)", "CRON", "systemd", "kernel", "dnsmasq", "klogind", "vsftpd",
                        "su(pam_unix)", "postfix/smtpd", "ftpd(pam_unix)", "-", "app@x", "a.b-c"])
WORDS = st.sampled_from(["CMD", "UFW", "Session", "failure", "query", "nope", "é"])
TEXT = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=40)


def _zone() -> st.SearchStrategy[str]:
    return st.sampled_from(["Z", "+00:00", "+05:30", "-01:00", "+14:00", "+0000", "", "+24:00"])


@st.composite
def rfc5424_lines(draw: st.DrawFn) -> str:
    """RFC 5424 lines around the fast shape's edges: PRI, dates, fractions, zones, nil fields, SD, BOM."""
    pri = draw(st.sampled_from(["0", "13", "78", "78", "012", "191", "192", "999"]))
    year = draw(st.sampled_from([1, 1985, 1990, 2024, 2025, 2025, 2025, 2026, 9999]))
    edgy = draw(st.integers(0, 3)) == 0  # one line in four tries the impossible dates and times
    month, day = (draw(st.integers(0, 13)), draw(st.integers(0, 32))) if edgy else (draw(st.integers(1, 12)), 15)
    hh, mm, ss = ((draw(st.integers(0, 24)), draw(st.integers(0, 60)), draw(st.integers(0, 61))) if edgy
                  else (draw(st.integers(0, 23)), draw(st.integers(0, 59)), draw(st.integers(0, 59))))
    frac = draw(st.sampled_from(["", ".1", ".123", ".1234", ".123456", ".1234567", ".000000", ".999999"]))
    stamp = f"{year:04d}-{month:02d}-{day:02d}T{hh:02d}:{mm:02d}:{ss:02d}{frac}{draw(_zone())}"
    host = draw(st.sampled_from(["-", "web1", "gw.example", "h:1"]))
    app = draw(APPS)
    pid = draw(st.sampled_from(["-", "4242", "x"]))
    msgid = draw(st.sampled_from(["-", "ID47"]))
    sd = draw(st.sampled_from(["-", "-", '[ex@1 a="b"]', "-x", "[a][b]"]))
    bom = draw(st.sampled_from(["", "\ufeff"]))
    sep = draw(st.sampled_from([" ", " ", ""]))
    msg = draw(MESSAGES | TEXT)
    tail = draw(st.sampled_from(["", "\r\n", "\x00"]))
    return f"<{pri}>1 {stamp} {host} {app} {pid} {msgid} {sd}{sep}{bom}{msg}{tail}"


@st.composite
def bsd_lines(draw: st.DrawFn) -> str:
    """BSD lines with a hostname and a plain tag, dated up to today (no year, so no repair)."""
    pri = draw(st.sampled_from(["", "<13>", "<38>", "<012>", "<191>"]))
    mon = draw(st.sampled_from(["Jan", "Feb", "Mar"]))
    day = draw(st.integers(1, 14))
    stamp = f"{mon} {day:2d} {draw(st.integers(0, 23)):02d}:{draw(st.integers(0, 59)):02d}:{draw(st.integers(0, 60)):02d}"
    host = draw(st.sampled_from(["host0", "combo", "LabSZ", "10.0.0.1", "gw-1.example"]))
    app = draw(APPS.filter(lambda a: a not in ("-", "app@x") and ":" not in a))
    pid = draw(st.sampled_from(["", "[1]", "[24200]"]))
    sep = draw(st.sampled_from([": ", ":"]))
    return f"{pri}{stamp} {host} {app}{pid}{sep}{draw(MESSAGES | TEXT)}"


def general(lines: Iterable[str]) -> tuple[list[Event], Counter[str]]:
    """The general path alone (the decoder before any fast shape): the reference."""
    parser = SyslogParser(fixed_clock())
    receipt = ReceiptTime(fixed_clock())
    skips = new_skips()
    out: list[Event] = []
    for n, raw in enumerate(lines, 1):
        line = raw.rstrip("\r\n\x00")
        if not line.strip():
            continue
        try:
            rec = parser.parse(line)
        except ValueError as exc:
            skips.skip("unparseable syslog line", str(exc))
            continue
        if not receipt.plausible(rec.time):
            skips.repair("timestamp out of range, set to receipt time")
            rec.time = receipt.now()
        ref = f"t:{n}"
        ev = normalize(rec, "t", ref)
        if ev is None:
            ev = Event(rec.time, "t", LOG, host=rec.host, raw=excerpt(rec.msg), ref=ref,
                       attrs={"app": rec.app} if rec.app else None)
        out.append(ev)
    return out, skips.counts


def decoded(lines: list[str], needs: SyslogNeeds | None = None) -> tuple[list[Event], Counter[str], int]:
    """What the decoder yields, its skip counts and its unneeded count."""
    skips = new_skips()
    src = SyslogSource("t", fixed_clock(), skips, needs)
    events = list(src.text_events(lines))
    return events, skips.counts, src.unneeded


@SETTINGS
@given(st.lists(rfc5424_lines(), min_size=1, max_size=8))
def test_rfc5424_fast_shape_equals_the_general_path(lines: list[str]) -> None:
    events, counts, _ = decoded(lines)
    want, want_counts = general(lines)
    assert events == want
    assert +counts == +want_counts


@SETTINGS
@given(st.lists(bsd_lines(), min_size=1, max_size=8))
def test_bsd_fast_shape_equals_the_general_path(lines: list[str]) -> None:
    events, counts, _ = decoded(lines)
    want, want_counts = general(lines)
    assert events == want
    assert +counts == +want_counts


def test_fast_5424_time_is_exactly_datetime_timestamp() -> None:
    lines = [f"<13>1 2025-03-15T11:59:59.{f}Z h a - - - m" for f in ("000001", "123456", "999999", "100", "999")]
    lines += ["<13>1 2025-03-15T17:29:59.5+05:30 h a - - - m"]
    events, _, _ = decoded(lines)
    want, _ = general(lines)
    assert [e.time for e in events] == [e.time for e in want]
    assert len(events) == 6


NEEDS = st.one_of(
    st.just(NO_LINE), st.just(EVERY_LINE),
    st.builds(SyslogNeeds, st.just(False), st.frozensets(APPS, max_size=3), st.lists(WORDS, max_size=2).map(tuple)),
)
MIXED = st.lists(rfc5424_lines() | bsd_lines() | TEXT | MESSAGES, min_size=1, max_size=12)


def _wanted(ev: Event, needs: SyslogNeeds) -> bool:
    if ev.kind != LOG:
        return True
    app = (ev.attrs or {}).get("app")
    return needs.wants(app, ev.raw or "")


@SETTINGS
@given(MIXED, NEEDS)
def test_needs_drops_exactly_the_unwanted_log_events(lines: list[str], needs: SyslogNeeds) -> None:
    assume(all(len(line) < 500 for line in lines))  # raw is then the whole message `needs` looks at
    every, every_counts, unneeded_every = decoded(lines)
    some, some_counts, unneeded = decoded(lines, needs)
    assert some == [ev for ev in every if _wanted(ev, needs)]
    assert unneeded == len(every) - len(some)
    assert unneeded_every == 0
    assert +some_counts == +every_counts  # skips and repairs are counted alike


def test_union_of_needs() -> None:
    a = SyslogNeeds(apps=frozenset({"kernel"}), keywords=("UFW",))
    b = SyslogNeeds(apps=frozenset({"CRON"}), keywords=("UFW", "CMD"))
    assert union([a, b]) == SyslogNeeds(False, frozenset({"kernel", "CRON"}), ("UFW", "CMD"))
    assert union([a, EVERY_LINE]) is EVERY_LINE
    assert union([]).nothing
    assert a.wants("kernel", "") and a.wants(None, "[UFW BLOCK]") and not a.wants("CRON", "CMD")


def _via_prefilter(lines: list[str], needs: SyslogNeeds, told_longest: bool) -> tuple[list[Event], Counter[str], int]:
    """Decode `lines` as the UDP listener does: a batch prefiltered by one regex, then line by line."""
    skips = new_skips()
    src = SyslogSource("t", fixed_clock(), skips, needs)
    events: list[Event] = []
    longest = max(map(len, lines)) if told_longest else None
    for _ in range(2):  # the first batch teaches the decoder its minutes, the second is prefiltered
        batch = src.prefilter("\n".join(lines), longest).split("\n")
        assert len(batch) == len(lines)
        events.extend(src.text_events(batch))
    return events, skips.counts, src.unneeded


CURRENT = st.builds(
    lambda sec, frac, app, msg, tail: f"<78>1 2025-03-15T11:58:{sec:02d}{frac}Z web1 {app} 42 - - {msg}{tail}",
    st.integers(0, 59), st.sampled_from(["", ".123", ".123456", ".1234"]), APPS,
    MESSAGES | TEXT | st.sampled_from([" pam_unix(sshd:auth): x", "\ufeffpam_unix(su:auth): x", "\ufeffCMD x"]),
    st.sampled_from(["", "\r", "\x00"]))


LONG = st.builds(lambda n: f"<78>1 2025-03-15T11:58:07Z web1 CRON 42 - - {'x' * n}",
                 st.sampled_from([MAX_LINE - 60, MAX_LINE - 44, MAX_LINE - 43, MAX_LINE + 5]))


@SETTINGS
@given(st.lists(CURRENT | rfc5424_lines() | bsd_lines() | TEXT | LONG, min_size=1, max_size=12), NEEDS, st.booleans())
def test_prefilter_counts_exactly_what_the_line_loop_would(lines: list[str], needs: SyslogNeeds,
                                                          told_longest: bool) -> None:
    assume(all("\n" not in line for line in lines))
    twice = lines + lines
    plain, plain_counts, plain_unneeded = decoded(twice, needs)
    events, counts, unneeded = _via_prefilter(lines, needs, told_longest)
    assert [(e.kind, e.time, e.host, e.attrs, e.raw) for e in events] == \
        [(e.kind, e.time, e.host, e.attrs, e.raw) for e in plain]
    assert unneeded == plain_unneeded
    assert +counts == +plain_counts


def test_prefilter_marks_a_current_minute_and_keeps_line_numbers() -> None:
    needs = SyslogNeeds(apps=frozenset({"kernel"}), keywords=("UFW",))
    src = SyslogSource("t", fixed_clock(), new_skips(), needs)
    lines = ["<78>1 2025-03-15T11:58:01.500Z web1 CRON 42 - - (root) CMD x",
             "<38>1 2025-03-15T11:58:02Z bastion sshd 7 - - Failed password for root from 10.0.0.9 port 2 ssh2",
             "<78>1 2025-03-15T11:58:03Z web1 kernel - - - boot", "<78>1 2025-03-15T11:58:04Z web1 x - - - [UFW]",
             "<78>1 2025-03-15T11:58:05Z web1 CRON - - -  pam_unix(cron:session): x"]
    assert src.prefilter("\n".join(lines)) == "\n".join(lines)  # no minute known yet
    first = list(src.text_events(lines))
    marked = src.prefilter("\n".join(lines)).split("\n")
    assert marked == [UNNEEDED_MARK, *lines[1:4], UNNEEDED_MARK]  # the last is " pam_unix(": no PAM line
    second = list(src.text_events(marked, len(lines) + 1))
    assert [e.ref for e in second] == [f"t:{int(e.ref.split(':')[1]) + len(lines)}" for e in first]
    assert src.unneeded == 4
