"""Config loading and validation: any input gives a config or a ConfigError naming files and keys."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from watchstander.agent.config.load import load_config, validate_config
from watchstander.agent.config.model import AgentConfig
from watchstander.agent.errors import EXIT_CONFIG, ConfigError

SETTINGS = settings(max_examples=150, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


def _field_names(model: type[Any], out: set[str]) -> set[str]:
    for name, field in model.model_fields.items():
        out.add(name)
        ann = field.annotation
        if isinstance(ann, type) and hasattr(ann, "model_fields"):
            _field_names(ann, out)
    return out


# Any key text, including ".", "[" and empty keys, which key paths quote (["a.b"]).
KEYS = st.sampled_from(sorted(_field_names(AgentConfig, set()))) | st.text(
    st.characters(blacklist_categories=("Cs",)), max_size=6)
SCALARS = (st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12)
           | st.sampled_from(["UTC", "Mars/Olympus", "\x00", "10.0.0.0/8", "300.1.1.1/8", "bruteforce", "DEBUG", "x" * 300]))
VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(KEYS, inner, max_size=4),
                      max_leaves=15)
ASSETS = st.lists(st.fixed_dictionaries({"cidr": SCALARS, "name": SCALARS}, optional={"criticality": SCALARS,
                                                                                        "protected": SCALARS}),
                  max_size=3)


@SETTINGS
@given(st.dictionaries(KEYS, VALUES, max_size=5) | st.fixed_dictionaries({"assets": ASSETS}))
def test_validate_config_raises_only_config_error_with_key_paths(raw: dict[str, Any]) -> None:
    try:
        cfg = validate_config(raw)
    except ConfigError as exc:
        assert exc.exit_status == EXIT_CONFIG
        assert exc.problems
        for path, message in exc.problems:
            assert path and message
            if path.startswith('["'):
                head, _ = json.JSONDecoder().raw_decode(path, 1)  # a quoted top-level key
                assert head in raw, (path, sorted(raw))
                continue
            head = path.split(".", 1)[0].split("[", 1)[0]
            assert head in raw or path == "(top level)", (path, sorted(raw))
        return
    assert isinstance(cfg, AgentConfig)


def test_problem_paths_name_nested_keys_and_list_items() -> None:
    with pytest.raises(ConfigError) as info:
        validate_config({"detectors": {"portscan": {"window_s": -1}}, "assets": [{"cidr": "10.0.0.0/8", "name": "a"},
                                                                                 {"cidr": "nope", "name": "b"}]})
    paths = [p for p, _ in info.value.problems]
    assert "detectors.portscan.window_s" in paths
    assert "assets[1].cidr" in paths


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


@SETTINGS
@given(st.text(max_size=60))
def test_broken_toml_names_the_file(tmp_path: Path, text: str) -> None:
    main = _write(tmp_path / "watchstander.toml", "[logging]\nlevel = \"INFO\"\n")
    bad = _write(tmp_path / "conf.d" / "50-site.toml", text)
    try:
        tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        with pytest.raises(ConfigError) as info:
            load_config(main)
        assert [p for p, _ in info.value.problems] == [str(bad)]
        assert "TOML syntax" in info.value.problems[0][1]
        return
    try:
        load_config(main)
    except ConfigError as exc:
        assert exc.problems  # valid TOML, invalid settings: still named, by key


def test_missing_explicit_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path / "absent.toml")
    assert info.value.problems[0][0] == "--config"


@SETTINGS
@given(st.lists(st.sampled_from(["DEBUG", "INFO", "WARNING", "ERROR"]), min_size=1, max_size=5), st.randoms())
def test_dropins_apply_in_name_order(tmp_path: Path, levels: list[str], rnd: Any) -> None:
    for old in (tmp_path / "conf.d").glob("*.toml") if (tmp_path / "conf.d").exists() else []:
        old.unlink()
    main = _write(tmp_path / "watchstander.toml", "[detectors.portscan]\nwindow_s = 5.0\n")
    order = list(range(len(levels)))
    rnd.shuffle(order)  # write in a random order: only the names decide
    for i in order:
        _write(tmp_path / "conf.d" / f"{i:02d}.toml", f'[logging]\nlevel = "{levels[i]}"\n')
    cfg = load_config(main)
    assert cfg.logging.level == levels[-1]
    assert cfg.detectors.portscan.window_s == 5.0  # deep merge keeps the main file's other keys


def test_dropin_assets_are_appended(tmp_path: Path) -> None:
    main = _write(tmp_path / "watchstander.toml", '[[assets]]\ncidr = "10.0.0.0/24"\nname = "lan"\n')
    _write(tmp_path / "conf.d" / "10-dmz.toml", '[[assets]]\ncidr = "192.0.2.0/24"\nname = "dmz"\nprotected = true\n')
    _write(tmp_path / "conf.d" / "20-ot.toml", '[[assets]]\ncidr = "198.51.100.7"\nname = "plc"\n')
    _write(tmp_path / "conf.d" / "not-toml.conf", "garbage = [")
    cfg = load_config(main)
    assert [(a.name, a.cidr, a.protected) for a in cfg.assets] == [
        ("lan", "10.0.0.0/24", False), ("dmz", "192.0.2.0/24", True), ("plc", "198.51.100.7/32", False)]


def test_duplicate_asset_across_files_is_a_config_error(tmp_path: Path) -> None:
    main = _write(tmp_path / "watchstander.toml", '[[assets]]\ncidr = "10.0.0.0/24"\nname = "lan"\n')
    _write(tmp_path / "conf.d" / "10.toml", '[[assets]]\ncidr = "10.1.0.0/24"\nname = "lan"\n')
    with pytest.raises(ConfigError, match="configuration error"):
        load_config(main)
