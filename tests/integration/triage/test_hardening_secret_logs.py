"""Issue 13: with -v (DEBUG), a failing model call logs no form of the API key, nor do the libraries."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote, quote_plus

import pytest

from watchstander.agent.cli.logs import configure_logging, register_secret

pytestmark = pytest.mark.integration

# Two lines, with a double quote, a single quote and a backslash: every escaping scheme changes it.
# (A newline cannot go into a header, so the call fails in the client; the one-line key reaches the
# server, which answers HTTP 500.)
TWO_LINES = 'sk-LEAK-first"half\\9f3c\nsecond\'half-LEAK-77ab'
ONE_LINE = 'sk-LEAK-one"line\\a1b2-\'quoted\'-c3d4'
KEY = TWO_LINES
LIBRARIES = ("httpx", "httpcore", "httpx2", "httpcore2", "openai", "urllib3", "asyncio", "sqlalchemy", "langchain",
             "langchain_core", "langchain_openai")


def forms(secret: str) -> set[str]:
    """Every way the secret could be written into a log line."""
    out = {secret, *secret.splitlines()}
    out |= {repr(secret)[1:-1], repr(secret.encode())[2:-1], json.dumps(secret)[1:-1],
            json.dumps(secret, ensure_ascii=False)[1:-1], quote(secret, safe=""), quote_plus(secret),
            secret.encode("unicode_escape").decode("ascii")}
    out |= {repr(f)[1:-1] for f in list(out)}  # escaped once more, as inside a repr of a dict
    return {f for f in out if f}


@pytest.fixture(params=[TWO_LINES, ONE_LINE], ids=["two-lines", "one-line"])
def key_file(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    """Overrides the conftest's key file: a key with quotes and a backslash, on two lines or one."""
    path = tmp_path / "triage-api-key"
    path.write_text(request.param + "\n", encoding="utf-8")
    path.chmod(0o600)
    return path


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """Put the root logger and the library loggers back as they were."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    levels = {n: lg.level for n, lg in logging.root.manager.loggerDict.items() if isinstance(lg, logging.Logger)}
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    for name, logger in list(logging.root.manager.loggerDict.items()):
        if isinstance(logger, logging.Logger):
            logger.setLevel(levels.get(name, logging.NOTSET))


def test_debug_logging_of_a_failed_call_carries_no_form_of_the_key(
        make_service, llm_server, kit, key_file, capsys, restore_logging) -> None:
    key = key_file.read_text(encoding="utf-8").strip()
    configure_logging("DEBUG")
    llm_server.script(then=kit.status(500))
    svc = make_service()
    inc = kit.incident()
    verdict = svc.triage(inc, kit.baseline(inc), {})
    # Something was logged at DEBUG by our code, including the scrubbed traceback.
    err = capsys.readouterr().err
    assert verdict.provenance.analyst == "baseline"
    if "\n" not in key:
        assert llm_server.calls == 1 and verdict.provenance.fallback_reason == "error: HTTP 500"
    assert "DEBUG watchstander.agent.triage.service" in err and "Traceback" in err
    # The libraries' own DEBUG lines (connection and header events) are not shown without asking.
    assert not [line for line in err.splitlines() if line.startswith("DEBUG ") and " watchstander." not in line]
    leaked = sorted(f for f in forms(key) if f in err)
    assert leaked == [], f"key leaked to stderr as {leaked}"


def test_libraries_stay_at_info_unless_asked(restore_logging, capsys) -> None:
    configure_logging("DEBUG")
    assert logging.getLogger().level == logging.DEBUG
    for name in LIBRARIES:
        assert logging.getLogger(name).getEffectiveLevel() >= logging.INFO, name
    assert logging.getLogger("httpcore.http11").getEffectiveLevel() >= logging.INFO
    configure_logging("DEBUG", verbose_libraries=True)
    assert logging.getLogger("httpcore.http11").getEffectiveLevel() == logging.DEBUG
    # Configuring twice installs one handler, not two.
    logging.getLogger("watchstander.test").warning("once")
    assert capsys.readouterr().err.count("once") == 1


def test_every_representation_is_scrubbed_from_message_args_and_exceptions(restore_logging, capsys) -> None:
    register_secret(KEY)
    configure_logging("DEBUG")
    log = logging.getLogger("watchstander.test")
    for form in sorted(forms(KEY)):
        log.info("message %s", form)
        log.info("inline " + form)
        log.info("dict %r", {"headers": {"authorization": f"Bearer {form}"}})
    try:
        raise ValueError(f"bad header {KEY.encode()!r}")
    except ValueError:
        log.debug("traceback", exc_info=True)
    err = capsys.readouterr().err
    assert "Traceback" in err and err.count("**********") >= 3
    assert sorted(f for f in forms(KEY) if f in err) == []
