"""A hostile config file is a ConfigError naming the file, never a traceback (found by benchmarks/fuzz_readers.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from watchstander.agent.config.load import load_config
from watchstander.agent.errors import ConfigError


@pytest.mark.parametrize("text", [
    "a = " + "[" * 5000 + "]" * 5000 + "\n",   # RecursionError inside tomllib
    "a = " + "1" * 5000 + "\n",                # ValueError: int over 4300 digits
    "a = {" * 3000 + "\n",
], ids=["deep-arrays", "huge-int", "deep-inline-tables"])
def test_tomllib_failures_are_config_errors(tmp_path: Path, text: str) -> None:
    path = tmp_path / "w.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert err.value.problems and err.value.problems[0][0] == str(path)
