"""The runner's section and the named webhooks that playbooks and alerts post to.

```toml
[runner]
auto_run = true              # the daemon runs approved suggestions by itself
max_concurrent = 8           # runs at once, overall
max_per_device = 1           # runs at once against one device
alert_webhook = "soc"        # failures a person must see also go here (and by e-mail, if configured)

[notify.webhooks.soc]
url = "https://chat.example.mil/hooks/watch"
token_credential = "soc-webhook-token"     # or token_file = "/etc/watchstander/credentials/soc-token"
```
"""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import Field, field_validator, model_validator

from .base import Frozen
from .devices import CREDENTIAL_NAME, one_secret_source

WEBHOOK_NAME = r"^[a-z][a-z0-9_-]{0,63}$"  # playbooks/actions.py NotifyWebhookArgs.webhook


class WebhookEndpoint(Frozen):
    """One named webhook: a URL and an optional bearer token from a credential or a file."""

    url: str = Field(pattern=r"^https?://[^\s]+$")
    token_credential: str | None = Field(None, pattern=CREDENTIAL_NAME)
    token_file: Path | None = None
    timeout_s: float = Field(10.0, gt=0, le=60)

    @model_validator(mode="after")
    def _one_token(self) -> WebhookEndpoint:
        one_secret_source(self.token_credential, self.token_file, "token", required=False)
        return self


class NotifyConfig(Frozen):
    """Webhooks by name, for the `notify.webhook` action and the runner's alerts."""

    webhooks: dict[str, WebhookEndpoint] = Field(default_factory=dict)

    @field_validator("webhooks")
    @classmethod
    def _names(cls, v: dict[str, WebhookEndpoint]) -> dict[str, WebhookEndpoint]:
        for name in v:
            if not re.fullmatch(WEBHOOK_NAME, name):
                raise ValueError(f"not a webhook name (lower case, digits, _ -): {name!r}")
        return v


class RunnerConfig(Frozen):
    """How approved suggestions become runs."""

    auto_run: bool = Field(True, description="the daemon runs approved suggestions by itself")
    poll_s: float = Field(0.5, gt=0, le=300, description="how often the daemon looks for approved suggestions")
    max_concurrent: int = Field(8, ge=1, le=256)
    max_per_device: int = Field(1, ge=1, le=64)
    output_limit: int = Field(65536, ge=1024, le=16 * 1024 * 1024, description="bytes of output kept per step")
    capture_dir: Path | None = Field(None, description="where packet captures go; default: STATE/captures")
    capture_max_bytes: int = Field(512 * 1024 * 1024, ge=1024 * 1024)
    credentials_dir: Path = Field(Path("/etc/watchstander/credentials"),
                                  description="where credentials are read when not run by systemd")
    alert_webhook: str | None = Field(None, pattern=WEBHOOK_NAME)
    alert_email: bool = Field(True, description="also alert by e-mail through [guidance.reminders.smtp], if set")
