"""Guidance configuration: whom the deployment represents, where catalogues live, when and how reminders go out."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit, urlunsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

MASK = "**********"
MAX_SECRET_BYTES = 16 * 1024

DEFAULT_OFFICIALS: tuple[str, ...] = (
    "Secretary of War",
    "Department of War",
    "DOW Chief Information Officer",
    "Director of the National Security Agency",
    "National Manager for National Security Systems",
    "Committee on National Security Systems",
)


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


def read_secret_file(path: Path) -> str:
    """The stripped text of a secret file only its owner (root or this user) may read; raises ValueError."""
    try:
        info = path.stat()
        if info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise ValueError(f"{path} has mode {stat.S_IMODE(info.st_mode):o}; use 0600 or 0400")
        if hasattr(os, "geteuid") and info.st_uid not in (0, os.geteuid()):
            raise ValueError(f"{path} is owned by uid {info.st_uid}, not root or this user")
        if info.st_size > MAX_SECRET_BYTES:
            raise ValueError(f"{path} is over 16 KiB")
        text = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ValueError(f"{path}: {exc.strerror or type(exc).__name__}") from None
    except UnicodeDecodeError:
        raise ValueError(f"{path} is not UTF-8 text") from None
    if not text:
        raise ValueError(f"{path} is empty")
    return text


def _secret_from_file(data: Any, key: str, file_key: str) -> Any:
    """Before validation: read `file_key` into `key`, so the rest of the code sees one SecretStr."""
    if not isinstance(data, dict) or data.get(file_key) is None:
        return data
    if data.get(key) is not None:
        raise ValueError(f"set one of {key} and {file_key}, not both")
    try:
        return {**data, key: read_secret_file(Path(data[file_key]))}
    except ValueError as exc:
        raise ValueError(f"{file_key}: {exc}") from None


def masked_url(url: str) -> str:
    """The URL with its userinfo and every query-string value masked (tokens often travel there)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return MASK
    netloc = parts.netloc
    if "@" in netloc:
        netloc = f"{MASK}@{netloc.rpartition('@')[2]}"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        query = "&".join(f"{name}={MASK}" for name, _ in pairs) if pairs else MASK
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


class SmtpConfig(_Frozen):
    """Where reminder e-mail goes; leave `host` unset to send none."""

    host: str | None = None
    port: int = Field(25, ge=1, le=65535)
    starttls: bool = False
    ssl: bool = Field(False, description="SMTP over TLS from the first byte (port 465)")
    username: str | None = None
    password: SecretStr | None = Field(None, description="inline only in a config file others cannot read")
    password_file: Path | None = Field(None, description="file holding the password; readable by its owner only")
    from_addr: str = "watchstander@localhost"
    to_addrs: tuple[str, ...] = ()
    timeout_s: float = Field(30.0, gt=0)

    @model_validator(mode="before")
    @classmethod
    def _password_file(cls, data: Any) -> Any:
        return _secret_from_file(data, "password", "password_file")

    @model_validator(mode="after")
    def _recipients(self) -> SmtpConfig:
        if self.host and not self.to_addrs:
            raise ValueError("smtp.host is set but smtp.to_addrs is empty")
        if self.starttls and self.ssl:
            raise ValueError("choose one of smtp.starttls and smtp.ssl")
        return self


class WebhookConfig(_Frozen):
    """A URL that receives each reminder as a JSON POST; leave `url` unset to send none."""

    url: str | None = Field(default=None, pattern=r"^https?://")
    token: SecretStr | None = Field(default=None, description="sent as 'Authorization: Bearer <token>'")
    token_file: Path | None = Field(None, description="file holding the token; readable by its owner only")
    timeout_s: float = Field(10.0, gt=0)

    @model_validator(mode="before")
    @classmethod
    def _token_file(cls, data: Any) -> Any:
        return _secret_from_file(data, "token", "token_file")


class RemindersConfig(_Frozen):
    """When reminders fire: days before a due date, then daily while overdue."""

    offsets_days: tuple[int, ...] = (14, 7, 1)
    daily_when_overdue: bool = True
    hour: int = Field(8, ge=0, le=23, description="hour of the daily reminder run")
    minute: int = Field(0, ge=0, le=59)
    timezone: str = Field("UTC", description="IANA zone name for `hour`, e.g. America/New_York")
    relevant_only: bool = Field(True, description="remind only of obligations where the organisation leads or is consulted")
    journal: bool = True
    webhook: WebhookConfig = WebhookConfig()
    smtp: SmtpConfig = SmtpConfig()

    @field_validator("offsets_days")
    @classmethod
    def _offsets(cls, v: tuple[int, ...]) -> tuple[int, ...]:
        if any(d < 0 or d > 366 for d in v):
            raise ValueError("reminder offsets must be between 0 and 366 days")
        return tuple(sorted(set(v), reverse=True))

    @field_validator("timezone")
    @classmethod
    def _zone(cls, v: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {v!r}") from exc
        return v


class GuidanceConfig(_Frozen):
    """Organisation profile, catalogues and reminder settings for the deadline tracker."""

    organization: str = Field("Department of War", min_length=2, description="whom this deployment represents")
    officials: tuple[str, ...] = Field(
        DEFAULT_OFFICIALS,
        description="lead/consulted names in catalogues that stand for the organisation",
    )
    catalogue_dirs: tuple[Path, ...] = Field((), description="folders of the site's own catalogue YAML files")
    due_soon_days: int = Field(14, ge=0, le=366, description="open obligations due within this many days are 'due soon'")
    reminders: RemindersConfig = RemindersConfig()
