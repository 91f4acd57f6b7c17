"""StaticRegistry: bundled defaults, extra writer schemas, and id lookups."""

from __future__ import annotations

from typing import Any

import pytest

from schemas import (
    SchemaNotRegisteredError,
    StaticRegistry,
    UnknownSchemaIdError,
    load_bundled,
    parse,
)
from schemas.parsed import bundled


def with_extra_field() -> dict[str, Any]:
    schema = load_bundled("ScoringJob")
    schema["fields"].append({"name": "tenant", "type": "string", "default": ""})
    return schema


def test_defaults_are_scoring_job_1_and_ranked_list_2() -> None:
    registry = StaticRegistry()
    assert registry.ids() == [1, 2]
    assert registry.schema_for_id(1).fullname == "io.streamscorer.ScoringJob"
    assert registry.schema_for_id(2).fullname == "io.streamscorer.RankedList"


def test_unknown_id_raises_with_the_id() -> None:
    with pytest.raises(UnknownSchemaIdError) as info:
        StaticRegistry().schema_for_id(99)
    assert info.value.schema_id == 99


def test_explicit_mapping_replaces_defaults() -> None:
    registry = StaticRegistry({7: load_bundled("RankedList")})
    assert registry.ids() == [7]
    with pytest.raises(UnknownSchemaIdError):
        registry.schema_for_id(1)


def test_register_extra_writer_schema() -> None:
    registry = StaticRegistry()
    parsed = registry.register(3, with_extra_field())
    assert registry.schema_for_id(3) is parsed
    assert not parsed.same_layout(registry.schema_for_id(1))


def test_register_accepts_json_text_and_is_idempotent() -> None:
    registry = StaticRegistry()
    registry.register(1, bundled("ScoringJob").to_json())
    assert registry.schema_for_id(1).same_layout(bundled("ScoringJob"))


def test_rebinding_an_id_to_another_layout_is_refused() -> None:
    registry = StaticRegistry()
    with pytest.raises(ValueError, match="already bound"):
        registry.register(1, load_bundled("RankedList"))


@pytest.mark.parametrize("schema_id", [-1, 2**31])
def test_ids_must_fit_int32(schema_id: int) -> None:
    with pytest.raises(ValueError, match="int32"):
        StaticRegistry().register(schema_id, load_bundled("ScoringJob"))


def test_id_for_finds_lowest_id_of_same_layout() -> None:
    registry = StaticRegistry()
    registry.register(5, load_bundled("ScoringJob"))
    assert registry.id_for("jobs-value", bundled("ScoringJob")) == 1
    assert registry.id_for("ranked-value", parse(load_bundled("RankedList"))) == 2


def test_id_for_unregistered_schema_raises() -> None:
    with pytest.raises(SchemaNotRegisteredError) as info:
        StaticRegistry().id_for("jobs-value", parse(with_extra_field()))
    assert info.value.subject == "jobs-value"
    assert info.value.fullname == "io.streamscorer.ScoringJob"
