"""Property tests for the syslog parser and source: only ValueError from the parser, nothing lost."""

from __future__ import annotations

import calendar
from datetime import datetime, timedelta, timezone

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from watchstander.connectors.events import KINDS
from watchstander.connectors.syslog import MAX_LINE, SyslogParser, SyslogSource

from .conftest import NOW, fixed_clock, new_skips

FAST = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SLOW = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Text that tends to reach deep into the grammar: fragments of real syslog glued together.
FRAGMENTS = st.sampled_from([
    "<", ">", "<13>", "<165>1 ", "<999>", "1 ", "Jan", "Feb", "Dec", " ", "  ", "29", "31", "00:00:00",
    "23:59:60", "99:99:99", ".123", " 2024", "2024-02-29T", "2023-02-29T", "12:00:00", "Z", "+0000",
    "+05:30", "-", "[", "]", "[id@1 a=\"b\\]\"]", "\ufeff", "host", "sshd", "[123]", ":", ": ",
    "sshd(pam_unix)", "postfix/smtpd", "Failed password for root from 10.0.0.1 port 22 ssh2",
    "Accepted publickey for a from ::1 port 99999999", "query[A] x.example from 10.0.0.2", "\x00", "\r\n",
    "\u0663", "é", "0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00",
])
SYSLOGISH = st.lists(FRAGMENTS | st.text(max_size=8), max_size=14).map("".join)


@FAST
@given(st.one_of(st.text(max_size=300), SYSLOGISH))
def test_parse_raises_only_value_error(line: str) -> None:
    parser = SyslogParser(fixed_clock())
    try:
        rec = parser.parse(line)
    except ValueError:
        return
    assert isinstance(rec.time, float)
    assert rec.facility is None or 0 <= rec.facility <= 23
    assert rec.severity is None or 0 <= rec.severity <= 7


LINE_BYTES = st.one_of(
    st.binary(max_size=200),
    SYSLOGISH.map(lambda s: s.encode("utf-8", "surrogatepass")),
    st.tuples(SYSLOGISH, st.binary(max_size=20)).map(lambda t: t[0].encode("utf-8", "surrogatepass") + t[1]),
)


@FAST
@given(st.lists(LINE_BYTES, max_size=20))
def test_source_never_raises_and_loses_nothing(lines: list[bytes]) -> None:
    skips = new_skips()
    src = SyslogSource("t", fixed_clock(), skips)
    events = list(src.events(lines))
    for ev in events:
        assert ev.kind in KINDS
        assert ev.raw is None or len(ev.raw) <= 512
        assert ev.sport is None or 0 <= ev.sport <= 65535
        assert ev.user is None or len(ev.user) <= 256
    blank = sum(1 for raw in lines if not raw[:MAX_LINE].decode("utf-8", "backslashreplace").rstrip("\r\n\x00").strip())
    unparsed = skips.counts["unparseable syslog line"]
    # Every non-blank line is an Event or a counted skip; the refs say which line each Event is.
    assert len(events) + unparsed + blank == len(lines)
    assert len({ev.ref for ev in events}) == len(events)


@SLOW
@given(st.binary(min_size=1, max_size=64), st.integers(0, 255), st.sampled_from([b"", b"\n", b"\r\n"]))
def test_overlong_lines_are_truncated_and_counted(tail: bytes, fill: int, eol: bytes) -> None:
    skips = new_skips()
    line = b"Mar 15 11:00:00 host app: " + bytes([fill]) * MAX_LINE + tail + eol
    events = list(SyslogSource("t", fixed_clock(), skips).events([line]))
    assert skips.counts["overlong line truncated"] == 1
    assert len(events) == 1
    assert events[0].raw is not None and len(events[0].raw) <= 512


MONTHS = [m for m in calendar.month_abbr if m]
HOSTS = st.from_regex(r"[a-z][a-z0-9-]{0,20}(\.[a-z]{2,5}){0,2}", fullmatch=True)
APPS = st.from_regex(r"[a-z][a-z0-9_./-]{0,30}", fullmatch=True).filter(lambda a: not a.endswith((":", ".")))
MSGS = st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=80).map(str.strip)
PIDS = st.none() | st.integers(1, 4_194_304).map(str)
# Any moment in the year before NOW (a year-less log cannot reach further back).
PAST = st.integers(0, 363 * 86400).map(lambda s: NOW.replace(second=0) - timedelta(seconds=s))


def _tag(app: str, pid: str | None) -> str:
    return f"{app}[{pid}]" if pid else app


@FAST
@given(PAST, HOSTS, APPS, PIDS, MSGS, st.booleans(), st.integers(0, 191))
def test_rfc3164_round_trip(when: datetime, host: str, app: str, pid: str | None, msg: str,
                            with_pri: bool, pri: int) -> None:
    stamp = f"{MONTHS[when.month - 1]} {when.day:>2} {when:%H:%M:%S}"
    line = f"{'<%d>' % pri if with_pri else ''}{stamp} {host} {_tag(app, pid)}: {msg}"
    rec = SyslogParser(fixed_clock()).parse(line)
    assert rec.time == when.timestamp()
    assert (rec.host, rec.app, rec.pid, rec.msg) == (host, app, pid, msg)
    assert (rec.facility, rec.severity) == ((pri >> 3, pri & 7) if with_pri else (None, None))


@FAST
@given(PAST, APPS, PIDS, MSGS)
def test_rfc3164_without_hostname(when: datetime, app: str, pid: str | None, msg: str) -> None:
    line = f"{MONTHS[when.month - 1]} {when.day:>2} {when:%H:%M:%S} {_tag(app, pid)}: {msg}"
    rec = SyslogParser(fixed_clock()).parse(line)
    assert rec.time == when.timestamp()
    assert (rec.host, rec.app, rec.pid, rec.msg) == (None, app, pid, msg)


OFFSETS = st.integers(-14 * 60, 14 * 60).map(lambda m: timezone(timedelta(minutes=m)))


@FAST
@given(st.datetimes(min_value=datetime(1980, 1, 1), max_value=datetime(2100, 1, 1)), OFFSETS,
       st.sampled_from(["T", " "]), st.integers(0, 6), st.booleans(), HOSTS, APPS, PIDS, MSGS)
def test_iso_round_trip(naive: datetime, tz: timezone, sep: str, digits: int, colon: bool,
                        host: str, app: str, pid: str | None, msg: str) -> None:
    when = naive.replace(tzinfo=tz)
    frac = f".{when.microsecond:06d}"[: digits + 1] if digits else ""
    off = when.strftime("%z")
    if colon:
        off = off[:3] + ":" + off[3:]
    line = f"{when:%Y-%m-%d}{sep}{when:%H:%M:%S}{frac}{off} {host} {_tag(app, pid)}: {msg}"
    rec = SyslogParser(fixed_clock()).parse(line)
    expected = when.replace(microsecond=int(f"{when.microsecond:06d}"[:digits].ljust(6, "0")) if digits else 0)
    assert abs(rec.time - expected.timestamp()) < 1e-6
    assert (rec.host, rec.app, rec.pid, rec.msg) == (host, app, pid, msg)


NIL_OR = lambda s: st.just("-") | s  # noqa: E731
SD = st.just("-") | st.lists(
    st.tuples(st.from_regex(r"[a-z]{1,8}@[0-9]{1,5}", fullmatch=True),
              st.text(st.characters(whitelist_categories=("L", "N", "P", "Zs")), max_size=10)),
    min_size=1, max_size=3,
).map(lambda items: "".join(
    '[%s v="%s"]' % (k, v.replace("\\", "\\\\").replace('"', '\\"').replace("]", "\\]")) for k, v in items))


@FAST
@given(st.integers(0, 191), st.datetimes(min_value=datetime(1980, 1, 1), max_value=datetime(2100, 1, 1)),
       NIL_OR(HOSTS), NIL_OR(APPS), NIL_OR(st.integers(1, 99999).map(str)), NIL_OR(st.just("ID47")), SD,
       MSGS, st.booleans())
def test_rfc5424_round_trip(pri: int, naive: datetime, host: str, app: str, pid: str, msgid: str, sd: str,
                            msg: str, bom: bool) -> None:
    when = naive.replace(tzinfo=timezone.utc)
    line = f"<{pri}>1 {when.isoformat().replace('+00:00', 'Z')} {host} {app} {pid} {msgid} {sd}"
    line += f" {chr(0xFEFF) if bom else ''}{msg}" if msg or bom else ""
    rec = SyslogParser(fixed_clock()).parse(line)
    nil = lambda v: None if v == "-" else v  # noqa: E731
    assert abs(rec.time - when.timestamp()) < 1e-6
    # RFC 5424 6.4: a message that starts with U+FEFF starts with the BOM, which is not content.
    expected = msg[1:] if not bom and msg.startswith("\ufeff") else msg
    assert (rec.host, rec.app, rec.pid, rec.msg) == (nil(host), nil(app), nil(pid), expected)
    assert (rec.facility, rec.severity) == (pri >> 3, pri & 7)


@FAST
@given(st.dates(min_value=datetime(2000, 1, 1).date(), max_value=datetime(2099, 12, 31).date()),
       st.integers(1, 12), st.integers(1, 31))
def test_year_inference_is_never_in_the_future(today, month: int, day: int) -> None:  # type: ignore[no-untyped-def]
    clock = fixed_clock(datetime(today.year, today.month, today.day, 12, tzinfo=timezone.utc))
    line = f"{MONTHS[month - 1]} {day:>2} 00:00:00 h a: m"
    try:
        rec = SyslogParser(clock).parse(line)
    except ValueError:
        # Only dates that exist in no year are refused.
        assume(False)
        return
    when = datetime.fromtimestamp(rec.time, timezone.utc)
    assert (when.month, when.day) == (month, day)
    assert when.date() <= today + timedelta(days=1)
    # ...and it is the latest such date: the same month and day a year (or leap cycle) later is future.
    later = [y for y in range(when.year + 1, today.year + 2) if calendar.isleap(y) or (month, day) != (2, 29)]
    assert all(datetime(y, month, day).date() > today + timedelta(days=1) for y in later)
