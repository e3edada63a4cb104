"""Syslog over TLS (RFC 5425): octet-counted frames, TLS 1.2+, optional client certificates."""

from __future__ import annotations

import asyncio
import ssl
import warnings
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError
from support.syslog_intake import Collector, bsd, octet, until
from support.tlscerts import Issued, TestCA

from watchstander.agent.app.wiring import App
from watchstander.agent.config.load import validate_config
from watchstander.agent.config.syslog_intake import TlsIntake
from watchstander.agent.daemon.sources import Sink
from watchstander.agent.daemon.syslog import SyslogTls, tls_sources
from watchstander.agent.store.schema import open_store

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def pki(tmp_path_factory: Any) -> dict[str, Any]:
    """A CA with a server and a client certificate, and a stranger CA with its own client."""
    d = tmp_path_factory.mktemp("pki")
    ca, other = TestCA(d / "ca"), TestCA(d / "other", "Stranger CA")
    return {"ca": ca, "server": ca.issue("server", True), "client": ca.issue("client", False),
            "stranger": other.issue("stranger", False)}


def _client_ctx(pki: dict[str, Any], cert: Issued | None = None) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(pki["ca"].path))
    if cert is not None:
        ctx.load_cert_chain(cert.cert, cert.key)
    return ctx


async def _send(port: int, ctx: ssl.SSLContext, payload: bytes) -> bytes:
    """Send over TLS, then read until the server closes (or 0.5 s): what the server sent back."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=ctx, server_hostname="localhost")
    try:
        writer.write(payload)
        await writer.drain()
        try:
            return await asyncio.wait_for(reader.read(), 0.5)
        except TimeoutError:
            return b""
    finally:
        writer.close()


def _run(clock: Any, pki: dict[str, Any], scenario: Any, client_ca: bool) -> tuple[SyslogTls, Collector]:
    got = Collector()
    tls = TlsIntake(listen=("127.0.0.1:0",), cert_file=pki["server"].cert, key_file=pki["server"].key,
                    client_ca_file=pki["ca"].path if client_ca else None)
    source = SyslogTls("127.0.0.1:0", clock, 64 * 1024, None, tls)

    async def main() -> None:
        await source.start(Sink(asyncio.get_running_loop(), got))
        try:
            await scenario(source, source.bound[0][1], got)
        finally:
            await source.stop()

    asyncio.run(main())
    return source, got


def test_octet_counted_messages_over_tls_all_arrive(clock: Any, pki: dict[str, Any]) -> None:
    """100 frames, of mixed sizes, over one TLS connection: 100 messages."""
    msgs = [bsd(i) + b" " + b"p" * (i * 37 % 3000) for i in range(100)]

    async def scenario(source: SyslogTls, port: int, got: Collector) -> None:
        await _send(port, _client_ctx(pki), b"".join(octet(m) for m in msgs))
        await until(lambda: len(got.events) >= 100)

    source, got = _run(clock, pki, scenario, client_ca=False)
    assert sorted(r.split(" ")[1] for r in got.raws()) == sorted(str(i) for i in range(100))
    assert source.counters["connections"] == 1 and source.counters["messages"] == 100


def test_client_certificates_are_required_when_a_client_ca_is_set(clock: Any, pki: dict[str, Any]) -> None:
    """No certificate, or one from another CA: refused and counted; the CA's client is served."""

    async def scenario(source: SyslogTls, port: int, got: Collector) -> None:
        for cert in (None, pki["stranger"]):
            with pytest.raises((ssl.SSLError, ConnectionError)):
                await _send(port, _client_ctx(pki, cert), octet(bsd(666)))
                raise ConnectionError("refused after the handshake (TLS 1.3 reports it on the first read)")
        await _send(port, _client_ctx(pki, pki["client"]), octet(bsd(1)))
        await until(lambda: len(got.events) >= 1 and source.counters["tls_failed"] >= 2)

    source, got = _run(clock, pki, scenario, client_ca=True)
    assert got.raws() == ["message 1"]
    assert source.counters["tls_failed"] == 2


def test_tls_older_than_1_2_is_refused(clock: Any, pki: dict[str, Any]) -> None:
    """A client limited to TLS 1.1 cannot connect."""

    async def scenario(source: SyslogTls, port: int, got: Collector) -> None:
        assert source.ssl_context().minimum_version == ssl.TLSVersion.TLSv1_2
        ctx = _client_ctx(pki)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # that is the point: TLS 1.1 is obsolete
            ctx.minimum_version = ssl.TLSVersion.TLSv1
            ctx.maximum_version = ssl.TLSVersion.TLSv1_1
        with pytest.raises((ssl.SSLError, ConnectionError)):
            await _send(port, ctx, octet(bsd(1)))

    _, got = _run(clock, pki, scenario, client_ca=False)
    assert got.events == []


def test_lf_framing_over_tls_is_a_framing_error(clock: Any, pki: dict[str, Any]) -> None:
    """RFC 5425 mandates octet counting: a bare line closes the connection, counted."""

    async def scenario(source: SyslogTls, port: int, got: Collector) -> None:
        assert await _send(port, _client_ctx(pki), bsd(1) + b"\n") == b""
        await until(lambda: source.counters["framing_errors"] == 1)

    _, got = _run(clock, pki, scenario, client_ca=False)
    assert got.events == []


def test_the_factory_builds_tls_listeners_from_config(tmp_path: Path, clock: Any, pki: dict[str, Any]) -> None:
    """[sources.tls] listen/cert_file/key_file/client_ca_file; listen without a certificate is refused."""
    tls = {"listen": ["127.0.0.1:0"], "cert_file": str(pki["server"].cert), "key_file": str(pki["server"].key),
           "client_ca_file": str(pki["ca"].path)}
    cfg = validate_config({"store": {"url": f"sqlite:///{tmp_path / 'w.db'}"}, "sources": {"tls": tls}})
    app = App(cfg, open_store(cfg.store.resolved_url()), clock)
    try:
        [source] = tls_sources(app)
        assert isinstance(source, SyslogTls) and source.tls.client_ca_file == pki["ca"].path
        assert source.ssl_context().verify_mode == ssl.CERT_REQUIRED
    finally:
        app.store.close()
    with pytest.raises(ValidationError):
        TlsIntake(listen=("127.0.0.1:6514",))
