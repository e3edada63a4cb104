"""Triage configuration: which model (if any) refines the baseline verdict, and on what terms.

The API key is never part of this configuration: it is read at start-up from `api_key_file` (a
file only its owner may read) or from the systemd credential `triage-api-key`
($CREDENTIALS_DIRECTORY/triage-api-key), and held as a SecretStr.
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlsplit

from pydantic import Field, field_validator

from .base import Frozen

BUILTIN = "builtin"
CREDENTIAL_NAME = "triage-api-key"
MAX_KEY_BYTES = 16 * 1024
_PROVIDER = re.compile(r"^[a-z][a-z0-9_-]{0,63}$")

# Default endpoint hosts, for provenance when no base_url is configured.
DEFAULT_HOSTS = {
    "openai": "api.openai.com",
    "anthropic": "api.anthropic.com",
    "mistralai": "api.mistral.ai",
    "groq": "api.groq.com",
    "deepseek": "api.deepseek.com",
    "xai": "api.x.ai",
    "ollama": "localhost",
}


class TriageConfig(Frozen):
    """`model = "builtin"` (the default) uses the baseline analyst alone, with no network."""

    model: str = Field("builtin", description='"builtin" or "provider:model-name" (e.g. "openai:NAME")')
    base_url: str | None = Field(None, description="OpenAI-compatible endpoint, e.g. http://10.1.2.3:8000/v1")
    timeout_s: float = Field(20.0, gt=0, le=600, description="hard limit on one triage, repair included")
    max_tokens: int = Field(1200, ge=64, le=32768, description="answer length limit per model call")
    temperature: float = Field(0.0, ge=0, le=2)
    api_key_file: Path | None = Field(None, description="file holding the API key; readable by its owner only")
    allowed_providers: tuple[str, ...] | None = Field(
        None, description="if set, the only providers this site may use")
    denied_providers: tuple[str, ...] = Field((), description="providers this site may never use")
    tokens_per_hour: int = Field(
        200_000, ge=0, description="prompt plus answer tokens per sliding hour; 0 for no limit")
    max_concurrent: int = Field(2, ge=1, le=32, description="model calls in flight at once")
    cache_size: int = Field(4096, ge=0, le=1_000_000, description="verdicts remembered by incident version")
    rate_limit_cooldown_s: float = Field(60.0, ge=0, le=3600,
                                         description="pause after the endpoint answers 429")
    allow_downgrade: bool = Field(
        False, description="let the model lower severity below the baseline analyst's")
    max_raw_samples: int = Field(8, ge=0, le=64, description="raw evidence excerpts shown to the model")
    max_raw_chars: int = Field(300, ge=16, le=4096, description="characters kept of each excerpt")

    @field_validator("model")
    @classmethod
    def _model_spec(cls, v: str) -> str:
        if v == BUILTIN:
            return v
        provider, sep, name = v.partition(":")
        if not sep or not name.strip() or not _PROVIDER.fullmatch(provider):
            raise ValueError(f'expected "builtin" or "provider:model-name", got {v!r}')
        return v

    @field_validator("base_url")
    @classmethod
    def _url(cls, v: str | None) -> str | None:
        if v is None:
            return v
        parts = urlsplit(v)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"expected an http(s) URL with a host, got {v!r}")
        if parts.username or parts.password:
            raise ValueError("credentials in the URL are not allowed; use api_key_file or the systemd credential")
        return v

    @field_validator("allowed_providers", "denied_providers")
    @classmethod
    def _providers(cls, v: tuple[str, ...] | None) -> tuple[str, ...] | None:
        if v is None:
            return v
        bad = [p for p in v if not _PROVIDER.fullmatch(p.lower())]
        if bad:
            raise ValueError(f"not provider names: {', '.join(map(repr, bad))}")
        return tuple(p.lower() for p in v)

    @property
    def enabled(self) -> bool:
        """Whether a model refines the baseline at all."""
        return self.model != BUILTIN

    @property
    def provider(self) -> str | None:
        """The LangChain provider id ("openai", "anthropic", ...), or None for builtin."""
        return self.model.partition(":")[0].lower() if self.enabled else None

    @property
    def model_name(self) -> str | None:
        """The model name after the provider prefix, or None for builtin."""
        return self.model.partition(":")[2] if self.enabled else None

    @property
    def endpoint_host(self) -> str | None:
        """The host the model is reached at (from base_url, else the provider's public API)."""
        if self.base_url:
            return urlsplit(self.base_url).hostname
        return DEFAULT_HOSTS.get(self.provider or "")
