"""The bundled .avsc files: field order, defaults, docs, and parsing into ParsedSchema."""

from __future__ import annotations

import json
from importlib import resources

import pytest

from schemas import InvalidSchemaError, load_bundled, parse
from schemas.parsed import bundled, strip_logical_types


def field_names(name: str) -> list[str]:
    return [f["name"] for f in load_bundled(name)["fields"]]


def test_scoring_job_fields_in_contract_order() -> None:
    schema = load_bundled("ScoringJob")
    assert (schema["name"], schema["namespace"]) == ("ScoringJob", "io.streamscorer")
    assert field_names("ScoringJob") == [
        "request_id",
        "user_id",
        "model",
        "created_at",
        "context",
        "candidates",
        "top_k",
    ]
    fields = {f["name"]: f for f in schema["fields"]}
    assert fields["created_at"]["type"] == {"type": "long", "logicalType": "timestamp-millis"}
    assert fields["context"]["type"] == {"type": "map", "values": "string"}
    assert fields["candidates"]["type"] == {"type": "array", "items": "long"}
    assert (fields["top_k"]["type"], fields["top_k"]["default"]) == ("int", 50)


def test_ranked_list_fields_with_degraded_last() -> None:
    schema = load_bundled("RankedList")
    assert schema["namespace"] == "io.streamscorer"
    assert field_names("RankedList") == [
        "request_id",
        "user_id",
        "model",
        "model_version",
        "items",
        "created_at",
        "scored_at",
        "degraded",
    ]
    items = schema["fields"][4]["type"]["items"]
    assert items["name"] == "RankedItem"
    assert [(f["name"], f["type"]) for f in items["fields"]] == [
        ("item_id", "long"),
        ("score", "float"),
    ]
    assert schema["fields"][-1]["default"] is False


@pytest.mark.parametrize("name", ["ScoringJob", "RankedList"])
def test_every_field_is_documented(name: str) -> None:
    schema = load_bundled(name)
    assert schema["doc"]
    assert all(field.get("doc") for field in schema["fields"])


@pytest.mark.parametrize("filename", ["scoring_job.avsc", "ranked_list.avsc"])
def test_avsc_files_ship_inside_the_package(filename: str) -> None:
    text = resources.files("schemas").joinpath(filename).read_text(encoding="utf-8")
    assert json.loads(text)["type"] == "record"
    assert resources.files("schemas").joinpath("py.typed").is_file()


def test_load_bundled_returns_independent_copies() -> None:
    first = load_bundled("ScoringJob")
    first["fields"].clear()
    assert len(load_bundled("ScoringJob")["fields"]) == 7


def test_load_bundled_unknown_name() -> None:
    with pytest.raises(KeyError, match="Nope"):
        load_bundled("Nope")


def test_canonical_form_ignores_docs_defaults_and_logical_types() -> None:
    schema = load_bundled("ScoringJob")
    bare = strip_logical_types(schema)
    bare.pop("doc")
    for field in bare["fields"]:
        field.pop("doc")
        field.pop("default", None)
    assert parse(bare).fingerprint == bundled("ScoringJob").fingerprint
    assert parse(bare).same_layout(bundled("ScoringJob"))
    assert not bundled("ScoringJob").same_layout(bundled("RankedList"))


def test_parse_accepts_text_mapping_and_parsed() -> None:
    parsed = bundled("RankedList")
    assert parse(parsed) is parsed
    assert parse(parsed.to_json()).canonical == parsed.canonical
    assert parsed.fullname == "io.streamscorer.RankedList"


@pytest.mark.parametrize(
    "bad",
    ['{"type": "record"}', "[1, 2]", "not json", '{"type": "nope", "name": "X"}'],
)
def test_invalid_schema_text_raises_invalid_schema_error(bad: str) -> None:
    with pytest.raises(InvalidSchemaError):
        parse(bad)
