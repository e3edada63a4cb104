"""Log output for every command: plain lines on stderr, quiet libraries, and no secret in any form.

The scrubbing filter sits on the handler, so it sees every record that reaches stderr, whichever
logger emitted it: the message with its arguments merged, the formatted traceback and the stack.
Secrets are registered by whoever reads them (`register_secret`, kept on the bottom floor in
`config.load` so that the triage credentials and the config loader can reach it).

Under systemd, when stderr is the journal (JOURNAL_STREAM names stderr's device and inode), every
line starts with the sd-daemon priority prefix (`<3>` error, `<4>` warning, `<6>` info, `<7>`
debug), so `journalctl -p warning` shows warnings and errors; a traceback's lines each carry it.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import TextIO

from ..config.load import register_secret, scrub_secrets

__all__ = ["LIBRARY_LOGGERS", "JournalFormatter", "SecretScrubber", "configure_logging", "is_library",
           "journal_priority", "register_secret", "stderr_is_journal"]

# Third-party loggers whose DEBUG lines carry request headers, bodies and URLs. A logger is
# matched by its top-level name's prefix (httpx2, httpcore2 and langchain_xyz included), also when
# its library is imported after logging is configured.
LIBRARY_LOGGERS = ("httpx", "httpcore", "openai", "urllib3", "asyncio", "sqlalchemy", "langchain",
                   "langsmith", "hpack", "h11", "h2", "anthropic", "requests", "aiosqlite", "apscheduler")
FORMAT = "%(levelname)s %(name)s: %(message)s"
# Libraries whose INFO is itself noise: WARNING. SQLAlchemy's INFO is its SQL echo and pool chatter,
# APScheduler's a "Running job" line for every run of a job (the runner's dispatch: twice a second).
CHATTY_LOGGERS = ("sqlalchemy", "apscheduler")


def journal_priority(levelno: int) -> int:
    """The syslog priority of a logging level: 2 critical, 3 error, 4 warning, 6 info, 7 debug."""
    if levelno >= logging.CRITICAL:
        return 2
    if levelno >= logging.ERROR:
        return 3
    if levelno >= logging.WARNING:
        return 4
    return 6 if levelno >= logging.INFO else 7


def stderr_is_journal() -> bool:
    """Whether stderr is systemd's journal stream (JOURNAL_STREAM is its "device:inode")."""
    dev, sep, ino = os.environ.get("JOURNAL_STREAM", "").partition(":")
    if not sep:
        return False
    try:
        st = os.fstat(sys.stderr.fileno())
        return (st.st_dev, st.st_ino) == (int(dev), int(ino))
    except (OSError, ValueError, AttributeError):  # no real stderr (a test harness) or a garbled variable
        return False


class JournalFormatter(logging.Formatter):
    """Every line prefixed with the record's sd-daemon priority `<N>`: the journal reads it per line."""

    def format(self, record: logging.LogRecord) -> str:
        """The formatted record, each of its lines prefixed."""
        prefix = f"<{journal_priority(record.levelno)}>"
        return "\n".join(prefix + line for line in super().format(record).split("\n"))


def is_library(name: str) -> bool:
    """Whether a logger belongs to a third-party library kept at INFO."""
    return name.partition(".")[0].startswith(LIBRARY_LOGGERS)


def _floor(name: str) -> int:
    return logging.WARNING if name.partition(".")[0].startswith(CHATTY_LOGGERS) else logging.INFO


class SecretScrubber(logging.Filter):
    """Replaces every registered secret in a record's message, arguments, traceback and stack."""

    def __init__(self, formatter: logging.Formatter, *, quiet_libraries: bool = True) -> None:
        super().__init__()
        self._formatter = formatter
        self._quiet_libraries = quiet_libraries

    def filter(self, record: logging.LogRecord) -> bool:
        """Drop library DEBUG lines unless asked; rewrite the rest in place, scrubbed, and keep them."""
        if self._quiet_libraries and is_library(record.name) and record.levelno < _floor(record.name):
            return False
        try:
            message = record.getMessage()
        except (TypeError, ValueError):  # arguments that do not fit the format: keep both, scrubbed
            message = f"{record.msg!s} {record.args!r}"
        record.msg, record.args = scrub_secrets(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = self._formatter.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = scrub_secrets(record.exc_text)
            # exc_text is what formatters print; without exc_info nothing can re-render the raw text.
            record.exc_info = None
        if record.stack_info:
            record.stack_info = scrub_secrets(record.stack_info)
        return True


class _Handler(logging.StreamHandler[TextIO]):
    """Our stderr handler, marked so a second configure_logging replaces it instead of adding one."""

    # Always the current sys.stderr: a handler that kept the stream it was made with would write
    # to a closed file once the process (or a test harness) swaps stderr.
    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, _value: TextIO) -> None:
        pass


def configure_logging(level: str, *, verbose_libraries: bool = False) -> None:
    """Plain lines on stderr at `level`, secrets scrubbed; libraries stay at INFO unless verbose_libraries."""
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _Handler)]:
        root.removeHandler(old)
    formatter = JournalFormatter(FORMAT) if stderr_is_journal() else logging.Formatter(FORMAT)
    handler = _Handler(sys.stderr)
    handler.setFormatter(formatter)
    handler.addFilter(SecretScrubber(formatter, quiet_libraries=not verbose_libraries))
    root.addHandler(handler)
    numeric = logging.getLevelName(level.upper())
    root.setLevel(numeric if isinstance(numeric, int) else logging.INFO)
    library_level = logging.NOTSET if verbose_libraries else max(logging.INFO, root.level)
    # Levels spare the formatting work; the handler's filter catches loggers created later.
    names = set(LIBRARY_LOGGERS) | {"httpx2", "httpcore2", "langchain_core", "langchain_openai"}
    names.update(n for n in logging.root.manager.loggerDict if is_library(n))
    for name in names:
        chatty = verbose_libraries is False and name.partition(".")[0].startswith(CHATTY_LOGGERS)
        logging.getLogger(name).setLevel(max(logging.WARNING, root.level) if chatty else library_level)
