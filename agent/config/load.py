"""Reading the configuration: the main file then conf.d/*.toml, merged and validated once."""

from __future__ import annotations

import json
import re
import stat
import threading
import tomllib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, quote_plus, urlsplit

from pydantic import BaseModel, SecretStr, ValidationError

from watchstander.guidance.config import masked_url

from ..errors import ConfigError
from .model import AgentConfig

DEFAULT_CONFIG_PATH = Path("/etc/watchstander/watchstander.toml")
_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")


def _merge(base: dict[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        elif isinstance(value, list) and isinstance(out.get(key), list) and key in ("assets", "devices"):
            out[key] = out[key] + list(value)  # drop-ins add assets and devices rather than replace them
        else:
            out[key] = value
    return out


def config_files(path: Path | None) -> list[Path]:
    """The files that make up the configuration, in the order they are applied.

    A file or folder this user may not look into is a ConfigError naming it, not a traceback:
    /etc/watchstander is the service's, and people outside its group get a clear refusal.
    """
    main = path or DEFAULT_CONFIG_PATH
    dropins = main.parent / "conf.d"
    try:
        files = [main] if main.exists() else []
        if dropins.is_dir():
            files.extend(sorted(p for p in dropins.glob("*.toml") if p.is_file()))
    except PermissionError as exc:
        raise ConfigError(f"permission denied reading the configuration: {exc.filename or main}",
                          [(str(exc.filename or main), ("permission denied: ask for the watchstander group, "
                                                        "or use --config with a file you may read"))]) from None
    return files


def load_config(path: str | Path | None = None) -> AgentConfig:
    """Read, merge and validate the configuration; raises ConfigError naming every bad key."""
    explicit = Path(path) if path is not None else None
    if explicit is not None and not explicit.exists():
        raise ConfigError(f"config file not found: {explicit}", [("--config", f"{explicit} does not exist")])
    raw: dict[str, Any] = {}
    per_file: list[tuple[Path, dict[str, Any]]] = []
    problems: list[tuple[str, str]] = []
    for file in config_files(explicit):
        try:
            with open(file, "rb") as fh:
                data = tomllib.load(fh)
        except tomllib.TOMLDecodeError as exc:
            problems.append((str(file), f"TOML syntax: {exc}"))
        except (ValueError, RecursionError) as exc:
            # tomllib raises these for integers over 4300 digits and for very deep nesting.
            problems.append((str(file), f"TOML not usable: {str(exc)[:120]}"))
        except OSError as exc:
            problems.append((str(file), f"cannot read: {exc.strerror}"))
        else:
            raw = _merge(raw, data)
            per_file.append((file, data))
    if problems:
        raise ConfigError("configuration files could not be read", problems)
    cfg = validate_config(raw)
    _check_inline_secrets(cfg, per_file)
    _register_config_secrets(cfg)
    return cfg


def _check_inline_secrets(cfg: AgentConfig, files: list[tuple[Path, dict[str, Any]]]) -> None:
    """Refuse a secret written inline in a file every local user can read (the *_file keys are the way out)."""
    problems: list[tuple[str, str]] = []
    paths = [path for path, _ in _secrets_in(cfg)]
    for file, data in files:
        held = [p for p in paths if _lookup(data, p) is not None]
        if not held:
            continue
        try:
            mode = file.stat().st_mode
        except OSError as exc:
            problems.append((str(file), f"cannot stat: {exc.strerror}"))
            continue
        if mode & stat.S_IROTH:
            why = (f"held inline in {file}, which has mode {stat.S_IMODE(mode):o} and any local user can read; "
                   "make it 0640 or 0600, or use the *_file key")
            problems.extend((".".join(path), why) for path in held)
    if problems:
        raise ConfigError("a secret is held in a configuration file others can read", problems)


def _secrets_in(model: BaseModel, prefix: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], SecretStr]]:
    for name in type(model).model_fields:
        value = getattr(model, name)
        if isinstance(value, SecretStr):
            yield (*prefix, name), value
        elif isinstance(value, BaseModel):
            yield from _secrets_in(value, (*prefix, name))


def _lookup(data: Mapping[str, Any], path: tuple[str, ...]) -> Any:
    node: Any = data
    for part in path:
        if not isinstance(node, Mapping):
            return None
        node = node.get(part)
    return node


def _register_config_secrets(cfg: AgentConfig) -> None:
    """Every secret in the config, and every token riding in a URL, goes to the log scrubber."""
    for _path, secret in _secrets_in(cfg):
        register_secret(secret.get_secret_value())
    for text in _strings(cfg.model_dump(mode="json")):
        if not _URL.match(text):
            continue
        try:
            parts = urlsplit(text)
            password = parts.password
        except ValueError:
            continue
        if password:
            register_secret(password)
        for _name, value in parse_qsl(parts.query, keep_blank_values=True):
            if len(value) >= MIN_URL_TOKEN_CHARS:
                register_secret(value)


def _strings(obj: Any) -> Iterator[str]:
    if isinstance(obj, str):
        yield obj
    elif isinstance(obj, Mapping):
        for value in obj.values():
            yield from _strings(value)
    elif isinstance(obj, list):
        for value in obj:
            yield from _strings(value)


def validate_config(raw: Mapping[str, Any]) -> AgentConfig:
    """Validate a merged raw mapping into an AgentConfig."""
    try:
        return AgentConfig.model_validate(raw)
    except ValidationError as exc:
        problems = [(_key_path(err["loc"]), err["msg"]) for err in exc.errors()]
        raise ConfigError(f"{len(problems)} configuration error(s)", problems) from exc


def _key_path(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif not part or any(c in part for c in '.[]" \\'):
            out += f"[{json.dumps(part, ensure_ascii=False)}]"  # a key that would read as a path is quoted
        else:
            out += f".{part}" if out else part
    return out or "(top level)"


def masked_dump(cfg: AgentConfig) -> dict[str, Any]:
    """The effective config as plain data with every secret, URL userinfo and query value shown as '**********'."""
    masked: dict[str, Any] = _mask_urls(cfg.model_dump(mode="json"))  # SecretStr serialises masked in JSON mode
    return masked


def _mask_urls(obj: Any) -> Any:
    if isinstance(obj, str):
        return masked_url(obj) if _URL.match(obj) else obj
    if isinstance(obj, dict):
        return {key: _mask_urls(value) for key, value in obj.items()}
    if isinstance(obj, list):
        return [_mask_urls(value) for value in obj]
    return obj


# -- secrets the process holds, so that log output can be scrubbed of them ----------------------
# The registry sits on the bottom floor because whoever reads a secret (the triage credentials,
# the config loader) is below the CLI that installs the log handler (agent/cli/logs.py).

MASK = "**********"
MIN_SECRET_CHARS = 4  # shorter fragments would mask ordinary words; a real secret is longer
MIN_URL_TOKEN_CHARS = 8  # a query value this long may be a token; "v=1" or "mode=ro" is not
_secrets: set[str] = set()
_pattern: re.Pattern[str] | None = None
_secrets_lock = threading.Lock()
_BACKSLASHED = str.maketrans({"\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t", "'": "\\'", '"': '\\"'})


def register_secret(value: str) -> None:
    """Remember a secret so that scrub_secrets() removes every written form of it."""
    global _pattern
    if len(value.strip()) < MIN_SECRET_CHARS:
        return
    with _secrets_lock:
        if value in _secrets:
            return
        _secrets.add(value)
        forms = sorted({f for s in _secrets for f in secret_forms(s)}, key=len, reverse=True)
        _pattern = re.compile("|".join(re.escape(f) for f in forms)) if forms else None


def secret_forms(secret: str) -> set[str]:
    """The ways a secret can be written into a log line: raw, each line, repr-, JSON- and URL-escaped."""
    bases = {secret, secret.strip(), *(line.strip() for line in secret.splitlines())}
    out: set[str] = set()
    for base in bases:
        once = set(_escapes(base))
        out |= once
        for form in list(once):
            out |= set(_escapes(form))  # escaped twice: a repr of a dict holding a repr, a JSON string in a log
    return {f for f in out if len(f) >= MIN_SECRET_CHARS}


def _escapes(text: str) -> Iterator[str]:
    yield text
    yield repr(text)[1:-1]
    yield text.translate(_BACKSLASHED)  # both quotes escaped, as repr does for a text holding both
    yield text.encode("unicode_escape").decode("ascii")
    yield repr(text.encode("utf-8", "backslashreplace"))[2:-1]
    yield json.dumps(text)[1:-1]
    yield json.dumps(text, ensure_ascii=False)[1:-1]
    yield quote(text, safe="")
    yield quote(text)
    yield quote_plus(text)


def scrub_secrets(text: str) -> str:
    """`text` with every registered secret, in any of its written forms, replaced by the mask."""
    pattern = _pattern
    return pattern.sub(MASK, text) if pattern is not None and text else text
