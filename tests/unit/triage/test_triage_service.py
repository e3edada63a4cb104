"""TriageService over LangChain's fake chat model: builtin, cache, budget, repair, errors, policy, secrets."""

from __future__ import annotations

import logging
import os
from datetime import timedelta
from pathlib import Path

import pytest

from watchstander.agent.config.load import validate_config
from watchstander.agent.config.triage import TriageConfig
from watchstander.agent.errors import ConfigError
from watchstander.agent.triage.budget import TokenBudget
from watchstander.agent.triage.cache import evidence_version
from watchstander.agent.triage.credentials import check_provider_policy, load_api_key
from watchstander.agent.triage.service import TriageService

SECRET = "sk-unit-SECRET-7d2e40"


def test_builtin_is_the_baseline_alone_with_no_model(kit) -> None:
    def no_model(*_a: object) -> object:
        raise AssertionError("builtin must not build a model")

    svc = TriageService(TriageConfig(), playbooks_for_model=lambda: [], clock=lambda: kit.now,
                        chat_model_factory=no_model, env={})  # type: ignore[arg-type]
    inc = kit.incident()
    base = kit.baseline(inc)
    assert not svc.enabled
    assert svc.triage(inc, base, {}) is base
    svc.close()


def test_model_verdict_and_cache_by_fingerprint_and_evidence_version(kit, fake_service) -> None:
    svc, fake = fake_service(kit.reply(kit.good()), kit.reply(kit.good(severity="critical")))
    inc = kit.incident()
    first = svc.triage(inc, kit.baseline(inc), {})
    assert first.provenance.analyst == "model" and first.provenance.model_version == "fake-model-1"
    assert svc.triage(kit.incident(), kit.baseline(inc), {}) is first and fake.calls == 1
    grown = kit.incident(count=41)
    assert evidence_version(grown) != evidence_version(inc)
    assert svc.triage(grown, kit.baseline(grown), {}).severity == "critical" and fake.calls == 2


def test_malformed_answer_gets_one_repair_then_baseline(kit, fake_service) -> None:
    svc, fake = fake_service(kit.reply("not json"), kit.reply(kit.good(techniques=["T0000"])), kit.reply(kit.good()))
    inc = kit.incident()
    verdict = svc.triage(inc, kit.baseline(inc), {})
    assert fake.calls == 2
    assert verdict.provenance.analyst == "baseline"
    assert verdict.provenance.fallback_reason == "malformed after repair"
    assert verdict.provenance.input_tokens == 200 and verdict.provenance.response_sha256


def test_a_repair_that_works_is_used(kit, fake_service) -> None:
    svc, fake = fake_service(kit.reply("```json\n{\"severity\": \n```"), kit.reply(kit.good()))
    inc = kit.incident()
    assert svc.triage(inc, kit.baseline(inc), {}).provenance.analyst == "model"
    assert fake.calls == 2


def test_model_errors_fall_back_with_the_error_type(kit, fake_service, caplog) -> None:
    svc, _ = fake_service(RuntimeError(f"boom {SECRET}"))
    inc = kit.incident()
    with caplog.at_level(logging.WARNING):
        verdict = svc.triage(inc, kit.baseline(inc), {})
    assert verdict.provenance.fallback_reason == "error: RuntimeError"
    assert verdict.model_dump(exclude={"provenance"}) == kit.baseline(inc).model_dump(exclude={"provenance"})
    assert "RuntimeError" in caplog.text and "boom" not in caplog.text  # messages are not logged


def test_an_error_is_not_cached(kit, fake_service) -> None:
    svc, fake = fake_service(RuntimeError("down"), kit.reply(kit.good()))
    inc = kit.incident()
    assert svc.triage(inc, kit.baseline(inc), {}).provenance.analyst == "baseline"
    assert svc.triage(inc, kit.baseline(inc), {}).provenance.analyst == "model"
    assert fake.calls == 2


def test_token_budget_per_sliding_hour(kit, fake_service) -> None:
    now = [kit.now]
    answers = [kit.reply(kit.good(), input_tokens=3000, output_tokens=500) for _ in range(3)]
    svc, fake = fake_service(*answers, clock=lambda: now[0], tokens_per_hour=8000, max_tokens=1000)
    verdicts = []
    for i in range(3):
        inc = kit.incident(f"203.0.113.{i}")
        verdicts.append(svc.triage(inc, kit.baseline(inc), {}))
    assert [v.provenance.fallback_reason for v in verdicts] == [None, None, "budget exceeded"]
    assert fake.calls == 2
    now[0] = kit.now + timedelta(minutes=61)
    inc = kit.incident("203.0.113.2")
    assert svc.triage(inc, kit.baseline(inc), {}).provenance.analyst == "model"


def test_budget_window_slides() -> None:
    t = [0.0]

    class _Clock:
        def __call__(self):  # type: ignore[no-untyped-def]
            from datetime import datetime, timezone
            return datetime.fromtimestamp(t[0], timezone.utc)

    budget = TokenBudget(100, _Clock())
    first = budget.reserve(60)
    assert first is not None and budget.reserve(60) is None
    budget.settle(first, 30)
    t[0] = 1800.0
    assert budget.reserve(60) is not None and budget.used() == 90
    t[0] = 3600.0
    assert budget.used() == 60  # the first entry left the window
    assert TokenBudget(None, _Clock()).reserve(10**9) is not None


def test_severity_may_not_drop_below_baseline_unless_allowed(kit, fake_service) -> None:
    inc = kit.incident()
    base = kit.baseline(inc)
    svc, _ = fake_service(kit.reply(kit.good(severity="info", disposition="benign")))
    held = svc.triage(inc, base, {})
    assert held.severity == base.severity and held.disposition == "benign"
    assert "Severity held at the baseline" in held.rationale
    svc2, _ = fake_service(kit.reply(kit.good(severity="info")), allow_downgrade=True)
    assert svc2.triage(inc, base, {}).severity == "info"


def test_busy_workers_fall_back_at_once(kit, fake_service) -> None:
    import threading

    gate = threading.Event()

    def slow_playbooks() -> list:  # type: ignore[type-arg]
        gate.wait(5)
        return []

    svc, _ = fake_service(kit.reply(kit.good()), timeout_s=0.2, max_concurrent=1)
    svc._playbooks = slow_playbooks  # the catalogue lookup stands in for a hung call
    a, b = kit.incident("203.0.113.1"), kit.incident("203.0.113.2")
    assert svc.triage(a, kit.baseline(a), {}).provenance.fallback_reason == "timeout"
    assert svc.triage(b, kit.baseline(b), {}).provenance.fallback_reason == "busy"
    gate.set()


@pytest.mark.parametrize(("settings", "key"), [
    ({"model": "anthropic:claude", "denied_providers": ["Anthropic"]}, "triage.denied_providers"),
    ({"model": "openai:m", "allowed_providers": ["ollama"]}, "triage.allowed_providers"),
])
def test_provider_policy_is_enforced_at_start_up(kit, settings, key) -> None:
    config = TriageConfig(**settings)
    with pytest.raises(ConfigError) as err:
        TriageService(config, playbooks_for_model=lambda: [], clock=lambda: kit.now, env={})
    assert err.value.problems[0][0] == key
    check_provider_policy(TriageConfig(model="ollama:llama3", allowed_providers=["ollama"]))


@pytest.mark.parametrize(("raw", "key"), [
    ({"model": "gpt-4"}, "triage.model"),
    ({"model": "openai:"}, "triage.model"),
    ({"base_url": "ftp://x"}, "triage.base_url"),
    ({"base_url": "https://user:pw@llm.example"}, "triage.base_url"),
    ({"api_key": "sk-in-config"}, "triage.api_key"),
    ({"timeout_s": 0}, "triage.timeout_s"),
])
def test_bad_triage_config_names_the_key(raw, key) -> None:
    with pytest.raises(ConfigError) as err:
        validate_config({"triage": raw})
    assert [p[0] for p in err.value.problems] == [key]


def test_api_key_from_owner_only_file_or_systemd_credential(tmp_path: Path) -> None:
    key_file = tmp_path / "key"
    key_file.write_text(SECRET + "\n")
    key_file.chmod(0o644)
    with pytest.raises(ConfigError) as err:
        load_api_key(TriageConfig(model="openai:m", api_key_file=key_file), env={})
    assert err.value.problems[0][0] == "triage.api_key_file" and SECRET not in str(err.value.problems)
    key_file.chmod(0o600)
    key = load_api_key(TriageConfig(model="openai:m", api_key_file=key_file), env={})
    assert key is not None and key.get_secret_value() == SECRET and SECRET not in repr(key)
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "triage-api-key").write_text("sk-from-systemd")
    key = load_api_key(TriageConfig(model="openai:m"), env={"CREDENTIALS_DIRECTORY": str(creds)})
    assert key is not None and key.get_secret_value() == "sk-from-systemd"
    assert load_api_key(TriageConfig(model="openai:m"), env={}) is None
    with pytest.raises(ConfigError):
        load_api_key(TriageConfig(model="openai:m", api_key_file=tmp_path / "missing"), env={})


def test_key_reaches_the_model_factory_but_nothing_else(kit, tmp_path: Path, caplog) -> None:
    key_file = tmp_path / "key"
    key_file.write_text(SECRET)
    os.chmod(key_file, 0o400)
    seen = {}

    def factory(config, key):  # type: ignore[no-untyped-def]
        seen["key"] = key
        raise_on_call = __import__("langchain_core.language_models.fake_chat_models", fromlist=["x"])
        return raise_on_call.GenericFakeChatModel(messages=iter([]))

    caplog.set_level(logging.DEBUG)
    svc = TriageService(TriageConfig(model="openai:m", api_key_file=key_file), playbooks_for_model=lambda: [],
                        clock=lambda: kit.now, chat_model_factory=factory, env={})
    inc = kit.incident()
    verdict = svc.triage(inc, kit.baseline(inc), {})  # the fake has no answers: an error
    assert seen["key"].get_secret_value() == SECRET
    assert verdict.provenance.fallback_reason is not None
    for text in (repr(svc), verdict.model_dump_json(), caplog.text, repr(svc.__dict__)):
        assert SECRET not in text
    svc.close()


def test_a_full_triage_section_in_toml_validates(tmp_path: Path) -> None:
    import tomllib

    raw = tomllib.loads(f"""
[triage]
model = "openai:llama3.1:8b"
base_url = "http://127.0.0.1:11434/v1"
timeout_s = 15
max_tokens = 800
api_key_file = "{tmp_path / 'key'}"
allowed_providers = ["openai", "ollama"]
denied_providers = ["deepseek"]
tokens_per_hour = 0
""")
    cfg = validate_config(raw).triage
    assert (cfg.provider, cfg.model_name, cfg.endpoint_host) == ("openai", "llama3.1:8b", "127.0.0.1")
    assert cfg.tokens_per_hour == 0 and cfg.api_key_file == tmp_path / "key"
