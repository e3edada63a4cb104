"""[policy.people]: identities from different doors resolve to one person; the config refuses ambiguity."""

from __future__ import annotations

import pytest

from watchstander.agent.config.load import validate_config
from watchstander.agent.errors import ConfigError
from watchstander.agent.policy.people import People


def test_listed_identities_are_one_person_and_others_stay_themselves() -> None:
    people = People({"alice": ["uid:1001", "console:1234567890@MIL"]})
    assert people("uid:1001:alice") == people("uid:1001") == people("console:1234567890@mil") == "person:alice"
    assert people("uid:1002:bob") == "uid:1002"
    assert people("console:someone@mil") == "console:someone@mil"
    assert People()("uid:7:x") == "uid:7"


@pytest.mark.parametrize("people", [
    {"alice": ["uid:1001"], "bob": ["uid:1001"]},                    # one identity, two people
    {"alice": ["console:A@mil"], "bob": ["console:a@mil"]},          # same certificate, other case
    {"alice": ["alice"]},                                            # not an identity form
    {"al ice": ["uid:1"]},
    {"alice": ["console:x\ny"]},
])
def test_the_config_refuses_ambiguous_or_malformed_people(people: dict[str, list[str]]) -> None:
    with pytest.raises(ConfigError):
        validate_config({"policy": {"people": people}})


def test_a_valid_people_table_loads() -> None:
    cfg = validate_config({"policy": {"people": {"alice": ["uid:1001", "console:1234567890@mil"]}}})
    assert cfg.policy.people["alice"] == ("uid:1001", "console:1234567890@mil")
