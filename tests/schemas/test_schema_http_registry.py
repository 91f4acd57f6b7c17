"""HttpSchemaRegistry against a small Confluent-compatible fake served on 127.0.0.1."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np
import pytest

from schemas import (
    HttpSchemaRegistry,
    JobDecoder,
    JobEncoder,
    RegistryError,
    ScoringJob,
    UnknownSchemaIdError,
    load_bundled,
    parse,
)
from schemas.parsed import bundled


class FakeRegistry(ThreadingHTTPServer):
    """Just enough of the Schema Registry API: register under a subject, fetch by id."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), FakeHandler)
        self.schemas: dict[int, str] = {}
        self.requests: list[tuple[str, str]] = []
        self.broken = False  # answer 500 to everything

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def register(self, schema_text: str) -> int:
        for schema_id, known in self.schemas.items():
            if json.loads(known) == json.loads(schema_text):
                return schema_id
        schema_id = 100 + len(self.schemas)
        self.schemas[schema_id] = schema_text
        return schema_id


class FakeHandler(BaseHTTPRequestHandler):
    server: FakeRegistry

    def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
        pass

    def reply(self, status: int, body: object) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/vnd.schemaregistry.v1+json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        self.server.requests.append(("GET", self.path))
        if self.server.broken:
            return self.reply(500, {"error_code": 50001, "message": "store down"})
        prefix = "/schemas/ids/"
        if self.path.startswith(prefix):
            schema = self.server.schemas.get(int(self.path[len(prefix) :]))
            if schema is not None:
                return self.reply(200, {"schema": schema})
            return self.reply(404, {"error_code": 40403, "message": "Schema not found"})
        return self.reply(404, {"error_code": 404, "message": "HTTP 404 Not Found"})

    def do_POST(self) -> None:
        self.server.requests.append(("POST", self.path))
        assert self.headers["Content-Type"] == "application/vnd.schemaregistry.v1+json"
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if self.server.broken:
            return self.reply(500, {"error_code": 50001, "message": "store down"})
        return self.reply(200, {"id": self.server.register(body["schema"])})


@pytest.fixture
def fake() -> Iterator[FakeRegistry]:
    server = FakeRegistry()
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join()


def test_register_then_fetch_by_id(fake: FakeRegistry) -> None:
    client = HttpSchemaRegistry(fake.url, timeout_s=2.0)
    schema_id = client.id_for("jobs-value", bundled("ScoringJob"))
    assert schema_id == 100
    assert fake.requests == [("POST", "/subjects/jobs-value/versions")]
    fresh = HttpSchemaRegistry(fake.url)
    fetched = fresh.schema_for_id(schema_id)
    assert fetched.canonical == bundled("ScoringJob").canonical
    assert fetched.raw == load_bundled("ScoringJob")
    assert fake.requests[-1] == ("GET", "/schemas/ids/100")


def test_answers_are_cached(fake: FakeRegistry) -> None:
    fake.schemas[5] = json.dumps(load_bundled("RankedList"))
    client = HttpSchemaRegistry(fake.url)
    first = client.schema_for_id(5)
    assert client.schema_for_id(5) is first
    assert client.id_for("ranked-value", first) == 5
    assert client.id_for("ranked-value", first) == 5
    assert fake.requests == [("GET", "/schemas/ids/5"), ("POST", "/subjects/ranked-value/versions")]


def test_subject_is_url_quoted(fake: FakeRegistry) -> None:
    HttpSchemaRegistry(fake.url).id_for("a/b c", bundled("ScoringJob"))
    assert fake.requests == [("POST", "/subjects/a%2Fb%20c/versions")]


def test_unknown_id_raises_unknown_schema_id(fake: FakeRegistry) -> None:
    with pytest.raises(UnknownSchemaIdError) as info:
        HttpSchemaRegistry(fake.url).schema_for_id(42)
    assert info.value.schema_id == 42


def test_unknown_id_is_not_cached(fake: FakeRegistry) -> None:
    client = HttpSchemaRegistry(fake.url)
    with pytest.raises(UnknownSchemaIdError):
        client.schema_for_id(100)
    fake.schemas[100] = json.dumps(load_bundled("ScoringJob"))
    assert client.schema_for_id(100).fullname == "io.streamscorer.ScoringJob"


def test_server_error_is_retriable_registry_error(fake: FakeRegistry) -> None:
    fake.broken = True
    client = HttpSchemaRegistry(fake.url)
    with pytest.raises(RegistryError) as info:
        client.schema_for_id(1)
    assert info.value.status == 500
    with pytest.raises(RegistryError):
        client.id_for("jobs-value", bundled("ScoringJob"))


def test_404_without_schema_error_code_is_a_registry_error(fake: FakeRegistry) -> None:
    with pytest.raises(RegistryError) as info:
        HttpSchemaRegistry(fake.url + "/wrong-prefix").schema_for_id(1)
    assert info.value.status == 404


def test_invalid_schema_in_answer_is_a_registry_error(fake: FakeRegistry) -> None:
    fake.schemas[7] = '{"type": "record"}'
    with pytest.raises(RegistryError, match="invalid schema"):
        HttpSchemaRegistry(fake.url).schema_for_id(7)


def test_server_down_raises_registry_error() -> None:
    server = FakeRegistry()  # bound, then closed: nothing listens on the port any more
    url = server.url
    server.server_close()
    with pytest.raises(RegistryError) as info:
        HttpSchemaRegistry(url, timeout_s=1.0).schema_for_id(1)
    assert info.value.url == f"{url}/schemas/ids/1"
    assert info.value.status is None


def test_timeout_must_be_positive() -> None:
    with pytest.raises(ValueError, match="timeout"):
        HttpSchemaRegistry("http://127.0.0.1:1", timeout_s=0)


def test_serde_round_trip_through_the_http_registry(fake: FakeRegistry) -> None:
    evolved = load_bundled("ScoringJob")
    evolved["fields"].append({"name": "tenant", "type": "string", "default": "acme"})
    producer = HttpSchemaRegistry(fake.url)
    plain_id = producer.id_for("jobs-value", bundled("ScoringJob"))
    evolved_id = producer.id_for("jobs-value", parse(evolved))
    job = ScoringJob("r1", 7, "m", 1_790_000_000_000, {"k": "v"}, [3, 1, 2], top_k=2)
    payloads = [
        JobEncoder(producer, plain_id).encode(job),
        JobEncoder(producer, evolved_id).encode(job),
    ]
    decoder = JobDecoder(HttpSchemaRegistry(fake.url))
    decoded = decoder.decode_batch(payloads)
    assert decoded.errors == []
    assert decoder.is_fast(plain_id)
    assert not decoder.is_fast(evolved_id)
    for i in range(2):
        assert decoded.jobs.row(i).request_id == "r1"
        np.testing.assert_array_equal(decoded.jobs.candidates_of(i), [3, 1, 2])
    assert decoded.jobs.top_k.tolist() == [2, 2]
