"""Issue 13: reminder secrets are not taken from files others can read; `config check` masks URL tokens."""

from __future__ import annotations

import json
import logging
import socket
from collections.abc import Callable
from datetime import date
from pathlib import Path

import pytest

from watchstander.agent.cli.logs import configure_logging
from watchstander.agent.cli.main import main
from watchstander.agent.config.load import load_config
from watchstander.guidance.errors import NotifyError
from watchstander.guidance.reminders import WebhookNotifier

pytestmark = pytest.mark.integration

QUERY_TOKEN = "QUERYTOKEN-0a1b2c3d"
HOOK_TOKEN = "HOOKTOKEN-4e5f6a7b"
HOOK_PASSWORD = "hunter2-userinfo-pw"
INLINE = "INLINE-smtp-pw-8c9d"
FROM_FILE = "FROMFILE-token-1f2e"

URLS = f"""
[triage]
model = "openai:local"
base_url = "http://10.1.2.3:8000/v1?api-key={QUERY_TOKEN}&deployment=blue"

[guidance.reminders.webhook]
url = "https://hookuser:{HOOK_PASSWORD}@hooks.example.mil/notify?token={HOOK_TOKEN}&v=1"
"""


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def private_config(config_file: Callable[..., Path]) -> Callable[..., Path]:
    """config_file, then mode 0600 unless told otherwise."""

    def make(extra: str = "", mode: int = 0o600) -> Path:
        path = config_file(extra)
        path.chmod(mode)
        return path

    return make


@pytest.mark.parametrize("fmt", ["toml", "json"])
def test_config_check_masks_url_query_values_and_userinfo(capsys, private_config, fmt) -> None:
    cfg = private_config(URLS)
    code, out, err = run(capsys, "config", "check", "--config", str(cfg), "--format", fmt)
    assert code == 0, err
    for secret in (QUERY_TOKEN, HOOK_TOKEN, HOOK_PASSWORD, "hookuser"):
        assert secret not in out
    # What is not secret stays readable: scheme, host, path and the names of the parameters.
    assert "http://10.1.2.3:8000/v1?api-key=**********&deployment=**********" in out
    assert "https://**********@hooks.example.mil/notify?token=**********&v=**********" in out
    if fmt == "json":
        json.loads(out)


@pytest.mark.parametrize(("section", "key"), [("guidance.reminders.smtp", "password"),
                                              ("guidance.reminders.webhook", "token")])
def test_inline_secret_in_a_world_readable_config_is_refused(capsys, private_config, section, key) -> None:
    extra = (f'[{section}]\n{key} = "{INLINE}"\n'
             + ('host = "127.0.0.1"\nto_addrs = ["a@example.mil"]\n' if "smtp" in section else
                'url = "https://hooks.example.mil/x"\n'))
    cfg = private_config(extra, mode=0o644)
    code, out, err = run(capsys, "config", "check", "--config", str(cfg))
    assert code == 2
    assert f"{section}.{key}" in err and str(cfg) in err and "644" in err
    assert INLINE not in out + err
    cfg.chmod(0o640)  # the service's group may read it; others may not
    code, out, err = run(capsys, "config", "check", "--config", str(cfg))
    assert code == 0, err
    assert INLINE not in out and "**********" in out


def test_inline_secret_in_a_world_readable_dropin_is_refused(capsys, private_config) -> None:
    cfg = private_config()
    dropins = cfg.parent / "conf.d"
    dropins.mkdir()
    dropin = dropins / "50-hook.toml"
    dropin.write_text(f'[guidance.reminders.webhook]\nurl = "https://h.example.mil/x"\ntoken = "{INLINE}"\n',
                      encoding="utf-8")
    dropin.chmod(0o604)
    code, _, err = run(capsys, "config", "check", "--config", str(cfg))
    assert code == 2 and str(dropin) in err and "guidance.reminders.webhook.token" in err


@pytest.mark.parametrize(("section", "key", "extra"), [
    ("guidance.reminders.smtp", "password_file", 'host = "127.0.0.1"\nto_addrs = ["a@example.mil"]\n'),
    ("guidance.reminders.webhook", "token_file", 'url = "https://hooks.example.mil/x"\n'),
])
def test_secret_files_are_read_with_a_mode_check(capsys, private_config, tmp_path, section, key, extra) -> None:
    secret = tmp_path / "secret"
    secret.write_text(FROM_FILE + "\n", encoding="utf-8")
    secret.chmod(0o644)
    # The config itself may be world-readable: it holds no secret, only where the secret is.
    cfg = private_config(f'[{section}]\n{key} = "{secret}"\n{extra}', mode=0o644)
    code, out, err = run(capsys, "config", "check", "--config", str(cfg))
    assert code == 2 and f"{section}: Value error, {key}: {secret} has mode 644" in err
    assert FROM_FILE not in out + err
    secret.chmod(0o600)
    code, out, err = run(capsys, "config", "check", "--config", str(cfg))
    assert code == 0, err
    assert FROM_FILE not in out
    reminders = load_config(cfg).guidance.reminders
    value = reminders.smtp.password if "smtp" in section else reminders.webhook.token
    assert value is not None and value.get_secret_value() == FROM_FILE
    (tmp_path / "missing").unlink(missing_ok=True)
    cfg = private_config(f'[{section}]\n{key} = "{tmp_path / "missing"}"\n{extra}')
    code, _, err = run(capsys, "config", "check", "--config", str(cfg))
    assert code == 2 and f"{key}: {tmp_path / 'missing'}: No such file" in err


def test_inline_and_file_together_are_refused(capsys, private_config, tmp_path) -> None:
    secret = tmp_path / "secret"
    secret.write_text(FROM_FILE, encoding="utf-8")
    secret.chmod(0o600)
    cfg = private_config(f'[guidance.reminders.webhook]\nurl = "https://h.example.mil/x"\ntoken = "{INLINE}"\n'
                         f'token_file = "{secret}"\n')
    code, _, err = run(capsys, "config", "check", "--config", str(cfg))
    assert code == 2 and "token_file" in err


def test_webhook_failure_does_not_print_the_url_token(private_config) -> None:
    with socket.socket() as sock:  # a loopback port with nobody listening
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    cfg = load_config(private_config(f'[guidance.reminders.webhook]\nurl = "http://127.0.0.1:{port}/x?token={HOOK_TOKEN}"\n'))
    with pytest.raises(NotifyError) as caught:
        WebhookNotifier(cfg.guidance.reminders.webhook).send([], date(2026, 11, 27), "org")
    assert HOOK_TOKEN not in str(caught.value) and f"127.0.0.1:{port}/x?token=**********" in str(caught.value)


def test_url_tokens_from_the_config_are_scrubbed_from_log_lines(private_config, capsys) -> None:
    """httpx logs the request URL at INFO; a token in base_url's query string must not show there."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    levels = {n: lg.level for n, lg in logging.root.manager.loggerDict.items() if isinstance(lg, logging.Logger)}
    try:
        cfg = load_config(private_config(URLS))
        configure_logging("INFO")
        url = f"{cfg.triage.base_url.rstrip('/')}/chat/completions"  # type: ignore[union-attr]
        logging.getLogger("httpx").info('HTTP Request: POST %s "HTTP/1.1 500 Internal Server Error"', url)
        err = capsys.readouterr().err
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
        for name, logger in list(logging.root.manager.loggerDict.items()):
            if isinstance(logger, logging.Logger):
                logger.setLevel(levels.get(name, logging.NOTSET))
    assert "HTTP Request: POST http://10.1.2.3:8000/v1?api-key=" in err
    assert QUERY_TOKEN not in err and HOOK_TOKEN not in err
