"""Deadline reminders: which are due on a day (pure), the channels that deliver them, and the APScheduler job.

A reminder fires when an open obligation comes within an offset of its due date (default 14, 7 and
1 days), then daily while it is overdue. The key of a reminder names the threshold it stands for, so a
run that was missed catches up with the tightest threshold reached, and nothing is sent twice per channel.
"""

from __future__ import annotations

import json
import logging
import smtplib
import ssl
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import date
from email.message import EmailMessage
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from .config import RemindersConfig, SmtpConfig, WebhookConfig, masked_url
from .errors import NotifyError
from .tracker import TrackedObligation

log = logging.getLogger(__name__)

JOB_ID = "guidance-reminders"
_REMINDABLE = frozenset({"overdue", "due_soon", "open"})


@dataclass(frozen=True)
class Reminder:
    """One reminder about one obligation on one day."""

    obligation_id: str
    order: str
    section: str
    title: str
    due: date
    days_left: int
    key: str
    owner: str | None
    lead: tuple[str, ...]
    standing: str

    @property
    def headline(self) -> str:
        """One line for a person."""
        when = (f"{-self.days_left} day{'s' if self.days_left != -1 else ''} OVERDUE" if self.days_left < 0
                else "due TODAY" if self.days_left == 0 else f"due in {self.days_left} day{'s' if self.days_left != 1 else ''}")
        return f"{self.order} Sec. {self.section} {self.title}: {when} ({self.due.isoformat()})"


def reminder_key(days_left: int, as_of: date, cfg: RemindersConfig) -> str | None:
    """The threshold a day stands for: 'before-7d' once within 7 days, 'overdue-YYYY-MM-DD' each overdue day."""
    if days_left < 0:
        return f"overdue-{as_of.isoformat()}" if cfg.daily_when_overdue else None
    reached = [o for o in cfg.offsets_days if days_left <= o]
    return f"before-{min(reached)}d" if reached else None


def due_reminders(rows: Iterable[TrackedObligation], as_of: date, cfg: RemindersConfig) -> list[Reminder]:
    """Reminders to consider on `as_of` (before removing those already sent)."""
    out = []
    for r in rows:
        if r.due is None or r.standing not in _REMINDABLE:
            continue
        if cfg.relevant_only and r.relevance == "awareness":
            continue
        days = (r.due - as_of).days
        key = reminder_key(days, as_of, cfg)
        if key is None:
            continue
        out.append(Reminder(obligation_id=r.id, order=r.order, section=r.obligation.section,
                            title=r.obligation.title, due=r.due, days_left=days, key=key, owner=r.state.owner,
                            lead=r.obligation.lead, standing=r.standing))
    return sorted(out, key=lambda m: (m.days_left, m.order, m.section))


class Notifier(Protocol):
    """A reminder channel."""

    name: str

    def send(self, reminders: Sequence[Reminder], as_of: date, organization: str) -> None:
        """Deliver a batch, or raise NotifyError."""


@dataclass
class JournalNotifier:
    """Writes each reminder to the log (stderr, which the journal keeps)."""

    name: str = "journal"
    logger: logging.Logger = field(default_factory=lambda: log)

    def send(self, reminders: Sequence[Reminder], as_of: date, organization: str) -> None:
        """Log one line per reminder; overdue ones at WARNING."""
        for m in reminders:
            level = logging.WARNING if m.days_left < 0 else logging.INFO
            self.logger.log(level, "guidance reminder for %s: %s [owner %s]", organization, m.headline,
                            m.owner or "unassigned")


def _payload(reminders: Sequence[Reminder], as_of: date, organization: str) -> dict[str, Any]:
    return {
        "type": "watchstander.guidance.reminders", "as_of": as_of.isoformat(), "organization": organization,
        "reminders": [{**asdict(m), "due": m.due.isoformat(), "headline": m.headline} for m in reminders],
    }


@dataclass
class WebhookNotifier:
    """POSTs the batch as JSON to a URL."""

    cfg: WebhookConfig
    name: str = "webhook"
    opener: Callable[..., Any] = urllib.request.urlopen

    def send(self, reminders: Sequence[Reminder], as_of: date, organization: str) -> None:
        """One POST per batch; any non-2xx answer or network error raises NotifyError."""
        assert self.cfg.url is not None
        body = json.dumps(_payload(reminders, as_of, organization)).encode("utf-8")
        req = urllib.request.Request(self.cfg.url, data=body, method="POST",
                                     headers={"Content-Type": "application/json", "User-Agent": "watchstander"})
        if self.cfg.token is not None:
            req.add_header("Authorization", f"Bearer {self.cfg.token.get_secret_value()}")
        shown = masked_url(self.cfg.url)  # a token may ride in the query string
        try:
            with self.opener(req, timeout=self.cfg.timeout_s) as resp:
                status = getattr(resp, "status", 200)
                if not 200 <= status < 300:
                    raise NotifyError(self.name, f"{shown} answered HTTP {status}")
        except urllib.error.HTTPError as exc:
            raise NotifyError(self.name, f"{shown} answered HTTP {exc.code}") from exc
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise NotifyError(self.name, f"cannot reach {shown}: {reason}") from exc


def email_message(reminders: Sequence[Reminder], as_of: date, organization: str, cfg: SmtpConfig) -> EmailMessage:
    """The digest e-mail for one batch."""
    overdue = sum(1 for m in reminders if m.days_left < 0)
    msg = EmailMessage()
    msg["Subject"] = (f"[Watchstander] {len(reminders)} guidance deadline reminder{'s' if len(reminders) != 1 else ''}"
                      + (f", {overdue} overdue" if overdue else "") + f" ({as_of.isoformat()})")
    msg["From"] = cfg.from_addr
    msg["To"] = ", ".join(cfg.to_addrs)
    lines = [f"Guidance deadlines for {organization} as of {as_of.isoformat()}:", ""]
    for m in reminders:
        lines.append(f"- {m.headline}")
        lines.append(f"  id {m.obligation_id}; owner {m.owner or 'unassigned'}; lead {'; '.join(m.lead) or 'all agencies'}")
    lines += ["", "Update with: watchstander guidance update ID --status ... --evidence ..."]
    msg.set_content("\n".join(lines))
    return msg


@dataclass
class SmtpNotifier:
    """Sends one digest e-mail per batch."""

    cfg: SmtpConfig
    name: str = "email"

    def send(self, reminders: Sequence[Reminder], as_of: date, organization: str) -> None:
        """Deliver through the configured SMTP server; failures raise NotifyError."""
        send_email(self.cfg, email_message(reminders, as_of, organization, self.cfg), self.name)


def send_email(cfg: SmtpConfig, msg: EmailMessage, channel: str = "email") -> None:
    """Deliver one message through the configured SMTP server; failures raise NotifyError."""
    assert cfg.host is not None
    try:
        if cfg.ssl:
            client: smtplib.SMTP = smtplib.SMTP_SSL(cfg.host, cfg.port, timeout=cfg.timeout_s,
                                                    context=ssl.create_default_context())
        else:
            client = smtplib.SMTP(cfg.host, cfg.port, timeout=cfg.timeout_s)
        with client:
            if cfg.starttls:
                client.starttls(context=ssl.create_default_context())
            if cfg.username and cfg.password is not None:
                client.login(cfg.username, cfg.password.get_secret_value())
            refused = client.send_message(msg)
    except (smtplib.SMTPException, OSError) as exc:
        raise NotifyError(channel, f"{cfg.host}:{cfg.port}: {exc}") from exc
    if refused:
        raise NotifyError(channel, f"recipients refused: {', '.join(sorted(refused))}")


def notifiers_for(cfg: RemindersConfig) -> list[Notifier]:
    """The channels the configuration switches on."""
    out: list[Notifier] = []
    if cfg.journal:
        out.append(JournalNotifier())
    if cfg.webhook.url:
        out.append(WebhookNotifier(cfg.webhook))
    if cfg.smtp.host:
        out.append(SmtpNotifier(cfg.smtp))
    return out


@dataclass
class RunResult:
    """What one reminder run did, per channel."""

    considered: int = 0
    sent: dict[str, int] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)


def deliver(reminders: Sequence[Reminder], as_of: date, organization: str, notifiers: Sequence[Notifier],
            already_sent: Callable[[Reminder, str], bool], mark_sent: Callable[[Reminder, str], None]) -> RunResult:
    """Send each channel what it has not had yet; a failing channel is logged and the others go on."""
    result = RunResult(considered=len(reminders))
    for notifier in notifiers:
        batch = [m for m in reminders if not already_sent(m, notifier.name)]
        if not batch:
            result.sent[notifier.name] = 0
            continue
        try:
            notifier.send(batch, as_of, organization)
        except NotifyError as exc:
            log.error("guidance reminders: channel %s failed: %s", notifier.name, exc)
            log.debug("channel %s traceback", notifier.name, exc_info=True)
            result.failed[notifier.name] = str(exc)
            continue
        for m in batch:
            mark_sent(m, notifier.name)
        result.sent[notifier.name] = len(batch)
    return result


def install_reminder_job(scheduler: Any, run: Callable[[], object], cfg: RemindersConfig) -> Any:
    """Add (or replace) the daily reminder job on an APScheduler 3.x scheduler; returns the Job."""
    from apscheduler.triggers.cron import CronTrigger

    trigger = CronTrigger(hour=cfg.hour, minute=cfg.minute, timezone=ZoneInfo(cfg.timezone))
    return scheduler.add_job(run, trigger, id=JOB_ID, name="guidance deadline reminders", replace_existing=True,
                             coalesce=True, max_instances=1, misfire_grace_time=6 * 3600)
