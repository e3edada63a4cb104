"""Config error key paths stay unambiguous for keys that contain path characters."""

from __future__ import annotations

import pytest

from watchstander.agent.config.load import validate_config
from watchstander.agent.errors import ConfigError


@pytest.mark.parametrize(("raw", "path"), [
    ({"a.b": 1}, '["a.b"]'),
    ({"": 1}, '[""]'),
    ({"detectors": {"x[0]": 1}}, 'detectors["x[0]"]'),
    ({"detectors": {"portscan": {"window_s": -1}}}, "detectors.portscan.window_s"),
    ({"assets": [{"cidr": "10.0.0.0/8"}]}, "assets[0].name"),
])
def test_key_paths(raw: dict[str, object], path: str) -> None:
    with pytest.raises(ConfigError) as exc:
        validate_config(raw)
    assert path in [p for p, _ in exc.value.problems]
