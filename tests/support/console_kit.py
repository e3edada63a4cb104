"""A real console site for tests and benchmarks: a SQLite store, an App with approved playbooks, a demo PKI,
and the console served by uvicorn with TLS on 127.0.0.1 from its own event-loop thread.

    site = ConsoleSite.create(tmp_path)            # store, App, PKI (CA, server, people), console config
    site.start()                                    # https://127.0.0.1:PORT/, client certificates required
    with site.client("approver") as http: ...       # httpx.Client presenting that person's certificate
    site.incident(...); site.suggest(...)           # real rows through the store and the review queue
    site.stop()
"""

from __future__ import annotations

import asyncio
import re
import shutil
import ssl
import threading
import tomllib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from support.site_policy import SITE_POLICY_TOML
from watchstander.agent.app.wiring import App, PlaybookCatalogue
from watchstander.agent.config.console import ConsoleConfig
from watchstander.agent.config.load import validate_config
from watchstander.agent.console.demo_pki import DEMO_PEOPLE, DemoCertificates, make_demo_pki
from watchstander.agent.console.server import ConsoleServer
from watchstander.agent.models import Finding, Incident, Provenance, RecommendedAction, TriageVerdict
from watchstander.agent.store.engine import Store
from watchstander.agent.store.incidents import IncidentStore
from watchstander.agent.store.schema import open_store
from watchstander.agent.store.suggestions import Suggestion
from watchstander.playbooks import library_dir, load_library

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)

_CATALOGUES: dict[str, PlaybookCatalogue] = {}
CSRF_INPUT = re.compile(r'name="csrf_token" value="([0-9a-f]{64})"')


class MovableClock:
    """A clock tests can move forward."""

    def __init__(self, at: datetime = NOW) -> None:
        self.now = at

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kwargs: float) -> None:
        """Move forward by a timedelta's keyword arguments."""
        self.now += timedelta(**kwargs)


def csrf_token(html: str) -> str:
    """The CSRF token a page's forms carry."""
    found = CSRF_INPUT.search(html)
    assert found is not None, "the page has no CSRF token"
    return found.group(1)


@dataclass
class ConsoleSite:
    """Everything a console test needs, built in a folder."""

    folder: Path
    store: Store
    app: App
    clock: MovableClock
    pki: DemoCertificates
    console_config: ConsoleConfig
    server: ConsoleServer | None = None
    _loop: asyncio.AbstractEventLoop | None = None
    _thread: threading.Thread | None = None
    extra_people: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def create(cls, folder: Path, *, clock: MovableClock | None = None, extra_roles: dict[str, Sequence[str]] | None = None,
               console: dict[str, Any] | None = None, pki: DemoCertificates | None = None,
               template: Path | None = None) -> ConsoleSite:
        """A store and App in `folder`, the shipped library approved, demo certificates, a console config.

        `template`: a folder a previous site was created in (and stopped); its migrated store, seal key and
        approved library are copied instead of made again (migrations and approvals take seconds).
        """
        clock = clock or MovableClock()
        if template is not None:
            shutil.copytree(template, folder, dirs_exist_ok=True, ignore=shutil.ignore_patterns("pki", "library"))
        library = (template or folder) / "library"
        fresh = not library.exists()
        if fresh:
            shutil.copytree(library_dir(), library)
        db = folder / "w.db"
        toml_text = SITE_POLICY_TOML + f'\n[store]\nurl = "sqlite:///{db}"\n[playbooks]\ndirs = ["{library}"]\n'
        config = validate_config(tomllib.loads(toml_text))
        store = open_store(f"sqlite:///{db}")
        app = App(config, store, clock)
        # One parsed catalogue per library folder for every site in the process (it still reloads on change).
        app.playbooks = _CATALOGUES.setdefault(str(library), app.playbooks)
        if fresh:
            for playbook in load_library([library], include_shipped=False):
                app.approvals.approve_with(playbook, ("uid:0:root", "uid:65534:nobody"), "test setup")
        certs = pki or make_demo_pki(folder / "pki")
        roles: dict[str, Any] = {p.upn: list(p.roles) for p in DEMO_PEOPLE if p.roles}
        roles.update({k: list(v) for k, v in (extra_roles or {}).items()})
        settings: dict[str, Any] = {"enabled": True, "listen": "127.0.0.1:0", "cert_file": certs.server.cert,
                                    "key_file": certs.server.key, "client_ca": [certs.ca], "roles": roles}
        settings.update(console or {})
        return cls(folder, store, app, clock, certs, ConsoleConfig(**settings))

    # ------------------------------------------------------------------ serving

    def start(self, *, poll_s: float = 0.2, health: Callable[[], Any] | None = None,
              runs_service: Callable[[], Any] | None = None) -> ConsoleServer:
        """Serve the console from a loop thread; returns the started server."""
        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=loop.run_forever, name="console-test-loop", daemon=True)
        thread.start()
        self._loop, self._thread = loop, thread

        async def make() -> ConsoleServer:
            server = ConsoleServer(self.app, self.console_config, health=health, runs_service=runs_service,
                                   poll_s=poll_s)
            await server.start()
            return server

        self.server = asyncio.run_coroutine_threadsafe(make(), loop).result(20)
        return self.server

    def reload(self) -> None:
        """What SIGHUP does: reload the CRL (on the server's loop)."""
        assert self.server is not None and self._loop is not None
        self._loop.call_soon_threadsafe(self.server.reload)

    def stop(self) -> None:
        """Stop the console and its loop thread, then close the store."""
        if self.server is not None and self._loop is not None:
            asyncio.run_coroutine_threadsafe(self.server.stop(), self._loop).result(30)
            self.server = None
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
            self._loop.close()
            self._loop = None
        self.app.close()
        self.store.close()

    @property
    def url(self) -> str:
        """The console's base URL."""
        assert self.server is not None
        return self.server.url.rstrip("/")

    def client(self, person: str | None, **kwargs: Any) -> httpx.Client:
        """An HTTPS client trusting the demo CA, presenting `person`'s certificate (None: no certificate)."""
        issued = self.pki.people.get(person) if person else None
        if person and issued is None:
            issued = self.extra_people[person]
        context = ssl.create_default_context(cafile=str(self.pki.ca))
        if issued is not None:
            context.load_cert_chain(str(issued.cert), str(issued.key))
        return httpx.Client(base_url=self.url, verify=context, timeout=10.0, follow_redirects=False, **kwargs)

    # ------------------------------------------------------------------ data

    def incident(self, title: str = "SSH password guessing", *, entity: str = "203.0.113.9", severity: str = "high",
                 evidence: Sequence[str] = (), attributes: dict[str, Any] | None = None, detector: str = "bruteforce",
                 last_seen: float | None = None, verdict: TriageVerdict | None = None, key: str | None = None,
                 sensors: Sequence[str] = ()) -> int:
        """Store one incident with one finding (and a verdict when given), seen by `sensors`; returns its id."""
        seen = last_seen if last_seen is not None else self.clock().timestamp()
        finding = Finding(detector, title, severity, {"attacker": entity}, ("T1110",), seen - 60, seen, 12,  # type: ignore[arg-type]
                          attributes=attributes or {}, evidence=list(evidence))
        inc = Incident(key or f"fp-{title}-{entity}-{seen}", entity, title, severity, seen - 60, seen,  # type: ignore[arg-type]
                       {finding.key: finding})
        incidents = IncidentStore(self.store, self.clock)
        with self.store.begin() as conn:
            inc.id = incidents.upsert_incident(conn, inc)
            incidents.upsert_findings(conn, inc.id, inc.findings.values())
            for name in sensors:
                IncidentStore(self.store, self.clock, sensor=name).upsert_findings(conn, inc.id, inc.findings.values())
            if verdict is not None:
                inc.verdict = verdict
                incidents.set_verdict(conn, inc)
        return inc.id

    def suggest(self, incident_id: int, playbook: str = "block-address-nftables", **params: Any) -> Suggestion:
        """One pending suggestion from the guard and the review queue, for a model's recommendation."""
        if not params:
            params = {"address": "203.0.113.9"} if playbook == "block-address-nftables" else {"if_index": 7}
        action = RecommendedAction(playbook=playbook, parameters=params, justification="test")
        inc = Incident(f"fp-s-{incident_id}", "203.0.113.9", "guessing", "high", 0.0, 10.0, {}, id=incident_id)
        out = self.app.review_queue().review(inc, verdict(action), actor="test")
        (created,) = out.created
        return created


def verdict(*actions: RecommendedAction, summary: str = "test", rationale: str = "test") -> TriageVerdict:
    """A high-severity model verdict recommending `actions`."""
    return TriageVerdict(
        severity="high", confidence=0.8, disposition="likely_true_positive", summary=summary, rationale=rationale,
        recommended_actions=tuple(actions),
        provenance=Provenance(analyst="model", analyst_version="test", provider="openai", model="test-model",
                              prompt_sha256="a" * 64, response_sha256="b" * 64),
    )
