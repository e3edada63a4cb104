"""The model's credential and the site's provider policy, checked at start-up."""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping
from pathlib import Path

from pydantic import SecretStr

from ..config.load import register_secret
from ..config.triage import CREDENTIAL_NAME, MAX_KEY_BYTES, TriageConfig
from ..errors import ConfigError


def check_provider_policy(config: TriageConfig) -> None:
    """Raise ConfigError when the configured provider is denied or not in the allowed list."""
    provider = config.provider
    if provider is None:
        return
    if provider in config.denied_providers:
        raise ConfigError(f"triage provider {provider!r} is denied by site policy",
                          [("triage.denied_providers", f"{provider!r} is denied; triage.model = {config.model!r}")])
    if config.allowed_providers is not None and provider not in config.allowed_providers:
        raise ConfigError(f"triage provider {provider!r} is not allowed by site policy",
                          [("triage.allowed_providers",
                            f"{provider!r} is not among {', '.join(config.allowed_providers) or '(none)'}")])


def load_api_key(config: TriageConfig, env: Mapping[str, str] | None = None) -> SecretStr | None:
    """The API key from `api_key_file`, else the systemd credential; None when neither exists.

    Raises ConfigError (naming `triage.api_key_file`) when the file cannot be read or others may read it.
    """
    env = os.environ if env is None else env
    if config.api_key_file is not None:
        return _read_key(config.api_key_file, "triage.api_key_file", check_mode=True)
    creds = env.get("CREDENTIALS_DIRECTORY")
    if creds:
        path = Path(creds) / CREDENTIAL_NAME
        if path.is_file():
            # systemd already restricts credentials to the service; no mode check needed.
            return _read_key(path, f"$CREDENTIALS_DIRECTORY/{CREDENTIAL_NAME}", check_mode=False)
    return None


def _read_key(path: Path, key_path: str, *, check_mode: bool) -> SecretStr:
    try:
        info = path.stat()
        if check_mode:
            if info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
                raise ConfigError("the triage API key file is readable by others",
                                  [(key_path, f"{path} has mode {stat.S_IMODE(info.st_mode):o}; use 0600 or 0400")])
            if hasattr(os, "geteuid") and info.st_uid not in (0, os.geteuid()):
                raise ConfigError("the triage API key file belongs to another user",
                                  [(key_path, f"{path} is owned by uid {info.st_uid}")])
        if info.st_size > MAX_KEY_BYTES:
            raise ConfigError("the triage API key file is too large", [(key_path, f"{path} is over 16 KiB")])
        text = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigError("the triage API key cannot be read",
                          [(key_path, f"{path}: {exc.strerror or type(exc).__name__}")]) from None
    except UnicodeDecodeError:
        raise ConfigError("the triage API key is not UTF-8 text", [(key_path, str(path))]) from None
    if not text:
        raise ConfigError("the triage API key file is empty", [(key_path, str(path))])
    # Before anything can log it: the log handler scrubs every registered secret in every form.
    register_secret(text)
    return SecretStr(text)
