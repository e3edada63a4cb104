"""[[sources.capture]]: live packet capture on an interface of the agent host."""

from __future__ import annotations

from typing import Literal, Self

from pydantic import Field, model_validator

from watchstander.connectors.live import MAX_SNAPLEN, BpfError, compile_bpf

from .base import Frozen


class CaptureSource(Frozen):
    """One interface to capture on, with an optional BPF filter (tcpdump syntax, compiled by libpcap)."""

    interface: str = Field(pattern=r"^[A-Za-z][A-Za-z0-9/._:-]{0,63}$")
    bpf: str = Field("", max_length=2000, description="tcpdump filter syntax; needs libpcap (Debian libpcap0.8)")
    snaplen: int = Field(65535, ge=64, le=MAX_SNAPLEN, description="bytes kept of each frame")
    ring_mb: int = Field(32, ge=1, le=1024, description="the kernel ring (or receive buffer) in MiB")
    block_kb: int = Field(1024, ge=4, le=65536, description="one ring block, handed over whole")
    block_timeout_ms: int = Field(50, ge=1, le=10000, description="a partly filled block is handed over after")
    promiscuous: bool = False
    outgoing: bool = Field(True, description="also frames this host sends on the interface")
    method: Literal["ring", "recv"] = Field("ring", description="TPACKET_V3 ring, or plain drained recv")

    @model_validator(mode="after")
    def _filter_compiles(self) -> Self:
        # Checked here so that `config check` refuses a bad filter; compiled again for the
        # interface's own link type when the capture starts.
        if self.bpf.strip():
            try:
                compile_bpf(self.bpf)
            except BpfError as exc:
                raise ValueError(f"capture on {self.interface}: {exc}") from exc
        return self
