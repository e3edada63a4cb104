"""Reading the configuration: the main file then conf.d/*.toml, merged and validated once."""

from __future__ import annotations

import json
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from ..errors import ConfigError
from .model import AgentConfig

DEFAULT_CONFIG_PATH = Path("/etc/watchstander/watchstander.toml")


def _merge(base: dict[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        elif isinstance(value, list) and isinstance(out.get(key), list) and key == "assets":
            out[key] = out[key] + list(value)  # drop-ins add assets rather than replace them
        else:
            out[key] = value
    return out


def config_files(path: Path | None) -> list[Path]:
    """The files that make up the configuration, in the order they are applied."""
    main = path or DEFAULT_CONFIG_PATH
    files = [main] if main.exists() else []
    dropins = main.parent / "conf.d"
    if dropins.is_dir():
        files.extend(sorted(p for p in dropins.glob("*.toml") if p.is_file()))
    return files


def load_config(path: str | Path | None = None) -> AgentConfig:
    """Read, merge and validate the configuration; raises ConfigError naming every bad key."""
    explicit = Path(path) if path is not None else None
    if explicit is not None and not explicit.exists():
        raise ConfigError(f"config file not found: {explicit}", [("--config", f"{explicit} does not exist")])
    raw: dict[str, Any] = {}
    problems: list[tuple[str, str]] = []
    for file in config_files(explicit):
        try:
            with open(file, "rb") as fh:
                raw = _merge(raw, tomllib.load(fh))
        except tomllib.TOMLDecodeError as exc:
            problems.append((str(file), f"TOML syntax: {exc}"))
        except OSError as exc:
            problems.append((str(file), f"cannot read: {exc.strerror}"))
    if problems:
        raise ConfigError("configuration files could not be read", problems)
    return validate_config(raw)


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
    """The effective config as plain data with every secret shown as '**********'."""
    return cfg.model_dump(mode="json")  # SecretStr serialises masked in JSON mode
