"""The demo's console: its PKI, config and the instructions it prints are enough to get in."""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path

import httpx
import pytest
from support.console_kit import ConsoleSite

from watchstander.agent.console.demo import demo_console_config, describe_demo
from watchstander.agent.console.demo_pki import DEMO_PEOPLE, P12_PASSWORD
from watchstander.agent.console.server import ConsoleServer

pytestmark = pytest.mark.integration


def test_the_demo_config_lets_the_demo_people_in(tmp_path: Path, site: ConsoleSite) -> None:
    from cryptography.hazmat.primitives.serialization import pkcs12

    certs = site.pki
    config = demo_console_config(certs, listen="127.0.0.1:0")
    assert {p.upn for p in DEMO_PEOPLE if p.roles} == set(config.roles) and config.crl == certs.crl

    async def run() -> tuple[str, list[int]]:
        server = ConsoleServer(site.app, config)
        await server.start()
        try:
            text = describe_demo(server, certs)
            statuses = []
            for who in ("operator", "unmapped"):
                context = ssl.create_default_context(cafile=str(certs.ca))
                context.load_cert_chain(str(certs.people[who].cert), str(certs.people[who].key))
                async with httpx.AsyncClient(base_url=server.url, verify=context) as http:
                    statuses.append((await http.get("/incidents")).status_code)
            return text, statuses
        finally:
            await server.stop()

    text, statuses = asyncio.run(run())
    assert statuses == [200, 403]
    assert "https://127.0.0.1:" in text and str(certs.ca) in text and "operator.p12" in text
    key, cert, _ = pkcs12.load_key_and_certificates(certs.people["approver"].p12.read_bytes(), P12_PASSWORD.encode())
    assert key is not None and cert is not None
