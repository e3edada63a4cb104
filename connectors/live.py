"""Live packet capture on one interface: an AF_PACKET socket, a TPACKET_V3 ring, a classic BPF filter.

The mechanics only: frames come out in batches of (timestamp, bytes), the kernel's own counts of
packets seen and dropped come out of PACKET_STATISTICS. Decoding is `packets.PacketDecoder`'s, the
same as for pcap files.

Two ways to read, chosen by `method`:

- "ring": PACKET_RX_RING with TPACKET_V3. The kernel fills blocks of frames in a shared mapping and
  hands over a whole block at a time; one poll() per block instead of one recv() per frame.
- "recv": a plain non-blocking socket drained with recv_into until it would block.

A filter is compiled from tcpdump syntax by libpcap (through scapy, `compile_bpf`), attached before
the socket is bound so that no unfiltered frame slips in, and every accepting return of the program
is capped at `snaplen` so that the kernel copies no more than that of a frame.
"""

from __future__ import annotations

import errno
import mmap
import select
import socket
import struct
import time
from ctypes import addressof, create_string_buffer
from dataclasses import dataclass
from pathlib import Path

from .errors import SourceError

# <linux/if_packet.h>, <linux/if_ether.h>, <asm-generic/socket.h>
ETH_P_ALL = 0x0003
SOL_PACKET = 263
PACKET_ADD_MEMBERSHIP = 1
PACKET_MR_PROMISC = 1
PACKET_RX_RING = 5
PACKET_STATISTICS = 6
PACKET_VERSION = 10
TPACKET_V3 = 2
SO_ATTACH_FILTER = 26
TP_STATUS_KERNEL = 0
TP_STATUS_USER = 1
PACKET_OUTGOING = 4

# Link types as in pcap files (packets.LINK_*), spelled out here so that the configuration, which
# checks filters with this module, does not load scapy's dissectors with packets.py.
LINK_ETHERNET, LINK_RAW = 1, 101
# ARPHRD_* (from /sys/class/net/IF/type) to the link type the decoder understands.
_ARPHRD_LINKTYPE = {1: LINK_ETHERNET, 772: LINK_ETHERNET, 65534: LINK_RAW}

BPF_RET_K = 0x06  # BPF_RET | BPF_K: return the constant k (bytes to keep; 0 drops the frame)
BPF_INSN = struct.Struct("HBBI")  # struct sock_filter, native order as the kernel reads it
_tpacket_req3 = struct.Struct("IIIIIII")
_stats_v3 = struct.Struct("III")
# struct tpacket_block_desc: version, offset_to_priv, then tpacket_hdr_v1's block_status,
# num_pkts and offset_to_first_pkt.
_block_hdr = struct.Struct("=8xIII")
_BLOCK_STATUS = 8
# struct tpacket3_hdr: next_offset, sec, nsec, snaplen, len, status, mac, net.
_frame_hdr = struct.Struct("=IIIIIIHH")
_status = struct.Struct("=I")

MAX_SNAPLEN = 262144


class CaptureError(SourceError):
    """A live capture could not be set up or read; the message names the interface."""


class CapabilityMissing(CaptureError):
    """The process lacks CAP_NET_RAW, which an AF_PACKET socket needs."""


class BpfError(CaptureError):
    """A BPF filter could not be compiled (bad syntax, or no libpcap to compile it)."""


@dataclass(frozen=True)
class BpfProgram:
    """Classic BPF bytecode: (code, jt, jf, k) per instruction, ready for SO_ATTACH_FILTER."""

    instructions: tuple[tuple[int, int, int, int], ...]

    def capped(self, snaplen: int) -> BpfProgram:
        """The same program with every accepting return keeping at most `snaplen` bytes."""
        return BpfProgram(tuple(
            (code, jt, jf, min(k, snaplen) if code == BPF_RET_K and k else k)
            for code, jt, jf, k in self.instructions
        ))

    def packed(self) -> bytes:
        """The instructions as the kernel's array of struct sock_filter."""
        return b"".join(BPF_INSN.pack(*insn) for insn in self.instructions)


def accept_all(snaplen: int) -> BpfProgram:
    """A one-instruction program that accepts every frame, keeping `snaplen` bytes of it."""
    return BpfProgram(((BPF_RET_K, 0, 0, snaplen),))


def compile_bpf(text: str, linktype: int = LINK_ETHERNET) -> BpfProgram:
    """Compile tcpdump filter syntax to classic BPF with libpcap; BpfError if it cannot."""
    # Imported here, not at the top: loading libpcap is only needed when a filter is configured,
    # and a host without it can still capture unfiltered.
    try:
        from scapy.arch.common import compile_filter
        from scapy.error import Scapy_Exception
    except (ImportError, OSError) as exc:
        raise BpfError(f"cannot compile BPF filter {text!r}: scapy's filter compiler is unavailable ({exc})") from exc
    try:
        prog = compile_filter(text, linktype=linktype)
    except ImportError as exc:
        raise BpfError(f"cannot compile BPF filter {text!r}: libpcap is not installed "
                       "(Debian package libpcap0.8)") from exc
    except (Scapy_Exception, OSError) as exc:
        raise BpfError(f"invalid BPF filter {text!r}: {exc}") from exc
    try:
        insns = tuple((int(prog.bf_insns[i].code), int(prog.bf_insns[i].jt), int(prog.bf_insns[i].jf),
                       int(prog.bf_insns[i].k)) for i in range(int(prog.bf_len)))
    finally:
        _free_program(prog)
    return BpfProgram(insns)


def _free_program(prog: object) -> None:
    from scapy.libs.winpcapy import pcap_freecode

    pcap_freecode(prog)


def interface_linktype(interface: str) -> int:
    """The decoder's link type for an interface, from its ARPHRD type; CaptureError if unsupported."""
    try:
        arphrd = int(Path(f"/sys/class/net/{interface}/type").read_text(encoding="ascii"))
    except (OSError, ValueError) as exc:
        raise CaptureError(f"capture on {interface}: no such network interface") from exc
    if arphrd not in _ARPHRD_LINKTYPE:
        raise CaptureError(f"capture on {interface}: unsupported link type (ARPHRD {arphrd})")
    return _ARPHRD_LINKTYPE[arphrd]


@dataclass(frozen=True)
class CaptureOptions:
    """How to capture on one interface."""

    interface: str
    program: BpfProgram | None = None   # None: every frame
    snaplen: int = 65535
    ring_bytes: int = 32 << 20          # "ring": the shared mapping; "recv": SO_RCVBUF
    block_bytes: int = 1 << 20
    block_timeout_ms: int = 50          # a partly filled block is handed over after this long
    promiscuous: bool = False
    method: str = "ring"                # "ring" | "recv"
    outgoing: bool = True               # also frames this host sends (as tcpdump does)


@dataclass
class KernelStats:
    """What the kernel counted for this socket since it was opened."""

    packets: int = 0   # frames that passed the filter, delivered or dropped
    drops: int = 0     # frames dropped for want of ring or buffer space


class LiveCapture:
    """One open AF_PACKET socket on one interface; `read()` returns the next batch of frames."""

    def __init__(self, options: CaptureOptions) -> None:
        self.options = options
        self.interface = options.interface
        self.linktype = interface_linktype(options.interface)
        self.stats = KernelStats()
        self.outgoing_skipped = 0
        self._ring: mmap.mmap | None = None
        self._block = 0
        self._blocks = 0
        self._buf = bytearray(options.snaplen)
        self._sock = self._open()
        self._poll = select.poll()
        self._poll.register(self._sock.fileno(), select.POLLIN | select.POLLERR)

    def _open(self) -> socket.socket:
        opts = self.options
        try:
            # Protocol 0: the socket receives nothing until bound, after the filter is in place.
            sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
        except PermissionError as exc:
            raise CapabilityMissing(
                f"capture on {opts.interface}: opening a packet socket needs CAP_NET_RAW "
                "(run as root or grant it, e.g. AmbientCapabilities=CAP_NET_RAW)") from exc
        except OSError as exc:
            raise CaptureError(f"capture on {opts.interface}: cannot open a packet socket: {exc.strerror}") from exc
        try:
            self._attach(sock, (opts.program or accept_all(opts.snaplen)).capped(opts.snaplen))
            if opts.method == "ring":
                self._setup_ring(sock)
            else:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, opts.ring_bytes)
                sock.setblocking(False)
            sock.bind((opts.interface, ETH_P_ALL))
            if opts.promiscuous:
                index = socket.if_nametoindex(opts.interface)
                sock.setsockopt(SOL_PACKET, PACKET_ADD_MEMBERSHIP,
                                struct.pack("IHH8s", index, PACKET_MR_PROMISC, 0, b""))
        except OSError as exc:
            self._release(sock)
            raise CaptureError(f"capture on {opts.interface}: {exc.strerror or exc}") from exc
        return sock

    @staticmethod
    def _attach(sock: socket.socket, program: BpfProgram) -> None:
        insns = create_string_buffer(program.packed())
        # struct sock_fprog { unsigned short len; struct sock_filter *filter; }; the kernel copies it.
        fprog = struct.pack("HL", len(program.instructions), addressof(insns))
        sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)

    def _setup_ring(self, sock: socket.socket) -> None:
        opts = self.options
        page = mmap.PAGESIZE
        block = max(page, (opts.block_bytes // page) * page)
        while block < opts.snaplen + 256:  # a frame never spans blocks: a block holds the largest
            block *= 2
        self._blocks = max(2, opts.ring_bytes // block)
        frame = 2048
        sock.setsockopt(SOL_PACKET, PACKET_VERSION, TPACKET_V3)
        sock.setsockopt(SOL_PACKET, PACKET_RX_RING, _tpacket_req3.pack(
            block, self._blocks, frame, block // frame * self._blocks, opts.block_timeout_ms, 0, 0))
        self._block_bytes = block
        self._ring = mmap.mmap(sock.fileno(), block * self._blocks, mmap.MAP_SHARED,
                               mmap.PROT_READ | mmap.PROT_WRITE)

    def fileno(self) -> int:
        """The socket's descriptor."""
        return self._sock.fileno()

    def read(self, timeout_s: float) -> list[tuple[float, bytes]]:
        """The next batch of (time, frame): waits up to `timeout_s` for one; [] when none came."""
        if self._ring is not None:
            return self._read_ring(timeout_s)
        return self._read_recv(timeout_s)

    def _read_ring(self, timeout_s: float) -> list[tuple[float, bytes]]:
        ring = self._ring
        assert ring is not None
        base = self._block * self._block_bytes
        status, count, offset = _block_hdr.unpack_from(ring, base)
        if not status & TP_STATUS_USER:
            self._wait(timeout_s)
            status, count, offset = _block_hdr.unpack_from(ring, base)
            if not status & TP_STATUS_USER:
                return []
        frames: list[tuple[float, bytes]] = []
        pos = base + offset
        skip_outgoing = not self.options.outgoing
        for _ in range(count):
            next_off, sec, nsec, snaplen, _wire, _st, mac, _net = _frame_hdr.unpack_from(ring, pos)
            # struct sockaddr_ll follows the aligned header; its sll_pkttype says who sent it.
            if skip_outgoing and ring[pos + 48 + 10] == PACKET_OUTGOING:
                self.outgoing_skipped += 1
            else:
                start = pos + mac
                frames.append((sec + nsec * 1e-9, ring[start:start + snaplen]))
            pos += next_off
        _status.pack_into(ring, base + _BLOCK_STATUS, TP_STATUS_KERNEL)  # give the block back to the kernel
        self._block = (self._block + 1) % self._blocks
        return frames

    def _read_recv(self, timeout_s: float) -> list[tuple[float, bytes]]:
        frames: list[tuple[float, bytes]] = []
        sock, buf = self._sock, self._buf
        skip_outgoing = not self.options.outgoing
        for attempt in range(2):
            while len(frames) < 1024:
                try:
                    n, addr = sock.recvfrom_into(buf)
                except BlockingIOError:
                    break
                if skip_outgoing and addr[2] == PACKET_OUTGOING:
                    self.outgoing_skipped += 1
                    continue
                # Receipt time: the plain socket carries no kernel timestamp without recvmsg's
                # ancillary data, which would cost more than the microseconds it corrects.
                frames.append((time.time(), bytes(buf[:n])))
            if frames or attempt:
                break
            self._wait(timeout_s)
        return frames

    def _wait(self, timeout_s: float) -> None:
        try:
            self._poll.poll(max(0, int(timeout_s * 1000)))
        except InterruptedError:
            pass

    def kernel_stats(self) -> KernelStats:
        """Add what the kernel counted since the last call (PACKET_STATISTICS resets on read)."""
        raw = self._sock.getsockopt(SOL_PACKET, PACKET_STATISTICS, _stats_v3.size)
        packets, drops = _stats_v3.unpack(raw.ljust(_stats_v3.size, b"\0"))[:2]
        # The kernel counts drops into tp_packets: it is every frame that passed the filter.
        self.stats.packets += packets
        self.stats.drops += drops
        return self.stats

    def close(self) -> None:
        """Read the last statistics, unmap the ring and close the socket."""
        if self._sock.fileno() < 0:
            return
        try:
            self.kernel_stats()
        except OSError as exc:
            if exc.errno != errno.EBADF:
                raise
        self._poll.unregister(self._sock.fileno())
        self._release(self._sock)

    def _release(self, sock: socket.socket) -> None:
        if self._ring is not None:
            self._ring.close()
            self._ring = None
        sock.close()
