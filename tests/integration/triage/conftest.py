"""A scripted OpenAI-compatible chat server on loopback, and factories for triage services and incidents."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from watchstander.agent.assets import AssetIndex
from watchstander.agent.config.triage import TriageConfig
from watchstander.agent.detection.detectors.registry import detector_profiles
from watchstander.agent.models import Finding, Incident, TriageVerdict
from watchstander.agent.triage.baseline import BaselineAnalyst
from watchstander.agent.triage.service import TriageService
from watchstander.playbooks import load_library

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=timezone.utc)
API_KEY = "sk-test-ONLY-IN-THE-KEY-FILE-5f1c9a"
MODEL_VERSION = "scripted-model-2026-11"
PROXY_VARS = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy",
              "OPENAI_API_KEY", "OPENAI_BASE_URL", "OPENAI_PROXY", "OPENAI_ORG_ID")


@dataclass
class Reply:
    """One scripted response: status, body, and how long to wait before sending it."""

    status: int = 200
    body: bytes = b""
    delay_s: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)


Behaviour = Callable[[dict[str, Any]], Reply]


def completion(content: str, prompt_tokens: int = 321, completion_tokens: int = 87) -> bytes:
    """An OpenAI chat.completion body carrying `content`."""
    return json.dumps({
        "id": "chatcmpl-scripted", "object": "chat.completion", "created": 1795000000,
        "model": MODEL_VERSION, "system_fingerprint": "fp_scripted",
        "choices": [{"index": 0, "finish_reason": "stop",
                     "message": {"role": "assistant", "content": content}}],
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                  "total_tokens": prompt_tokens + completion_tokens},
    }).encode()


def answer(content: dict[str, Any] | str, *, delay_s: float = 0.0, **usage: int) -> Behaviour:
    """Answer with `content` (a dict is sent as its JSON text)."""
    text = content if isinstance(content, str) else json.dumps(content)
    return lambda _req: Reply(200, completion(text, **usage), delay_s)


def dynamic(compose: Callable[[dict[str, Any]], dict[str, Any]]) -> Behaviour:
    """Answer each request with the JSON of `compose(request body)`."""
    return lambda req: Reply(200, completion(json.dumps(compose(req))))


def status(code: int, **headers: str) -> Behaviour:
    """Answer with an OpenAI-style error body and HTTP `code`."""
    body = json.dumps({"error": {"message": f"scripted {code}", "type": "server_error", "code": code}}).encode()
    return lambda _req: Reply(code, body, 0.0, dict(headers))


class ScriptedServer:
    """POST /v1/chat/completions (and /chat/completions) answered by a queue of behaviours."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self._script: list[Behaviour] = []
        self._repeat: Behaviour | None = None
        self._lock = threading.Lock()
        self.release = threading.Event()  # wakes slow replies at teardown
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
                pass

            def do_POST(self) -> None:  # noqa: N802 - stdlib name
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                if self.path not in ("/v1/chat/completions", "/chat/completions"):
                    self._send(Reply(404, b'{"error": {"message": "no such path"}}'))
                    return
                body = json.loads(raw)
                with server._lock:
                    server.requests.append({"path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()}, "body": body})
                    behaviour = server._script.pop(0) if server._script else server._repeat
                reply = behaviour(body) if behaviour else Reply(500, b'{"error": {"message": "unscripted"}}')
                if reply.delay_s:
                    server.release.wait(reply.delay_s)
                self._send(reply)

            def _send(self, reply: Reply) -> None:
                try:
                    self.send_response(reply.status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(reply.body)))
                    for k, v in reply.headers.items():
                        self.send_header(k, v)
                    self.end_headers()
                    self.wfile.write(reply.body)
                except OSError:
                    pass  # the client gave up (timeout); nothing to tell it

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        host, port = self.httpd.server_address[:2]
        self.url = f"http://{host}:{port}/v1"
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="scripted-llm", daemon=True)

    def script(self, *behaviours: Behaviour, then: Behaviour | None = None) -> None:
        """Queue behaviours for the next requests; `then` answers every request after them."""
        with self._lock:
            self._script.extend(behaviours)
            self._repeat = then

    @property
    def calls(self) -> int:
        """How many chat requests arrived."""
        return len(self.requests)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()
        self._thread.join(5)


@pytest.fixture
def llm_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[ScriptedServer]:
    """A scripted OpenAI-compatible server on 127.0.0.1, with proxies and OpenAI env vars cleared."""
    for var in PROXY_VARS:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("NO_PROXY", "*")
    server = ScriptedServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    """The API key in a file only its owner can read."""
    path = tmp_path / "triage-api-key"
    path.write_text(API_KEY + "\n", encoding="utf-8")
    path.chmod(0o600)
    return path


@pytest.fixture
def catalogue() -> list[dict[str, Any]]:
    """The shipped playbooks as the model sees them (all treated as approved here)."""
    return load_library().describe_for_model(lambda _p: True)


@pytest.fixture
def make_service(llm_server: ScriptedServer, key_file: Path,
                 catalogue: list[dict[str, Any]]) -> Iterator[Callable[..., TriageService]]:
    """Factory: a TriageService talking through the real ChatOpenAI to the scripted server."""
    made: list[TriageService] = []

    def make(**overrides: Any) -> TriageService:
        settings: dict[str, Any] = {"model": "openai:scripted-model", "base_url": llm_server.url,
                                    "timeout_s": 3.0, "api_key_file": key_file}
        settings.update(overrides)
        svc = TriageService(TriageConfig(**settings), playbooks_for_model=lambda: catalogue,
                            clock=lambda: NOW, env={})
        made.append(svc)
        return svc

    yield make
    for svc in made:
        svc.close()


def make_incident(attacker: str = "198.51.100.23", victim: str = "10.20.0.22", *, count: int = 40,
                  refs: tuple[str, ...] = ("auth.log:12", "auth.log:13"), **attributes: Any) -> Incident:
    """A one-finding SSH brute-force incident."""
    t = NOW.timestamp()
    f = Finding("bruteforce", "Password guessing against SSH", "high", {"attacker": attacker, "victim": victim},
                ("T1110.001",), t - 900, t - 60, count=count, counts={"failures": count},
                attributes=dict(attributes), evidence=list(refs))
    return Incident(f"fp-{attacker}", attacker, f.title, "high", f.first_seen, f.last_seen, {f.key: f})


def baseline_for(incident: Incident) -> TriageVerdict:
    """The baseline analyst's verdict at NOW with no assets configured."""
    return BaselineAnalyst(AssetIndex(()), NOW, detector_profiles()).triage(incident)


GOOD = {
    "severity": "high", "confidence": 0.82, "disposition": "likely_true_positive",
    "techniques": ["T1110.001"], "summary": "SSH password guessing from 198.51.100.23.",
    "rationale": "40 failed logins in 15 minutes from one outside address.",
    "evidence_refs": ["auth.log:12"],
    "recommended_actions": [{"playbook": "block-address-nftables",
                             "parameters": {"firewall": "fw-1", "address": "198.51.100.23", "minutes": 60},
                             "justification": "stop the guessing"}],
}


@dataclass(frozen=True)
class Kit:
    """Helpers the tests reach through one fixture (test modules cannot import conftest)."""

    answer: Callable[..., Behaviour] = answer
    status: Callable[..., Behaviour] = status
    dynamic: Callable[..., Behaviour] = dynamic
    incident: Callable[..., Incident] = make_incident
    baseline: Callable[[Incident], TriageVerdict] = baseline_for
    api_key: str = API_KEY
    model_version: str = MODEL_VERSION
    now: datetime = NOW

    @staticmethod
    def good(**changes: Any) -> dict[str, Any]:
        """A well-formed answer for make_incident()'s incident, with `changes` applied."""
        return json.loads(json.dumps(GOOD)) | changes


@pytest.fixture
def kit() -> Kit:
    """Reply builders, incident and baseline factories, and the test constants."""
    return Kit()
