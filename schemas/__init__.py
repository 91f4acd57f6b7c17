"""The wire contract of stream-scorer: bundled Avro schemas and the Confluent-framed serde.

Depends on fastavro, numpy and the standard library only. Consumers code against the names
re-exported here; see :mod:`schemas.errors` for the exception tree.
"""

from __future__ import annotations

from schemas.errors import (
    DecodeError,
    EncodeError,
    InvalidSchemaError,
    RegistryError,
    SchemaError,
    SchemaNotRegisteredError,
    UnknownSchemaIdError,
)
from schemas.job_decoder import JobDecoder
from schemas.job_encoder import JobEncoder
from schemas.parsed import ParsedSchema, load_bundled, parse
from schemas.ranked import RankedListDecoder, RankedListEncoder
from schemas.records import DecodedJobs, JobColumns, RankedList, ScoringJob
from schemas.registry import HttpSchemaRegistry, SchemaRegistry, StaticRegistry
from schemas.registry_auth import RegistryAuth, registry_ssl_context

__all__ = [
    "DecodeError",
    "DecodedJobs",
    "EncodeError",
    "HttpSchemaRegistry",
    "InvalidSchemaError",
    "JobColumns",
    "JobDecoder",
    "JobEncoder",
    "ParsedSchema",
    "RankedList",
    "RankedListDecoder",
    "RankedListEncoder",
    "RegistryAuth",
    "RegistryError",
    "SchemaError",
    "SchemaNotRegisteredError",
    "SchemaRegistry",
    "ScoringJob",
    "StaticRegistry",
    "UnknownSchemaIdError",
    "load_bundled",
    "parse",
    "registry_ssl_context",
]
