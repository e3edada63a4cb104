"""Who gets in: client certificates verified by TLS, mapped to principals and roles; refusals audited."""

from __future__ import annotations

import datetime
import ssl
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from support.console_kit import ConsoleSite

from watchstander.agent.config.console import ConsoleConfig
from watchstander.agent.console.demo_pki import DEMO_PEOPLE, DemoPKI
from watchstander.agent.console.identity import ConsoleUsers, Principal, Refusal

pytestmark = pytest.mark.integration

OPERATOR, APPROVER, APPROVER_2, COMPLIANCE, UNMAPPED = (p.upn for p in DEMO_PEOPLE)


def _records(site: ConsoleSite, action: str) -> list[tuple[str, str, dict[str, object]]]:
    return [(r.actor, r.subject, r.data) for r in site.app.audit.records() if r.action == action]


def test_a_mapped_certificate_is_its_principal_with_its_roles(site: ConsoleSite) -> None:
    with site.client("operator") as http:
        page = http.get("/incidents")
    assert page.status_code == 200
    assert f'data-principal="{OPERATOR}"' in page.text
    assert "operator, viewer" in page.text


def test_an_unmapped_certificate_gets_403_and_an_audit_record(site: ConsoleSite) -> None:
    with site.client("unmapped") as http:
        first = http.get("/incidents")
        again = http.get("/suggestions")
    assert first.status_code == again.status_code == 403
    assert 'data-testid="forbidden"' in first.text and UNMAPPED in first.text
    refused = _records(site, "console.refused")
    # Audited once per certificate and reason a minute, not once per request.
    assert len(refused) == 1
    actor, subject, data = refused[0]
    assert (actor, subject, data["claimed"], data["path"]) == (
        "watchstander:console", f"console:{UNMAPPED}", UNMAPPED, "/incidents")


def test_no_certificate_fails_the_handshake(site: ConsoleSite) -> None:
    with site.client(None) as http, pytest.raises((httpx.ConnectError, httpx.RemoteProtocolError, httpx.ReadError)):
        http.get("/incidents")


def test_a_certificate_from_another_ca_fails_the_handshake(site: ConsoleSite, tmp_path: Path) -> None:
    other = DemoPKI(tmp_path / "other", name="Someone else's CA")
    stranger = other.client("stranger", cn="x", upn=OPERATOR)  # claims the operator's UPN
    context = ssl.create_default_context(cafile=str(site.pki.ca))
    context.load_cert_chain(str(stranger.cert), str(stranger.key))
    with httpx.Client(base_url=site.url, verify=context) as http, \
            pytest.raises((httpx.ConnectError, httpx.RemoteProtocolError, httpx.ReadError)):
        http.get("/incidents")


def test_roles_are_enforced_per_route(site: ConsoleSite) -> None:
    with site.client("operator") as http:
        assert http.get("/health").status_code == 403  # admin only
        assert http.get("/suggestions").status_code == 200
        assert http.get("/compliance/export?format=csv").status_code == 403  # compliance only
    with site.client("compliance") as http:
        assert http.get("/compliance/export?format=csv").status_code == 200
        page = http.get("/suggestions")
        token = page.text.split('name="csrf_token" value="')[1][:64] if 'name="csrf_token"' in page.text else "x"
        refused = http.post("/suggestions/1/approve", data={"csrf_token": token, "justification": "x"})
    assert refused.status_code == 403
    assert [(a, s) for a, s, _ in _records(site, "console.denied")] == [
        (f"console:{COMPLIANCE}", "console:/suggestions/1/approve")]


def test_admin_sees_health_with_the_daemon_provider(site_factory: Callable[..., ConsoleSite]) -> None:
    from watchstander.agent.console.health import HealthSnapshot, SourceHealth

    snapshot = HealthSnapshot([SourceHealth("syslog.udp:0.0.0.0:514", {"messages": 42, "dropped": 3})],
                              {"events": 7}, {"flushes": 5, "last_flush_duration_s": 0.25}, {"model_calls": 2})
    site = site_factory(extra_roles={"1000000001@mil": ["admin"]}, health=lambda: snapshot)
    with site.client("operator") as http:
        page = http.get("/health")
    assert page.status_code == 200
    assert "syslog.udp:0.0.0.0:514" in page.text and "dropped=3" in page.text and "model_calls" in page.text


def test_a_revoked_certificate_is_refused_after_the_crl_is_reloaded(site_factory: Callable[..., ConsoleSite],
                                                                  tmp_path: Path) -> None:
    site = site_factory(start=False)
    pki = DemoPKI(tmp_path / "revocable")
    alice = pki.client("alice", cn="ALICE", upn="1234500001@mil")
    now = datetime.datetime.now(datetime.UTC)
    crl = pki.crl(stem="site", issued=now - datetime.timedelta(hours=1))
    site.console_config = ConsoleConfig(**{**site.console_config.model_dump(), "client_ca": [pki.ca_file],
                                           "crl": crl, "roles": {"1234500001@mil": ["viewer"]}})
    site.extra_people["alice"] = alice
    site.start()
    with site.client("alice") as http:
        assert http.get("/incidents").status_code == 200
    pki.crl([alice.serial], stem="site", issued=now)  # a newer CRL from the same CA: OpenSSL uses it
    site.reload()
    with site.client("alice") as http, pytest.raises((httpx.ConnectError, httpx.RemoteProtocolError, httpx.ReadError)):
        http.get("/incidents")


def test_principal_from_follows_the_configured_order(tmp_path: Path) -> None:
    pki = DemoPKI(tmp_path)
    cac = pki.client("cac", cn="DOE.JANE.1234567890", upn="1234567890@mil", email="jane.doe.civ@mail.mil")
    der = ssl.PEM_cert_to_DER_cert(cac.cert.read_text())

    def who(**config: object) -> Principal | Refusal:
        return ConsoleUsers(ConsoleConfig(**config)).from_certificate(der)  # type: ignore[arg-type]

    upn = who(roles={"1234567890@MIL": ["approver"]})
    assert isinstance(upn, Principal) and (upn.name, upn.source, upn.actor) == (
        "1234567890@MIL", "upn", "console:1234567890@MIL")
    assert upn.has("approver") and upn.has("viewer") and not upn.has("operator")
    email = who(roles={"jane.doe.civ@mail.mil": ["compliance"]}, principal_from=["email", "cn"])
    assert isinstance(email, Principal) and email.source == "email"
    cn = who(roles={"DOE.JANE.1234567890": ["viewer"]}, principal_from=["cn"])
    assert isinstance(cn, Principal) and cn.source == "cn"
    # The UPN is tried first and is unmapped; the e-mail is mapped: the fallback order finds it.
    fallback = who(roles={"jane.doe.civ@mail.mil": ["viewer"]})
    assert isinstance(fallback, Principal) and fallback.source == "email"
    refused = who(roles={"someone@else": ["viewer"]})
    assert isinstance(refused, Refusal) and refused.claimed == "1234567890@mil"


def test_proxy_mode_trusts_the_header_only_from_the_proxy(site_factory: Callable[..., ConsoleSite]) -> None:
    trusted = site_factory(console={"auth": "proxy", "proxy_addresses": ["127.0.0.1/32"],
                                    "roles": {"jdoe": ["operator"]}})
    with httpx.Client(base_url=trusted.url, verify=ssl.create_default_context(cafile=str(trusted.pki.ca))) as http:
        assert http.get("/incidents", headers={"X-Remote-User": "jdoe"}).status_code == 200
        assert http.get("/incidents", headers={"X-Remote-User": "mallory"}).status_code == 403
        assert http.get("/incidents").status_code == 403
    elsewhere = site_factory(console={"auth": "proxy", "proxy_addresses": ["10.9.9.9"],
                                      "roles": {"jdoe": ["operator"]}})
    with httpx.Client(base_url=elsewhere.url, verify=ssl.create_default_context(cafile=str(elsewhere.pki.ca))) as http:
        refused = http.get("/incidents", headers={"X-Remote-User": "jdoe"})
    assert refused.status_code == 403 and "not a trusted proxy" in refused.text


def test_config_errors_name_the_key() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="client_ca"):
        ConsoleConfig(enabled=True, cert_file=Path("/x.crt"), key_file=Path("/x.key"))
    with pytest.raises(ValidationError, match="proxy_addresses"):
        ConsoleConfig(enabled=True, cert_file=Path("/x.crt"), key_file=Path("/x.key"), auth="proxy")
    with pytest.raises(ValidationError, match="not a principal name"):
        ConsoleConfig(roles={"bad name": ["viewer"]})
    with pytest.raises(ValidationError):
        ConsoleConfig(roles={"ok@mil": ["superuser"]})
    with pytest.raises(ValidationError, match="HOST:PORT"):
        ConsoleConfig(listen="8443")
