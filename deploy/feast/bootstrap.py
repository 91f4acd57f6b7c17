"""Turn the scorer's feature CSVs into the Parquet files the Feast repository reads.

    python bootstrap.py FEATURES_DIR [REPO_DIR]

Reads FEATURES_DIR/users.csv and FEATURES_DIR/items.csv (first column the entity id; a column
named ``name:float`` is dense, any other categorical, as in `consumer.features.files`) and writes
REPO_DIR/data/{users,items}.parquet with Feast-friendly column names (``:float`` dropped) and an
``event_timestamp`` column, so `feast apply` and `feast materialize` can load them into Redis.
"""

import sys
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

DENSE_SUFFIX = ":float"


def convert(csv_path: Path, parquet_path: Path, written_at: datetime) -> int:
    frame = pd.read_csv(csv_path, dtype=str, keep_default_na=False)
    id_column = frame.columns[0]
    out = pd.DataFrame({id_column: frame[id_column].astype("int64")})
    for column in frame.columns[1:]:
        values = frame[column].replace("", None)
        if column.endswith(DENSE_SUFFIX):
            out[column.removesuffix(DENSE_SUFFIX)] = pd.to_numeric(values).astype("float64")
        else:
            out[column] = values.astype("string")
    out["event_timestamp"] = pd.Timestamp(written_at)
    parquet_path.parent.mkdir(parents=True, exist_ok=True)
    out.to_parquet(parquet_path, index=False)
    return len(out)


def main(argv: list[str]) -> int:
    if len(argv) not in (2, 3):
        print(__doc__, file=sys.stderr)
        return 2
    features = Path(argv[1])
    repo = Path(argv[2]) if len(argv) == 3 else Path(__file__).resolve().parent
    written_at = datetime.now(UTC)
    for name in ("users", "items"):
        rows = convert(features / f"{name}.csv", repo / "data" / f"{name}.parquet", written_at)
        print(f"{name}: {rows} rows -> {repo / 'data' / f'{name}.parquet'}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
