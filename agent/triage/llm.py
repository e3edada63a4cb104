"""The LangChain boundary: build a chat model from the config, call it, and name what went wrong.

Library errors become short, secret-free reasons ("timeout", "rate limited", "error: HTTP 500")
decided by exception type and status code, never by message text.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from pydantic import SecretStr

from ..config.triage import TriageConfig
from ..errors import ConfigError

ChatModelFactory = Callable[[TriageConfig, SecretStr | None], BaseChatModel]

# OpenAI-compatible servers without authentication (a local vLLM, llama.cpp, Ollama's /v1) still
# need some key for the client; this one is sent instead of reading OPENAI_API_KEY from the
# environment, which could hand a key meant for one endpoint to another.
NO_KEY = "no-key-configured"


def build_chat_model(config: TriageConfig, api_key: SecretStr | None) -> BaseChatModel:
    """A LangChain chat model for `config.model` that never retries and never waits past timeout_s."""
    from langchain.chat_models import init_chat_model

    provider = config.provider
    kwargs: dict[str, Any] = {
        "timeout": config.timeout_s,
        "max_retries": 0,
        "max_tokens": config.max_tokens,
        "temperature": config.temperature,
    }
    if config.base_url:
        kwargs["base_url"] = config.base_url
    if provider in ("openai", "azure_openai"):
        kwargs["api_key"] = api_key or SecretStr(NO_KEY)
    elif api_key is not None:
        kwargs["api_key"] = api_key
    try:
        return init_chat_model(config.model, **kwargs)  # type: ignore[no-any-return]
    except ImportError:
        raise ConfigError("the triage model's provider package is not installed", [(
            "triage.model", f"provider {provider!r} needs its LangChain package (e.g. langchain-{provider})",
        )]) from None
    except (ValueError, TypeError) as exc:
        # pydantic shows SecretStr masked, so the message is safe to show; it is cut short anyway.
        raise ConfigError("the triage model cannot be configured", [
            ("triage.model", f"{type(exc).__name__}: {str(exc)[:300]}")]) from None


@dataclass(frozen=True)
class Reply:
    """One model answer with what provenance needs."""

    text: str
    model_version: str | None
    input_tokens: int | None
    output_tokens: int | None
    latency_ms: float


def ask(model: BaseChatModel, messages: Sequence[tuple[str, str]]) -> Reply:
    """Send the messages, return the answer text, model version and token counts."""
    started = time.perf_counter()
    msg: BaseMessage = model.invoke(list(messages))
    latency = (time.perf_counter() - started) * 1000.0
    text = message_text(msg)
    meta = msg.response_metadata or {}
    version = meta.get("model_name") or meta.get("model") or meta.get("model_id")
    fingerprint = meta.get("system_fingerprint")
    if version and fingerprint:
        version = f"{version} ({fingerprint})"
    usage = msg.usage_metadata if isinstance(msg, AIMessage) else None
    return Reply(text, str(version)[:200] if version else None,
                 usage.get("input_tokens") if usage else None,
                 usage.get("output_tokens") if usage else None,
                 round(latency, 1))


def message_text(msg: BaseMessage) -> str:
    """The text of a message whose content may be a string or a list of content blocks."""
    content = msg.content
    if isinstance(content, str):
        return content
    parts: list[str] = []
    for block in content:
        if isinstance(block, str):
            parts.append(block)
        elif isinstance(block, dict) and block.get("type") == "text" and isinstance(block.get("text"), str):
            parts.append(block["text"])
    return "".join(parts)


def failure_reason(exc: BaseException) -> str:
    """A short reason for a failed call, from the exception's type and status code only."""
    if isinstance(exc, TimeoutError):
        return "timeout"
    try:
        import httpx
    except ImportError:  # pragma: no cover - httpx comes with every OpenAI-compatible client
        httpx = None  # type: ignore[assignment]
    if httpx is not None and isinstance(exc, httpx.TimeoutException):
        return "timeout"
    try:
        import openai
    except ImportError:  # pragma: no cover - langchain-openai depends on it
        openai = None  # type: ignore[assignment]
    if openai is not None:
        if isinstance(exc, openai.APITimeoutError):
            return "timeout"
        if isinstance(exc, openai.APIConnectionError):
            return "error: connection failed"
    status = getattr(exc, "status_code", None)
    if status == 429:
        return "rate limited"
    if isinstance(status, int):
        return f"error: HTTP {status}"
    return f"error: {type(exc).__name__}"
