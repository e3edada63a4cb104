"""RELP, the Reliable Event Logging Protocol (rsyslog's omrelp, librelp): the server side, bytes in and out.

A frame is `TXNR SP COMMAND SP DATALEN [SP DATA] LF` (TXNR and DATALEN 1-9 digits, COMMAND 1-32
letters). A session starts with `open` (the client's offers; we answer `200 OK` with ours: version 0
and the `syslog` command), carries `syslog` frames (each answered `200 OK` by its TXNR: that answer is
the acknowledgement a sender waits for before it forgets a message), and ends with `close` (answered
with an empty response) or with our `serverclose` on a protocol error. A sender that loses the
connection resends every message it holds unacknowledged, so nothing acknowledged is ever asked
for again and nothing unacknowledged is lost in transit.

Nothing here does I/O: `RelpSession.feed(bytes)` returns the messages to deliver, the bytes to send
back, and whether the session is over. Memory is bounded by `max_message` per frame; a DATALEN over
it, a malformed header or a missing trailer ends the session with an error, as librelp does.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .errors import ParseError

MAX_TXNR = 999_999_999
MAX_HEADER = 9 + 1 + 32 + 1 + 9 + 1  # TXNR SP COMMAND SP DATALEN SP
VERSION = 0


class RelpError(ParseError):
    """The peer broke the protocol; the session must end."""


@dataclass(frozen=True, slots=True)
class Frame:
    """One RELP frame."""

    txnr: int
    command: str
    data: bytes


class FrameParser:
    """Splits a RELP byte stream into frames, holding at most one frame's bytes."""

    def __init__(self, max_data: int) -> None:
        self.max_data = max_data
        self._buf = bytearray()
        self.error: RelpError | None = None

    @property
    def pending(self) -> bool:
        """Whether a frame has begun and not ended."""
        return bool(self._buf)

    def feed(self, data: bytes) -> list[Frame]:
        """The frames `data` completes; a framing error sets `error` (frames before it are still returned)."""
        if self.error is not None:
            raise self.error
        self._buf += data
        frames: list[Frame] = []
        while self._buf:
            try:
                frame = self._one()
            except RelpError as exc:
                self.error = exc
                self._buf.clear()
                break
            if frame is None:
                break
            frames.append(frame)
        return frames

    def _one(self) -> Frame | None:
        buf = self._buf
        # Header: three space-separated fields; the third ends at SP (data follows) or LF (no data).
        first = buf.find(b" ")
        second = buf.find(b" ", first + 1) if first >= 0 else -1
        if second < 0:
            if len(buf) > MAX_HEADER:
                raise RelpError("frame header too long or malformed")
            return None
        end = second + 1
        while end < len(buf) and end - second <= 10 and buf[end:end + 1].isdigit():
            end += 1
        if end == len(buf):
            if end - second > 10:
                raise RelpError("DATALEN has more than 9 digits")
            return None
        txnr_b, command_b, length_b = bytes(buf[:first]), bytes(buf[first + 1:second]), bytes(buf[second + 1:end])
        if not (txnr_b.isdigit() and 0 < len(txnr_b) <= 9):
            raise RelpError(f"bad TXNR {txnr_b[:12]!r}")
        if not (command_b.isalpha() and command_b.isascii() and 0 < len(command_b) <= 32):
            raise RelpError(f"bad command {command_b[:33]!r}")
        if not (length_b.isdigit() and 0 < len(length_b) <= 9):
            raise RelpError(f"bad DATALEN {length_b[:12]!r}")
        length = int(length_b)
        if length > self.max_data:
            raise RelpError(f"frame of {length} bytes is over the limit of {self.max_data}")
        sep = buf[end]
        if sep == 0x0A:  # LF: no data
            if length != 0:
                raise RelpError("DATALEN is not 0 but the frame has no data")
            del buf[:end + 1]
            return Frame(int(txnr_b), command_b.decode("ascii"), b"")
        if sep != 0x20:
            raise RelpError("no SP or LF after DATALEN")
        start = end + 1
        if len(buf) < start + length + 1:
            return None
        if buf[start + length] != 0x0A:
            raise RelpError("frame trailer (LF) missing: the length does not match the data")
        data = bytes(buf[start:start + length])
        del buf[:start + length + 1]
        return Frame(int(txnr_b), command_b.decode("ascii"), data)


def frame(txnr: int, command: str, data: bytes = b"") -> bytes:
    """Encode one frame."""
    if data:
        return b"%d %s %d %s\n" % (txnr, command.encode("ascii"), len(data), data)
    return b"%d %s 0\n" % (txnr, command.encode("ascii"))


@dataclass
class Exchange:
    """What one feed produced: messages to deliver, bytes to send back, and whether the session ended."""

    messages: list[bytes] = field(default_factory=list)
    reply: bytes = b""
    closed: bool = False
    error: str | None = None


class RelpSession:
    """The server side of one RELP session."""

    def __init__(self, max_message: int, software: str = "watchstander") -> None:
        self.parser = FrameParser(max_message)
        self.software = software
        self.opened = False
        self.closed = False
        self.last_txnr = 0

    @property
    def pending(self) -> bool:
        """Whether a frame has begun and not ended."""
        return self.parser.pending

    def feed(self, data: bytes) -> Exchange:
        """Handle the bytes a client sent; messages are acknowledged in `reply` once the caller delivers them."""
        out = Exchange()
        if self.closed:
            out.closed = True
            return out
        frames = self.parser.feed(data)
        replies: list[bytes] = []
        for f in frames:
            if f.txnr <= self.last_txnr and not (self.last_txnr == MAX_TXNR and f.txnr == 1):
                self._abort(out, f"TXNR {f.txnr} does not follow {self.last_txnr}")
                break
            self.last_txnr = f.txnr
            if f.command == "open":
                if self.opened:
                    replies.append(frame(f.txnr, "rsp", b"200 connection already open - ignored"))
                    continue
                offers = self._offers(f.data)
                if "syslog" not in offers.get("commands", "").split(","):
                    replies.append(frame(f.txnr, "rsp", b"500 required command not supported by client"))
                    self._abort(out, "the client does not offer the syslog command")
                    break
                self.opened = True
                ours = f"200 OK\nrelp_version={VERSION}\nrelp_software={self.software}\ncommands=syslog"
                replies.append(frame(f.txnr, "rsp", ours.encode("ascii")))
            elif not self.opened:
                self._abort(out, f"{f.command} before open")
                break
            elif f.command == "syslog":
                out.messages.append(f.data)
                replies.append(frame(f.txnr, "rsp", b"200 OK"))
            elif f.command == "close":
                replies.append(frame(f.txnr, "rsp"))
                self.closed = out.closed = True
                break
            else:
                replies.append(frame(f.txnr, "rsp", b"500 command not supported"))
        if not self.closed and self.parser.error is not None:
            self._abort(out, str(self.parser.error))
        out.reply = b"".join(replies) + out.reply
        return out

    def _abort(self, out: Exchange, why: str) -> Exchange:
        self.closed = out.closed = True
        out.error = why
        out.reply += frame(0, "serverclose")
        return out

    @staticmethod
    def _offers(data: bytes) -> dict[str, str]:
        offers: dict[str, str] = {}
        for line in data.decode("utf-8", "replace").split("\n")[:64]:
            name, _, value = line.partition("=")
            if name:
                offers[name.strip()[:64]] = value.strip()[:1024]
        return offers
