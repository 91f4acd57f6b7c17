"""A real Feast online feature server for tests and benchmarks, from the scorer's demo CSV files.

    feast_venv()              <repo>/.cache/feast-venv via scripts/feast-env.sh (installed once)
    build_feature_repo(...)   a feature repo in a directory: feature_store.yaml (SQLite online
                              store), one entity and one feature view per CSV file, Parquet
                              sources converted inside the Feast venv, `feast apply` and
                              `feast materialize`
    FeastServer(...)          `feast serve` on 127.0.0.1 and a free port; waits for /health
                              (bounded), stops the whole process group on exit

Feature views are named ``user_features`` / ``item_features`` and keep the CSV's columns: a
``name:float`` column becomes a Float32 feature ``name``, any other a String feature; the entity
join keys are the CSV id columns (``user_id``, ``item_id``). A feature service ``item_service``
holds every item feature. Feast's Python never runs in the test interpreter: it has its own venv.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import socket
import subprocess
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

REPO_ROOT = Path(__file__).resolve().parents[2]
FEAST_ENV_SCRIPT = REPO_ROOT / "scripts" / "feast-env.sh"
DENSE_SUFFIX = ":float"
START_TIMEOUT_S = 60.0

_STORE_YAML = """\
project: stream_scorer_test
registry: data/registry.db
provider: local
online_store:
  type: sqlite
  path: data/online.db
offline_store:
  type: file
entity_key_serialization_version: 3
"""

_CONVERT = """\
import json, sys
import pandas as pd
spec = json.loads(sys.argv[1])
for item in spec:
    frame = pd.read_csv(item["csv"], dtype=str, keep_default_na=False)
    out = pd.DataFrame({item["id"]: frame[item["id"]].astype("int64")})
    for name, column in item["columns"].items():
        raw = frame[column]
        if column.endswith(":float"):
            out[name] = pd.to_numeric(raw.replace("", None)).astype("float64")
        else:
            out[name] = raw.where(raw != "", None).astype(object)
    out["event_timestamp"] = pd.Timestamp(item["ts"], tz="UTC")
    out.to_parquet(item["parquet"], index=False)
"""


@dataclass(frozen=True, slots=True)
class EntityFile:
    """One CSV file to serve: view name, id column, bare feature name -> CSV column."""

    view: str
    csv: Path
    id_column: str
    columns: dict[str, str]

    @staticmethod
    def read(view: str, path: Path) -> EntityFile:
        with path.open(newline="", encoding="utf-8") as handle:
            header = next(csv.reader(handle))
        columns = {c.removesuffix(DENSE_SUFFIX): c for c in header[1:]}
        return EntityFile(view, path, header[0], columns)

    def refs(self) -> str:
        """The scorer's ``features.*_features`` value for this view."""
        return ",".join(f"{self.view}:{name}" for name in self.columns)

    def definitions(self) -> str:
        entity = self.id_column.removesuffix("_id")
        fields = ",\n        ".join(
            f"Field(name={name!r}, dtype={'Float32' if col.endswith(DENSE_SUFFIX) else 'String'})"
            for name, col in self.columns.items()
        )
        return f"""
{entity} = Entity(name={entity!r}, join_keys=[{self.id_column!r}], value_type=ValueType.INT64)
{self.view} = FeatureView(
    name={self.view!r},
    entities=[{entity}],
    ttl=timedelta(days=3650),
    schema=[
        Field(name={self.id_column!r}, dtype=Int64),
        {fields},
    ],
    source=FileSource(path={str(self.csv.with_suffix(".parquet"))!r},
                      timestamp_field="event_timestamp"),
    online=True,
)
"""


@dataclass(frozen=True, slots=True)
class FeatureRepo:
    path: Path
    users: EntityFile
    items: EntityFile


def feast_venv() -> Path:
    """The Feast venv, installed on first use (idempotent; ~45 s once, instant afterwards)."""
    done = subprocess.run(
        ["bash", str(FEAST_ENV_SCRIPT)], check=True, capture_output=True, text=True
    )
    return Path(done.stdout.strip().splitlines()[-1])


def _run(venv: Path, args: list[str], cwd: Path) -> None:
    done = subprocess.run(
        [str(venv / "bin" / args[0]), *args[1:]], cwd=cwd, capture_output=True, text=True
    )
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(args[:2])} failed:\n{done.stdout}\n{done.stderr}")


def build_feature_repo(venv: Path, path: Path, users_csv: Path, items_csv: Path) -> FeatureRepo:
    """Write, apply and materialize a feature repo serving the two CSV files."""
    (path / "data").mkdir(parents=True, exist_ok=True)
    users = EntityFile.read("user_features", users_csv)
    items = EntityFile.read("item_features", items_csv)
    ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(time.time() - 3600))
    spec = [
        {"csv": str(f.csv), "parquet": str(f.csv.with_suffix(".parquet")), "id": f.id_column,
         "columns": f.columns, "ts": ts}
        for f in (users, items)
    ]  # fmt: skip
    _run(venv, ["python", "-c", _CONVERT, json.dumps(spec)], path)
    (path / "feature_store.yaml").write_text(_STORE_YAML, encoding="utf-8")
    (path / ".feastignore").write_text("data/\n", encoding="utf-8")
    header = (
        "from datetime import timedelta\n"
        "from feast import Entity, FeatureService, FeatureView, Field, FileSource, ValueType\n"
        "from feast.types import Float32, Int64, String\n"
    )
    service = "\nitem_service = FeatureService(name='item_service', features=[item_features])\n"
    text = header + users.definitions() + items.definitions() + service
    (path / "features.py").write_text(text, encoding="utf-8")
    _run(venv, ["feast", "apply"], path)
    start = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(time.time() - 7200))
    end = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(time.time() + 60))
    _run(venv, ["feast", "materialize", start, end], path)
    return FeatureRepo(path, users, items)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class FeastServer:
    """`feast serve` for one repo; a context manager that waits for readiness and stops it."""

    def __init__(self, venv: Path, repo: FeatureRepo, log_file: Path) -> None:
        self.venv = venv
        self.repo = repo
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._log_file = log_file
        self._proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> FeastServer:
        log = self._log_file.open("wb")
        self._proc = subprocess.Popen(
            [str(self.venv / "bin" / "feast"), "serve", "--host", "127.0.0.1",
             "--port", str(self.port), "--no-access-log", "--workers", "1"],
            cwd=self.repo.path, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            env={**os.environ, "FEAST_USAGE": "False"},
        )  # fmt: skip
        log.close()
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        assert self._proc is not None
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(f"feast serve exited: {self._log_file.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=1) as reply:
                    if reply.status == 200:
                        return
            except OSError:
                time.sleep(0.2)
        raise RuntimeError(f"feast serve not ready in {START_TIMEOUT_S:.0f} s")

    def stop(self) -> None:
        if self._proc is None or self._proc.poll() is not None:
            return
        os.killpg(self._proc.pid, signal.SIGTERM)
        try:
            self._proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(self._proc.pid, signal.SIGKILL)
            self._proc.wait(timeout=10)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
