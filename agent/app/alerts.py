"""Alerts a person must see (a failed post-check, a failed rollback, an interrupted run).

Every alert goes to the journal at error priority; then to `[runner] alert_webhook` and, when
`[guidance.reminders.smtp]` is configured and `[runner] alert_email` is on, by e-mail. A channel
that fails is logged and the others still get the alert.
"""

from __future__ import annotations

import asyncio
import logging
from email.message import EmailMessage
from typing import Any

from watchstander.connectors.errors import ConnectorError
from watchstander.connectors.webhook import post_json
from watchstander.guidance.errors import NotifyError
from watchstander.guidance.reminders import send_email

from ..config.model import AgentConfig
from .devices import DeviceDirectory

log = logging.getLogger("watchstander.alerts")


class Alerts:
    """Sends run alerts through every configured channel; returns which ones took it."""

    def __init__(self, config: AgentConfig, devices: DeviceDirectory) -> None:
        self._config = config
        self._devices = devices

    async def raise_alert(self, title: str, detail: str, data: dict[str, Any]) -> list[str]:
        """Alert people about a run; the journal always, webhook and e-mail when configured."""
        log.error("ALERT %s: %s", title, detail)
        sent = ["journal"]
        hook = self._config.runner.alert_webhook
        if hook:
            try:
                await post_json(self._devices.webhook(hook), {"type": "watchstander.alert", "title": title,
                                                              "detail": detail, **data})
                sent.append(f"webhook:{hook}")
            except ConnectorError as exc:
                log.error("alert webhook %s failed: %s", hook, exc)
        smtp = self._config.guidance.reminders.smtp
        if self._config.runner.alert_email and smtp.host:
            msg = EmailMessage()
            msg["Subject"] = f"[Watchstander ALERT] {title}"
            msg["From"] = smtp.from_addr
            msg["To"] = ", ".join(smtp.to_addrs)
            msg.set_content(f"{title}\n\n{detail}\n\n" + "\n".join(f"{k}: {v}" for k, v in data.items()))
            try:
                await asyncio.to_thread(send_email, smtp, msg, "alert e-mail")
                sent.append("email")
            except NotifyError as exc:
                log.error("alert e-mail failed: %s", exc)
        return sent
