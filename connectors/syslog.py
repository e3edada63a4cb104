"""Syslog records from files or datagrams: RFC 3164, RFC 5424 and the real-world shapes in between.

Handled: with or without `<PRI>`, timestamps with no year (the year is inferred from an injected
`now`), ISO 8601 timestamps, a missing hostname, non-UTF-8 bytes (kept as backslash escapes) and
overlong lines (truncated). A line that matches no shape is counted and skipped; a time before 1990 or
more than a day ahead of the clock is replaced by the receipt time and counted.
"""

from __future__ import annotations

import calendar
import logging
import re
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import BinaryIO

from .errors import open_source
from .events import LOG, RAW_EXCERPT_MAX, Event, ReceiptTime, excerpt
from .skips import SkipCounter
from .syslog_messages import _APP_PREFIXES, SyslogNeeds, normalize_fields
from .syslog_messages import normalize as normalize_record
from .syslog_record import SyslogRecord

log = logging.getLogger(__name__)

MAX_LINE = 16 * 1024
TRUNCATED = "overlong line truncated"  # the skip reason of a line cut at MAX_LINE (still delivered)

_MONTHS = {m: i for i, m in enumerate(calendar.month_abbr) if m}

# Timestamps are ASCII-only (re.A): \d would also match digits from other scripts.
# <PRI>Mmm dd hh:mm:ss[.frac] [host] tag[pid]: msg   (RFC 3164 and the BSD file format)
_BSD = re.compile(
    r"(?:<(?P<pri>\d{1,3})>)?(?P<mon>[A-Z][a-z]{2}) {1,2}(?P<day>\d{1,2}) (?P<hms>\d\d:\d\d:\d\d)(?:\.\d+)?"
    r"(?: (?P<year>\d{4}))? (?P<rest>.*)",
    re.DOTALL | re.ASCII,
)
# <PRI>1 TIMESTAMP HOST APP PROCID MSGID [SD] MSG   (RFC 5424)
_RFC5424 = re.compile(
    r"<(?P<pri>\d{1,3})>1 (?P<ts>\S+) (?P<host>\S+) (?P<app>\S+) (?P<pid>\S+) (?P<msgid>\S+) "
    r"(?P<sd>-|(?:\[(?:[^\]\\]|\\.)*\])+) ?(?P<msg>.*)",
    re.DOTALL | re.ASCII,
)
# <PRI>? ISO-8601 host tag: msg   (rsyslog's high-precision file format)
_ISO = re.compile(
    r"(?:<(?P<pri>\d{1,3})>)?(?P<ts>\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:?\d\d)?) (?P<rest>.*)",
    re.DOTALL | re.ASCII,
)
# tag[pid]: msg  — tags may carry parentheses (sshd(pam_unix)) or slashes (postfix/smtpd).
_RFC5424_START = re.compile(r"<\d{1,3}>1 ", re.ASCII)
_TAG = re.compile(r"(?P<app>[\w./()@-]{1,64}?)(?:\[(?P<pid>\d{1,10})\])?: ?(?P<msg>.*)", re.DOTALL)
_PRI = r"(?:\d\d?|1[0-8]\d|19[01]|0\d\d)"  # 0..191 in one to three digits, as _pri accepts
# The shape of nearly every line in a Linux log file or RFC 3164 datagram, matched in one go:
# <PRI> (optional), "Mmm dd HH:MM:SS" (the cache key of the second), host, tag, pid, message.
# A "host" that ends in ':' is really the tag of a line without a hostname; those take the general path.
_FAST = re.compile(
    r"(?:<" + _PRI + r">)?([A-Z][a-z]{2} [ 0-3]\d [0-2]\d:[0-5]\d:\d\d) (\S+) ([^\s\[:]{1,64})(?:\[\d{1,10}\])?: ?(.*)",
    re.DOTALL | re.ASCII,
)
# RFC 5424 as nearly every sender writes it (rsyslog, syslog-ng, journald forwarders): a "Z" or
# offset timestamp with no, 3 or 6 fraction digits, and no structured data. The general path takes
# the rest, and any line here whose time does not check out (an impossible date, implausible).
_FAST5424 = re.compile(
    r"<" + _PRI + r">1 (\d{4}-\d\d-\d\dT\d\d:\d\d:[0-5]\d)(?:\.(\d{6}|\d{3}))?(Z|[+-]\d\d:\d\d) "
    r"(\S+) (\S+) \S+ \S+ - ?(.*)",
    re.DOTALL | re.ASCII,
)
CHECK_DAY_EVERY = 65536
KNOWN_MINUTES = 8
# Stands for a line prefilter() found unneeded: no text decoded from bytes holds a lone surrogate.
UNNEEDED_MARK = "\udfff"
_MARKED = "\n" + UNNEEDED_MARK


def _unneeded_pattern(needs: SyslogNeeds, minutes: list[tuple[str, str]], bounded: bool) -> re.Pattern[str] | None:
    """One regex for the lines of a batch that text_events would count unneeded, or None.

    A line matches only if it has the fast RFC 5424 shape with a time in one of `minutes`, could
    not normalize into a typed event (might_matter), and `needs` does not want it; `bounded`, also
    only if it is at most MAX_LINE long (else the caller knows no line is longer). Anything in
    doubt does not match, and takes the per-line path.
    """
    if needs.every or not minutes or "" in needs.apps or "" in needs.keywords:
        return None
    if any(c in word for word in needs.keywords for c in "\ufeff\r\x00\n"):
        return None
    stamps = "|".join(re.escape(minute) + r":[0-5]\d(?:\.(?:\d{6}|\d{3}))?" + re.escape(zone)
                      for minute, zone in minutes)
    apps = "(?!(?:" + "|".join(re.escape(a) for a in sorted(needs.apps)) + ") )" if needs.apps else ""
    words = r"(?![^\n]*(?:" + "|".join(re.escape(w) for w in needs.keywords) + "))" if needs.keywords else ""
    # Fields bounded so that a match is at most MAX_LINE long without a second scan (bounded
    # repeats cost more than \S+, hence the two forms).
    token, message = (r"\S{1,255}", rf"[^\n]{{0,{MAX_LINE - 1100}}}(?![^\n])") if bounded else (r"\S+", r"[^\n]*")
    # Each line is matched from the LF before it (the literal prefix lets the engine skip to line
    # starts). Possessive " ?+": the message starts where _FAST5424's greedy " ?" ends it.
    return re.compile(
        rf"\n<{_PRI}>1 (?:{stamps}) {token} (?!sshd|klog|vsft|dnsm)(?!\S*pam_unix){apps}{token} "
        rf"{token} {token} - ?+(?!\ufeff?pam_unix\(){words}{message}",
        re.ASCII,
    )


class SyslogParser:
    """Parses syslog lines; the clock decides the year of year-less timestamps."""

    def __init__(self, now: Callable[[], datetime]) -> None:
        self._now = now
        self._minute_cache: dict[tuple[int, int, str, int | None], float] = {}
        self.prefix_minutes: dict[str, float] = {}
        self.second_times: dict[str, float] = {}  # "Mmm dd HH:MM:SS" -> epoch, for the hot loop
        self._ref_date = now().date()

    def minute(self, prefix: str) -> float:
        """Epoch of a year-less "Mmm dd HH:MM" minute (cached); raises ValueError for a bad date."""
        base = self.prefix_minutes.get(prefix)
        if base is None:
            base = self._bsd_time(prefix[:3], int(prefix[4:6]), prefix[7:12] + ":00", None)
            if len(self.prefix_minutes) > 100_000:
                self.prefix_minutes.clear()
            self.prefix_minutes[prefix] = base
        return base

    def check_day(self) -> None:
        """Forget year inferences made on another day (a long-running source crossing New Year)."""
        today = self._now().date()
        if today != self._ref_date:
            self._ref_date = today
            self.prefix_minutes.clear()  # in place: the hot loop holds a reference
            self.second_times.clear()
            self._minute_cache = {k: v for k, v in self._minute_cache.items() if k[3] is not None}

    def parse(self, line: str) -> SyslogRecord:
        """Parse one line; raises ValueError when it matches no known syslog shape."""
        try:
            return self._parse(line)
        except OverflowError as exc:  # a date that exists but has no POSIX timestamp
            raise ValueError(f"timestamp out of range: {exc}") from exc

    def _parse(self, line: str) -> SyslogRecord:
        if _RFC5424_START.match(line):
            m5 = _RFC5424.match(line)
            if m5:
                return self._rfc5424(m5)
        m = _BSD.match(line)
        if m:
            ts = self._bsd_time(m.group("mon"), int(m.group("day")), m.group("hms"), m.group("year"))
            return self._tail(ts, m.group("rest"), m.group("pri"))
        mi = _ISO.match(line)
        if mi:
            return self._tail(_iso_time(mi.group("ts")), mi.group("rest"), mi.group("pri"))
        raise ValueError("no syslog timestamp")

    def _tail(self, ts: float, rest: str, pri: str | None) -> SyslogRecord:
        facility, severity = _pri(pri)
        host: str | None = None
        first, sep, after = rest.partition(" ")
        # A missing hostname shows as the tag directly after the timestamp ("dnsmasq[1]: ...").
        if first.endswith(":") or (first.endswith("]:") and "[" in first) or not sep:
            body = rest
        else:
            host, body = first, after
        t = _TAG.match(body)
        if t:
            return SyslogRecord(ts, host, t.group("app"), t.group("pid"), t.group("msg"), facility, severity)
        return SyslogRecord(ts, host, None, None, body, facility, severity)

    def _rfc5424(self, m: re.Match[str]) -> SyslogRecord:
        facility, severity = _pri(m.group("pri"))
        ts = _iso_time(m.group("ts")) if m.group("ts") != "-" else self._now().timestamp()

        def nil(v: str | None) -> str | None:
            return None if v == "-" else v

        msg = m.group("msg")
        msg = msg.removeprefix("\ufeff")
        return SyslogRecord(ts, nil(m.group("host")), nil(m.group("app")), nil(m.group("pid")), msg,
                            facility, severity)

    def _bsd_time(self, mon: str, day: int, hms: str, year: str | None) -> float:
        month = _MONTHS.get(mon)
        if month is None or not 1 <= day <= 31:
            raise ValueError(f"bad date {mon} {day}")
        y = int(year) if year else None
        key = (month, day, hms[:5], y)
        base = self._minute_cache.get(key)
        if base is None:
            hh, mm = int(hms[0:2]), int(hms[3:5])
            if hh > 23 or mm > 59:
                raise ValueError(f"bad time {hms}")
            day_of = date(y, month, day) if y is not None else self._infer_date(month, day)
            base = float(calendar.timegm((day_of.year, month, day, hh, mm, 0, 0, 0, 0)))
            if len(self._minute_cache) > 100_000:
                self._minute_cache.clear()
            self._minute_cache[key] = base
        ss = int(hms[6:8])
        if ss > 60:
            raise ValueError(f"bad time {hms}")
        return base + ss

    def _infer_date(self, month: int, day: int) -> date:
        """The latest date with this month and day that is not after tomorrow (one day of clock skew)."""
        today = self._now().date()
        if today != self._ref_date:
            # Cached year-less minutes were inferred against another day; a new year may have begun.
            self._ref_date = today
            self.prefix_minutes.clear()  # in place: the hot loop holds a reference
            self.second_times.clear()
            self._minute_cache = {k: v for k, v in self._minute_cache.items() if k[3] is not None}
        latest = today + timedelta(days=1)
        for year in range(latest.year, latest.year - 8, -1):  # Feb 29 recurs within 8 years
            try:
                candidate = date(year, month, day)
            except ValueError:
                continue  # Feb 29 in a common year, or Apr 31
            if candidate <= latest:
                return candidate
        raise ValueError(f"no such date: {calendar.month_abbr[month]} {day}")


def _pri(pri: str | None) -> tuple[int | None, int | None]:
    if pri is None:
        return None, None
    value = int(pri)
    if value > 191:
        raise ValueError(f"PRI {value} out of range")
    return value >> 3, value & 7


def _iso_time(text: str) -> float:
    text = text.replace(" ", "T", 1)
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    dt = datetime.fromisoformat(text)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.timestamp()


def decode_line(raw: bytes) -> str:
    """Decode a raw line: UTF-8 where valid, backslash escapes for every other byte."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("utf-8", "backslashreplace")


class SyslogSource:
    """Turns syslog lines into Events: normalized where a message is understood, `log` otherwise.

    With `needs`, an ordinary line (one that normalizes into no typed event) that `needs` does not
    want is parsed and counted in `unneeded`, and no Event is built for it; None builds every line.
    """

    def __init__(self, source: str, now: Callable[[], datetime], skips: SkipCounter | None = None,
                 needs: SyslogNeeds | None = None) -> None:
        self.source = source
        self.parser = SyslogParser(now)
        self.skips = skips or SkipCounter(log, source)
        self.receipt = ReceiptTime(now)
        self.needs = needs
        self.unneeded = 0  # lines parsed that no consumer needs (no Event built)
        self._iso_seconds: dict[str, int] = {}
        # ISO minutes (and zones) seen whose every second is a plausible time: what prefilter() matches.
        self._minutes: dict[tuple[str, str], None] = {}
        self._unneeded_line: re.Pattern[str] | None = None
        self._unneeded_long: re.Pattern[str] | None = None  # the same, checking each line's length

    def events(self, lines: Iterable[bytes], first_line: int = 1) -> Iterator[Event]:
        """Yield Events for raw lines (newline-stripped or not); bad lines are counted, not raised."""
        return self.text_events((decode_line(raw[: MAX_LINE + 1]) for raw in lines), first_line)

    def _iso_second(self, second: str, zone: str) -> int | None:
        """Epoch of an ISO "YYYY-MM-DDTHH:MM:SS" second in `zone` (cached); None if it is no time."""
        key = second + zone
        base = self._iso_seconds.get(key)
        if base is None:
            try:
                base = int(_iso_time(second + zone))
            except (ValueError, OverflowError):
                return None  # the general path reports it
            if len(self._iso_seconds) > 100_000:
                self._iso_seconds.clear()
            self._iso_seconds[key] = base
            self._learn_minute(second[:16], zone)
        return base

    def _learn_minute(self, minute: str, zone: str) -> None:
        """Remember a minute whose every second is a valid, plausible time (the last few only)."""
        if (minute, zone) in self._minutes or self.needs is None or self.needs.every:
            return
        try:
            start = int(_iso_time(minute + ":00" + zone))
        except (ValueError, OverflowError):
            return
        if not (self.receipt.plausible(start) and self.receipt.plausible(start + 60)):
            return
        self._minutes[(minute, zone)] = None
        while len(self._minutes) > KNOWN_MINUTES:
            del self._minutes[next(iter(self._minutes))]
        self._unneeded_line = _unneeded_pattern(self.needs, list(self._minutes), bounded=False)
        self._unneeded_long = _unneeded_pattern(self.needs, list(self._minutes), bounded=True)

    def prefilter(self, text: str, longest: int | None = None) -> str:
        """`text` (lines joined by LF) with each line `text_events` would count unneeded replaced by
        UNNEEDED_MARK, in one regex pass; they are counted here. Line numbers are kept.

        `longest` bounds the length of every line (the longest datagram or frame in bytes, say);
        without it, or above MAX_LINE, the regex checks each line's length itself."""
        pattern = self._unneeded_line if longest is not None and longest <= MAX_LINE else self._unneeded_long
        if pattern is None:
            return text
        out, count = pattern.subn(_MARKED, "\n" + text)
        self.unneeded += count
        return out[1:]

    def text_events(self, lines: Iterable[str], first_line: int = 1) -> Iterator[Event]:
        """Yield Events for decoded lines; the hot loop of every syslog source."""
        parser = self.parser
        parse, minute, fast, fast5424 = parser.parse, parser.minute, _FAST.match, _FAST5424.match
        minutes, seconds, iso_seconds, iso_second = (parser.prefix_minutes, parser.second_times, self._iso_seconds,
                                                     self._iso_second)
        plausible = self.receipt.plausible
        source = self.source
        skips = self.skips
        event, log_kind, limit, apps, normalize = Event, LOG, RAW_EXCERPT_MAX, _APP_PREFIXES, normalize_fields
        needs = self.needs
        gate = needs is not None and not needs.every
        need_apps = needs.apps if needs is not None else frozenset()
        need_words = needs.keywords if needs is not None else ()
        n = first_line - 1
        for line in lines:
            n += 1
            if len(line) > MAX_LINE:
                skips.skip(TRUNCATED, f"line {n}")
                line = line[:MAX_LINE]
            if n & (CHECK_DAY_EVERY - 1) == 0:
                parser.check_day()
            if line == UNNEEDED_MARK:
                continue  # counted by prefilter()
            line = line.rstrip("\r\n\x00")
            # The two fast shapes below hold nearly every line; each builds exactly the Event the
            # general path at the end would (tests/unit/connectors/test_syslog_fast_path.py).
            m5 = fast5424(line) if line[:1] == "<" else None
            if m5 is not None:
                second, frac, zone, host, app, msg = m5.groups()
                base = iso_seconds.get(second + zone)
                if base is None:
                    base = iso_second(second, zone)
                if base is not None:
                    # Exactly what datetime.timestamp() computes: whole microseconds over 10**6.
                    if frac is None:
                        ts = float(base)
                    elif len(frac) == 6:
                        ts = (base * 1_000_000 + int(frac)) / 1_000_000
                    else:
                        ts = (base * 1_000_000 + int(frac) * 1000) / 1_000_000
                    if plausible(ts):
                        if msg[:1] == "\ufeff":
                            msg = msg[1:]
                        if app == "-":
                            app = ""
                        ref = ""
                        if app[:4] in apps or "pam_unix" in app or msg.startswith("pam_unix("):  # might_matter
                            ev = normalize(ts, None if host == "-" else host, app, msg, source,
                                           ref := f"{source}:{n}")
                            if ev is not None:
                                yield ev
                                continue
                        if gate and app not in need_apps and not (need_words and any(k in msg for k in need_words)):
                            self.unneeded += 1
                            continue
                        yield event(ts, source, log_kind, None, None, None, None, None, 0,
                                    None if host == "-" else host, None, None, {"app": app} if app else None,
                                    msg if len(msg) <= limit else excerpt(msg), ref or f"{source}:{n}")
                        continue
                # An impossible date or an implausible time: the general path repairs or reports it.
            else:
                m = fast(line)
                if m is not None:
                    stamp, host, app, msg = m.groups()
                    if host[-1] != ":":  # else no hostname: the general path decides
                        cached = seconds.get(stamp)
                        if cached is not None:
                            ts = cached
                        else:
                            prefix, ss = stamp[:12], stamp[13:]
                            try:
                                start = minutes.get(prefix)
                                ts = (minute(prefix) if start is None else start) + int(ss)
                            except (ValueError, OverflowError) as exc:
                                skips.skip("unparseable syslog line", f"line {n}: {exc}: {line[:80]}")
                                continue
                            if ss > "60":
                                skips.skip("unparseable syslog line", f"line {n}: bad seconds: {line[:80]}")
                                continue
                            if len(seconds) > 100_000:
                                seconds.clear()
                            seconds[stamp] = ts
                        ref = ""
                        if app[:4] in apps or "pam_unix" in app or msg.startswith("pam_unix("):  # might_matter
                            ev = normalize(ts, host, app, msg, source, ref := f"{source}:{n}")
                            if ev is not None:
                                yield ev
                                continue
                        if gate and app not in need_apps and not (need_words and any(k in msg for k in need_words)):
                            self.unneeded += 1
                            continue
                        yield event(ts, source, log_kind, None, None, None, None, None, 0, host, None, None,
                                    {"app": app}, msg if len(msg) <= limit else excerpt(msg), ref or f"{source}:{n}")
                        continue
            if not line.strip():
                continue
            try:
                rec = parse(line)
            except (ValueError, OverflowError) as exc:
                skips.skip("unparseable syslog line", f"line {n}: {exc}: {line[:80]}")
                continue
            # Year-less times (the fast path above) are inferred within eight years up to tomorrow;
            # an explicit year or an ISO time can be anything a sender writes.
            if not self.receipt.plausible(rec.time):
                skips.repair("timestamp out of range, set to receipt time", f"line {n}: {line[:80]}")
                rec.time = self.receipt.now()
            ref = f"{source}:{n}"
            ev = normalize_record(rec, source, ref)
            if ev is None:
                if gate and not needs.wants(rec.app, rec.msg):  # type: ignore[union-attr]
                    self.unneeded += 1
                    continue
                ev = Event(rec.time, source, LOG, host=rec.host, raw=excerpt(rec.msg), ref=ref,
                           attrs={"app": rec.app} if rec.app else None)
            yield ev


def file_lines(fh: BinaryIO, skips: SkipCounter, chunk_size: int = 1 << 20) -> Iterator[str]:
    """Decoded lines of a file, read a chunk at a time; an endless line is cut, not held in memory."""
    pending = b""
    discarding = False
    while True:
        chunk = fh.read(chunk_size)
        if not chunk:
            break
        data = pending + chunk
        cut = data.rfind(b"\n")
        if cut < 0:
            if discarding:
                pending = b""
            elif len(data) > MAX_LINE:
                yield decode_line(data[: MAX_LINE + 1])  # counted as truncated by the consumer
                pending, discarding = b"", True
            else:
                pending = data
            continue
        block, pending = data[:cut], data[cut + 1 :]
        if discarding:
            nl = block.find(b"\n")
            block = block[nl + 1 :] if nl >= 0 else b""
            discarding = False
            if not block:
                continue
        try:
            text = block.decode("utf-8")
        except UnicodeDecodeError:
            for raw in block.split(b"\n"):
                yield decode_line(raw[: MAX_LINE + 1])
            continue
        yield from text.split("\n")
    if pending and not discarding:
        yield decode_line(pending[: MAX_LINE + 1])


def read_syslog(path: str | Path, now: Callable[[], datetime], source: str | None = None,
                skips: SkipCounter | None = None) -> Iterator[Event]:
    """Yield Events from a syslog file in constant memory."""
    path = Path(path)
    src = SyslogSource(source or f"syslog:{path.name}", now, skips)
    fh = open_source(path)
    with fh:
        yield from src.text_events(file_lines(fh, src.skips))


class FramingError(ValueError):
    """A stream's framing cannot be followed (a bogus RFC 6587 length): the connection must end."""


class StreamFramer:
    """Splits a syslog byte stream into messages: RFC 6587 octet counting or LF-delimited lines.

    The framing is detected once per connection (RFC 6587 section 3.4): a stream whose first byte is
    a digit is octet-counted (`LEN SP MSG`), anything else is read as LF-delimited lines. A first
    frame that starts with digits but has no `LEN SP` header (a bare ISO timestamp) is read as a line.
    Memory is bounded while reading: a line longer than `max_message` is cut there and the rest of it
    discarded. A bogus length (not digits, or above `max_message`) sets `error`: the frames before it
    are still returned, and any later feed raises it.
    """

    def __init__(self, max_message: int, octet_only: bool = False) -> None:
        self.max_message = max_message
        self.octet_only = octet_only
        self.octet: bool | None = None
        self.truncated = 0
        self._buf = bytearray()
        self._need = -1  # octet counting: the body length still awaited, -1 while reading a header
        self._discarding = False
        self._frames = 0
        self.error: FramingError | None = None
        self._digits = len(str(max_message))

    @property
    def pending(self) -> bool:
        """Whether a frame has begun and not ended (bytes held, or a line being discarded)."""
        return bool(self._buf) or self._need >= 0 or self._discarding

    def feed(self, data: bytes) -> list[bytes]:
        """The messages completed by `data`; raises FramingError if the stream already failed."""
        if self.error is not None:
            raise self.error
        if self.octet is None:
            if not data:
                return []
            self.octet = self.octet_only or data[:1].isdigit()
        if self.octet:
            return self._octets(data)
        return self._lines(data)

    def close(self) -> list[bytes]:
        """End of stream: an unterminated line is a message; a cut-off octet frame raises FramingError."""
        if self.error is not None:
            raise self.error
        if self.octet:
            if self._buf or self._need >= 0:
                raise FramingError("stream ended inside an octet-counted frame")
            return []
        rest, self._buf = bytes(self._buf), bytearray()
        return [rest] if rest and not self._discarding else []

    def _octets(self, data: bytes) -> list[bytes]:
        # Frames are sliced out of immutable bytes (one copy each); only an unfinished tail is held.
        buf = self._buf
        if buf:
            buf += data
            data = bytes(buf)
            buf.clear()
        out: list[bytes] = []
        append, find, digits = out.append, data.find, self._digits
        pos, end, need = 0, len(data), self._need
        while True:
            if need < 0:
                while pos < end and data[pos] in (10, 13):  # a stray LF between frames (some senders)
                    pos += 1
                sp = find(b" ", pos, pos + digits + 1)
                if sp < 0:
                    head = data[pos : pos + digits + 1]
                    if len(head) > digits or (head and not head.isdigit()):
                        return self._not_a_length(head, out, pos, data)
                    break
                head = data[pos:sp]
                if not head.isdigit() or head[:1] == b"0":
                    return self._not_a_length(head, out, pos, data)
                need = int(head)
                if need > self.max_message:
                    return self._fail(f"octet count {need} exceeds max_message {self.max_message}", out)
                pos = sp + 1
            if end - pos < need:
                break
            append(data[pos : pos + need])
            pos += need
            need = -1
        if pos < end:
            buf += memoryview(data)[pos:]
        self._need = need
        self._frames += len(out)
        return out

    def _not_a_length(self, head: bytes, out: list[bytes], pos: int, data: bytes) -> list[bytes]:
        # The very first frame may be a plain line that starts with a digit (an ISO timestamp).
        if not self.octet_only and not out and pos == 0 and self._frames == 0:
            self.octet = False
            self._buf.clear()
            return self._lines(data)
        return self._fail(f"bad octet count {head[:16]!r}", out)

    def _fail(self, reason: str, out: list[bytes]) -> list[bytes]:
        self.error = FramingError(reason)
        self._buf.clear()
        self._need = -1
        self._frames += len(out)
        return out

    def _lines(self, data: bytes) -> list[bytes]:
        limit = self.max_message
        if self._discarding:
            nl = data.find(b"\n")
            if nl < 0:
                return []
            data = data[nl + 1 :]
            self._discarding = False
        buf = self._buf
        if buf:
            buf += data
            data = bytes(buf)
            buf.clear()
        cut = data.rfind(b"\n")
        out = [x for x in data[:cut].split(b"\n") if x] if cut >= 0 else []  # an empty line is no message
        for i, line in enumerate(out):
            if len(line) > limit:
                out[i] = line[:limit]
                self.truncated += 1
        rest = data[cut + 1 :]
        if len(rest) > limit:
            out.append(rest[:limit])
            self.truncated += 1
            self._discarding = True
        elif rest:
            buf += rest
        return out
