"""deploy/scorer.toml is the configuration reference: every key of `consumer.config`, documented.

A key is documented by a line ``key = value  # what it does`` (set for this image) or
``# key = default  # what it does`` (the built-in default), inside its ``[section]`` (or a
commented ``# [table]`` header for tables). The test fails when the code has a key the reference
lacks, when a key has no comment, when a commented default differs from the code's, or when the
reference names a key the code does not read.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pytest

from consumer.config import config_keys, load_config
from tests.deploy.contract import DEPLOY, ROOT, load_yaml

REFERENCE = DEPLOY / "scorer.toml"
HEADER = re.compile(r"^#?\s*\[([a-z_.]+)\]\s*(#.*)?$")
ENTRY = re.compile(r"^(#\s*)?([a-z_]+)\s*=\s*(.*?)\s*(#\s*(.*))?$")


@dataclass(frozen=True, slots=True)
class Entry:
    key: str
    value: str
    commented: bool
    doc: str


def reference_entries() -> dict[str, Entry]:
    entries: dict[str, Entry] = {}
    section = ""
    previous_comment = ""
    for raw in REFERENCE.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        header = HEADER.match(line)
        if header:
            section = header.group(1)
            entries[section] = Entry(section, "", line.startswith("#"), header.group(2) or "")
            continue
        entry = ENTRY.match(line)
        if entry and section and not _is_table(section):
            key = f"{section}.{entry.group(2)}"
            doc = entry.group(5) or previous_comment
            entries[key] = Entry(key, entry.group(3), bool(entry.group(1)), doc)
        previous_comment = line.lstrip("# ").strip() if line.startswith("#") and not entry else ""
    return entries


def _is_table(section: str) -> bool:
    return isinstance(config_keys().get(section), Mapping)


def test_every_key_of_the_configuration_is_in_the_reference_with_a_comment() -> None:
    entries = reference_entries()
    missing = [key for key in config_keys() if key not in entries]
    assert not missing, f"keys missing from deploy/scorer.toml: {missing}"
    undocumented = [key for key in config_keys() if not entries[key].doc.strip()]
    assert not undocumented, f"keys without a comment in deploy/scorer.toml: {undocumented}"


def test_the_reference_names_no_key_the_code_does_not_read() -> None:
    sections = {key.split(".")[0] for key in config_keys()}
    unknown = [key for key in reference_entries() if key not in config_keys()
               and key not in sections]  # fmt: skip
    assert not unknown, f"deploy/scorer.toml documents keys the code does not have: {unknown}"


def test_commented_defaults_are_the_codes_defaults() -> None:
    defaults = config_keys()
    for key, entry in reference_entries().items():
        if not entry.commented or key not in defaults or _is_table(key):
            continue
        value: Any = tomllib.loads(f"v = {entry.value}")["v"]
        assert value == defaults[key], (
            f"{key}: the reference says {value!r}, the code {defaults[key]!r}"
        )


def test_the_reference_loads_and_its_examples_are_valid() -> None:
    load_config({}, REFERENCE.read_text(encoding="utf-8"))
    uncommented = "\n".join(
        re.sub(r"^#\s?(?=\[|[a-z_]+\s*=)", "", line)
        for line in REFERENCE.read_text(encoding="utf-8").splitlines()
    )
    # Every commented line, set: still a valid configuration (http source needs its url).
    config = load_config({"STREAM_SCORER__FEATURES__URL": "http://feast:6566"}, uncommented)
    assert config.models.shadow == {"ctr": "ctr-challenger"}


@pytest.mark.parametrize("section", sorted({key.split(".")[0] for key in config_keys()}))
def test_the_readme_configuration_table_names_every_key(section: str) -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    table = readme.split("\n### Configuration\n", 1)[1].split("\n### ", 1)[0]
    (row,) = [line for line in table.splitlines() if line.startswith(f"| `{section}` |")]
    keys = [key.split(".", 1)[1] for key in config_keys() if key.startswith(f"{section}.")]
    missing = [key for key in keys if f"`{key}`" not in row]
    assert not missing, f"README's configuration table lacks {section}: {missing}"


def test_every_scorer_environment_in_compose_loads_strictly() -> None:
    compose = load_yaml(ROOT / "docker-compose.yml")
    text = REFERENCE.read_text(encoding="utf-8")
    loaded = 0
    for service in compose["services"].values():
        env = service.get("environment") or {}
        if isinstance(env, list):
            env = dict(item.split("=", 1) for item in env)
        scorer_env = {k: str(v) for k, v in env.items() if k.startswith("STREAM_SCORER__")}
        if scorer_env:
            load_config(scorer_env, text)
            loaded += 1
    assert loaded >= 1
