"""Property tests: typed parameters are the security boundary, and the loader never crashes."""

from __future__ import annotations

import re
import shlex
import string

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from watchstander.playbooks import ParameterError, PlaybookValidationError, load_playbook_bytes
from watchstander.playbooks.inputs import check_ipv4

SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

OCTET = r"(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
DOTTED_QUAD = re.compile(rf"{OCTET}(\.{OCTET}){{3}}")
SHELL_META = set(";|&$`<>(){}[]*?!~#'\"\\ \t\n\r%^=,@")

# One playbook that puts every input type into an SSH command line and an IOS config line.
EVERY_TYPE = """\
id: every-type
version: 1
title: Every input type
description: Substitutes every input type into commands.
risk: low
inputs:
  dev: {type: device, role: r, description: d}
  v4: {type: ipv4, description: d}
  v6: {type: ipv6, description: d}
  ip: {type: ip, description: d}
  net: {type: cidr, min_prefix_v4: 0, min_prefix_v6: 0, description: d}
  host: {type: hostname, description: d}
  ifname: {type: interface, description: d}
  num: {type: integer, min: -100000, max: 100000, description: d}
  choice: {type: enum, values: [a, b.c, d-e], description: d}
  ident: {type: identifier, description: d}
steps:
  - id: run
    action: ssh.command
    args:
      target: "{{ inputs.dev }}"
      argv: [echo, "{{ inputs.v4 }}", "{{ inputs.v6 }}", "{{ inputs.ip }}", "{{ inputs.net }}",
             "{{ inputs.host }}", "{{ inputs.ifname }}", "x{{ inputs.num }}", "{{ inputs.choice }}",
             "{{ inputs.ident }}"]
  - id: conf
    action: ssh.config
    args:
      target: "{{ inputs.dev }}"
      platform: cisco-ios
      lines: ["description {{ inputs.host }} {{ inputs.ident }} {{ inputs.ifname }} {{ inputs.v6 }}"]
"""
PLAYBOOK = load_playbook_bytes(EVERY_TYPE.encode(), "every-type.yaml")
VALID = {"dev": "fw1", "v4": "192.0.2.1", "v6": "2001:db8::1", "ip": "192.0.2.2", "net": "10.0.0.0/8",
         "host": "a.example", "ifname": "Gi1/0/1", "num": 7, "choice": "b.c", "ident": "inc-1"}

hostile = st.one_of(
    st.text(max_size=60),
    st.text(alphabet=string.printable, max_size=60),
    st.from_regex(r"\A[0-9a-fA-F.:/%]{1,45}\Z"),
    st.sampled_from(["fe80::1%$(id)", "1.2.3.4;id", "eth0 ; reboot", "a`b`", "$(x)", "1.2.3.4\n", "x\x00"]),
    st.integers(), st.booleans(), st.none(), st.lists(st.text(max_size=5), max_size=3),
)


@SETTINGS
@given(st.one_of(st.text(max_size=20), st.text(alphabet="0123456789.", max_size=20),
                 st.from_regex(r"\A[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}\Z")))
def test_random_strings_pass_as_ipv4_only_when_they_are_one(text: str) -> None:
    try:
        value = PLAYBOOK.validate_parameters({**VALID, "v4": text})["v4"]
    except ParameterError as exc:
        assert exc.input == "v4"
        assert not DOTTED_QUAD.fullmatch(text)
    else:
        assert DOTTED_QUAD.fullmatch(text) and value == text
        assert check_ipv4(text) == text


@SETTINGS
@given(st.sampled_from(sorted(VALID)), hostile)
def test_shell_metacharacters_never_reach_a_rendered_command(name: str, value: object) -> None:
    try:
        rendered = PLAYBOOK.render({**VALID, name: value})
    except ParameterError as exc:
        assert exc.input == name
        return
    run, conf = rendered
    assert run.command_line is not None
    assert not SHELL_META & (set(run.command_line) - {" "})  # spaces only between words:
    assert shlex.split(run.command_line) == list(run.args.argv)  # type: ignore[attr-defined]
    assert len(run.args.argv) == 10  # type: ignore[attr-defined]
    assert not SHELL_META & (set(conf.args.lines[0]) - {" "})  # type: ignore[attr-defined]


@SETTINGS
@given(st.binary(max_size=2048))
def test_arbitrary_bytes_never_crash_the_loader(raw: bytes) -> None:
    try:
        load_playbook_bytes(raw, "fuzz.yaml")
    except PlaybookValidationError as exc:
        assert exc.problems and all(p.file == "fuzz.yaml" for p in exc.problems)


@SETTINGS
@given(st.text(alphabet=":-[]{}&*!|>'\"#%@`,?\n\t abc01.~=", max_size=400))
def test_yaml_like_text_never_crashes_the_loader(text: str) -> None:
    try:
        load_playbook_bytes(text.encode(), "fuzz.yaml")
    except PlaybookValidationError as exc:
        assert exc.problems


@SETTINGS
@given(st.integers(min_value=0, max_value=len(EVERY_TYPE) - 1), st.binary(min_size=1, max_size=4))
def test_corrupting_a_valid_playbook_never_crashes_the_loader(position: int, junk: bytes) -> None:
    raw = EVERY_TYPE.encode()
    try:
        playbook = load_playbook_bytes(raw[:position] + junk + raw[position + 1:], "fuzz.yaml")
    except PlaybookValidationError as exc:
        assert exc.problems
    else:
        assert len(playbook.content_hash) == 64
