"""AI triage: a model refines the baseline verdict when it answers well and in time.

The model is never on the critical path. Each call runs in a small worker pool under a hard
deadline (`timeout_s`, repair included); a timeout, an error, a rate limit, an exhausted token
budget or an answer still malformed after one repair returns the baseline verdict with
`provenance.fallback_reason` set. A late answer is discarded. Verdicts are remembered by incident
fingerprint and evidence version, so an unchanged incident is never sent twice.

The service does not judge recommended actions against policy; the policy guard does that next.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import traceback
from collections import Counter
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from typing import Any, Literal

from langchain_core.language_models.chat_models import BaseChatModel

from ..clock import Clock
from ..config.load import scrub_secrets
from ..config.triage import TriageConfig
from ..models import Incident, Provenance, TriageVerdict, severity_rank
from .answer import Answer, MalformedAnswer, parse_answer, repair_request
from .budget import TokenBudget
from .cache import CacheKey, VerdictCache, cache_key
from .credentials import check_provider_policy, load_api_key
from .llm import ChatModelFactory, Reply, ask, build_chat_model, failure_reason
from .prompt import TEMPLATE_VERSION, Prompt, build_prompt, messages_sha256, text_sha256

log = logging.getLogger(__name__)

ANALYST_VERSION = "llm-triage-1"
CHARS_PER_TOKEN = 3  # a conservative estimate for budgeting before the real count is known

PlaybooksForModel = Callable[[], list[dict[str, Any]]]


@dataclass
class _Outcome:
    """What one consultation produced: an answer, or the reason there is none, plus what was spent."""

    answer: Answer | None = None
    reason: str | None = None
    cacheable: bool = False
    model_version: str | None = None
    prompt_sha256: str | None = None
    response_sha256: str | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    latency_ms: float = 0.0
    calls: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def add(self, reply: Reply) -> None:
        self.calls += 1
        self.model_version = reply.model_version or self.model_version
        self.response_sha256 = text_sha256(reply.text)
        self.latency_ms = round(self.latency_ms + reply.latency_ms, 1)
        if reply.input_tokens is not None:
            self.input_tokens = (self.input_tokens or 0) + reply.input_tokens
        if reply.output_tokens is not None:
            self.output_tokens = (self.output_tokens or 0) + reply.output_tokens


class TriageService:
    """Refines baseline verdicts with the configured chat model, falling back to the baseline."""

    def __init__(self, config: TriageConfig, *, playbooks_for_model: PlaybooksForModel, clock: Clock,
                 chat_model_factory: ChatModelFactory | None = None,
                 env: Mapping[str, str] | None = None) -> None:
        """Check the provider policy, read the API key and build the client; raises ConfigError."""
        check_provider_policy(config)
        self._config = config
        self._playbooks = playbooks_for_model
        self._clock = clock
        self._cache = VerdictCache(config.cache_size)
        self._budget = TokenBudget(config.tokens_per_hour or None, clock)
        self._lock = threading.Lock()
        self._stats_lock = threading.Lock()
        self.model_calls = 0                     # requests submitted to the model (metrics read these)
        self.fallbacks: Counter[str] = Counter()  # baseline verdicts kept, by reason
        self._in_flight = 0
        self._cooldown_until = 0.0
        self._model: BaseChatModel | None = None
        self._pool: ThreadPoolExecutor | None = None
        if config.enabled:
            key = load_api_key(config, env)  # registered for scrubbing as it is read
            self._model = (chat_model_factory or build_chat_model)(config, key)
            self._pool = ThreadPoolExecutor(max_workers=config.max_concurrent, thread_name_prefix="triage-model")
            log.info("AI triage enabled: provider %s, model %s, endpoint %s, timeout %ss",
                     config.provider, config.model_name, config.endpoint_host, config.timeout_s)

    def __repr__(self) -> str:
        return f"TriageService(model={self._config.model!r}, endpoint={self._config.endpoint_host!r})"

    @property
    def enabled(self) -> bool:
        """Whether a model is consulted at all (False for `model = "builtin"`)."""
        return self._model is not None

    def close(self) -> None:
        """Stop the worker pool without waiting for calls in flight (their answers are discarded)."""
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)

    def triage(self, incident: Incident, baseline: TriageVerdict, asset_context: Mapping[str, Any],
               *, evidence_text: Mapping[str, str] | None = None) -> TriageVerdict:
        """The model's verdict, or `baseline` (with the fallback reason) within timeout_s."""
        started = self._start(incident, baseline, asset_context, evidence_text)
        if isinstance(started, TriageVerdict):
            return started
        key, future = started
        try:
            outcome = future.result(timeout=self._config.timeout_s)
        except FutureTimeout:
            return self._timed_out(incident, baseline)
        return self._finish(key, incident, baseline, outcome)

    async def atriage(self, incident: Incident, baseline: TriageVerdict, asset_context: Mapping[str, Any],
                      *, evidence_text: Mapping[str, str] | None = None) -> TriageVerdict:
        """`triage` for the event loop: awaits the worker without blocking the loop."""
        started = self._start(incident, baseline, asset_context, evidence_text)
        if isinstance(started, TriageVerdict):
            return started
        key, future = started
        try:
            outcome = await asyncio.wait_for(asyncio.shield(asyncio.wrap_future(future)),
                                             self._config.timeout_s)
        except TimeoutError:
            return self._timed_out(incident, baseline)
        return self._finish(key, incident, baseline, outcome)

    # -- internals -------------------------------------------------------------------------------

    def _start(self, incident: Incident, baseline: TriageVerdict, asset_context: Mapping[str, Any],
               evidence_text: Mapping[str, str] | None) -> TriageVerdict | tuple[CacheKey, Future[_Outcome]]:
        if self._model is None or self._pool is None:
            return baseline
        key = cache_key(incident)
        hit = self._cache.get(key)
        if hit is not None:
            log.debug("incident %s: verdict from cache", incident.fingerprint)
            return hit
        if self._clock().timestamp() < self._cooldown_until:
            return self._fallback(baseline, _Outcome(reason="rate limited"))
        with self._lock:
            if self._in_flight >= self._config.max_concurrent:
                # Earlier calls are still running past their deadline; do not queue behind them.
                return self._fallback(baseline, _Outcome(reason="busy"))
            self._in_flight += 1
            self.model_calls += 1
        try:
            future = self._pool.submit(self._consult, incident, baseline, dict(asset_context), evidence_text)
        except RuntimeError:  # the pool was shut down
            with self._lock:
                self._in_flight -= 1
            return self._fallback(baseline, _Outcome(reason="error: service closed"))
        future.add_done_callback(self._done)
        return key, future

    def _done(self, _future: Future[_Outcome]) -> None:
        with self._lock:
            self._in_flight -= 1

    def _timed_out(self, incident: Incident, baseline: TriageVerdict) -> TriageVerdict:
        log.warning("incident %s: model %s did not answer within %ss; baseline verdict stands",
                    incident.fingerprint, self._config.model, self._config.timeout_s)
        return self._fallback(baseline, _Outcome(reason="timeout"))

    def _consult(self, incident: Incident, baseline: TriageVerdict, asset_context: dict[str, Any],
                 evidence_text: Mapping[str, str] | None) -> _Outcome:
        """Runs in a worker: the one barrier around the model call (plugin code: anything may fail)."""
        outcome = _Outcome()
        try:
            prompt = build_prompt(incident, baseline, asset_context, self._playbooks(), evidence_text,
                                  max_samples=self._config.max_raw_samples, max_chars=self._config.max_raw_chars)
            self._exchange(prompt, outcome)
        except Exception as exc:  # noqa: BLE001 - the barrier: log, fall back, carry on
            outcome.reason = failure_reason(exc)
            outcome.answer = None
            log.warning("incident %s: model %s failed: %s (%s); baseline verdict stands",
                        incident.fingerprint, self._config.model, outcome.reason, type(exc).__name__)
            if log.isEnabledFor(logging.DEBUG):
                log.debug("model call traceback:\n%s", scrub_secrets("".join(traceback.format_exception(exc))))
            if outcome.reason == "rate limited" and self._config.rate_limit_cooldown_s:
                self._cooldown_until = self._clock().timestamp() + self._config.rate_limit_cooldown_s
        return outcome

    def _exchange(self, prompt: Prompt, outcome: _Outcome) -> None:
        messages = prompt.messages()
        problems: list[str] = []
        for attempt in (1, 2):
            if attempt == 2:
                log.info("model answer malformed (%s); asking once for a repair", "; ".join(problems)[:300])
            reply = self._call(messages, outcome)
            if reply is None:
                return
            try:
                outcome.answer = parse_answer(reply.text, prompt.evidence_refs)
                return
            except MalformedAnswer as exc:
                problems = exc.problems
            messages = [*messages, ("assistant", reply.text), ("user", repair_request(problems))]
        log.warning("model answer still malformed after repair (%s); baseline verdict stands",
                    "; ".join(problems)[:300])
        outcome.reason = "malformed after repair"
        outcome.cacheable = True  # the same input would be answered the same way; do not pay twice
        outcome.extra["problems"] = problems

    def _call(self, messages: list[tuple[str, str]], outcome: _Outcome) -> Reply | None:
        estimate = sum(len(text) for _, text in messages) // CHARS_PER_TOKEN + self._config.max_tokens
        reservation = self._budget.reserve(estimate)
        if reservation is None:
            log.warning("token budget of %s per hour exhausted; baseline verdict stands",
                        self._config.tokens_per_hour)
            outcome.reason = "budget exceeded"
            return None
        outcome.prompt_sha256 = messages_sha256(messages)
        # A failed call may still have cost tokens, so its reservation stays counted.
        reply = ask(self._model, messages)  # type: ignore[arg-type]
        if reply.input_tokens is not None:
            self._budget.settle(reservation, reply.input_tokens + (reply.output_tokens or 0))
        outcome.add(reply)
        return reply

    def _finish(self, key: CacheKey, incident: Incident, baseline: TriageVerdict,
                outcome: _Outcome) -> TriageVerdict:
        if outcome.answer is None:
            verdict = self._fallback(baseline, outcome)
            if outcome.cacheable:
                self._cache.put(key, verdict)
            return verdict
        verdict = self._verdict(baseline, outcome.answer, outcome)
        self._cache.put(key, verdict)
        log.info("incident %s: model verdict %s/%s (%.2f) in %.0f ms", incident.fingerprint,
                 verdict.severity, verdict.disposition, verdict.confidence, outcome.latency_ms)
        return verdict

    def _provenance(self, analyst: Literal["baseline", "model"], outcome: _Outcome, analyst_version: str,
                    reason: str | None) -> Provenance:
        return Provenance(
            analyst=analyst,
            analyst_version=analyst_version,
            provider=self._config.provider,
            model=self._config.model_name,
            model_version=outcome.model_version,
            endpoint_host=self._config.endpoint_host,
            prompt_template_version=TEMPLATE_VERSION,
            prompt_sha256=outcome.prompt_sha256,
            response_sha256=outcome.response_sha256,
            input_tokens=outcome.input_tokens,
            output_tokens=outcome.output_tokens,
            latency_ms=outcome.latency_ms if outcome.calls else None,
            fallback_reason=reason,
        )

    def _fallback(self, baseline: TriageVerdict, outcome: _Outcome) -> TriageVerdict:
        """The baseline verdict, marked with why the model's did not replace it and what was tried."""
        with self._stats_lock:  # not self._lock: the "busy" fallback is taken while that is held
            self.fallbacks[(outcome.reason or "unknown").split(":")[0]] += 1
        prov = self._provenance("baseline", outcome, baseline.provenance.analyst_version, outcome.reason)
        return baseline.model_copy(update={"provenance": prov})

    def _verdict(self, baseline: TriageVerdict, answer: Answer, outcome: _Outcome) -> TriageVerdict:
        severity, rationale = answer.severity, answer.rationale
        if not self._config.allow_downgrade and severity_rank(severity) < severity_rank(baseline.severity):
            # Telemetry can try to talk the model into calling an attack harmless; by default the
            # model may raise severity but not lower it below the deterministic analyst's.
            note = (f" [Severity held at the baseline analyst's {baseline.severity}; the model said {severity}."
                    " Set triage.allow_downgrade to change this.]")
            rationale = rationale[:4000 - len(note)] + note
            severity = baseline.severity
        return TriageVerdict(
            severity=severity,
            confidence=answer.confidence,
            disposition=answer.disposition,
            techniques=answer.techniques,
            summary=answer.summary,
            rationale=rationale,
            evidence_refs=answer.evidence_refs,
            recommended_actions=answer.actions,
            provenance=self._provenance("model", outcome, ANALYST_VERSION, None),
        )
