"""Guidance configuration: whom the deployment represents, where catalogues live, when and how reminders go out."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

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


class SmtpConfig(_Frozen):
    """Where reminder e-mail goes; leave `host` unset to send none."""

    host: str | None = None
    port: int = Field(25, ge=1, le=65535)
    starttls: bool = False
    ssl: bool = Field(False, description="SMTP over TLS from the first byte (port 465)")
    username: str | None = None
    password: SecretStr | None = None
    from_addr: str = "watchstander@localhost"
    to_addrs: tuple[str, ...] = ()
    timeout_s: float = Field(30.0, gt=0)

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
    timeout_s: float = Field(10.0, gt=0)


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
