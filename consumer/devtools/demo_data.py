"""Demo data: a synthetic model artifact and feature files in the layout the scorer reads.

    <root>/models/demo-lr/        the model artifact (manifest + weights)
    <root>/features/users.csv     user features
    <root>/features/items.csv     item features

`python -m consumer.demo_data ROOT` writes them (the compose stack uses this).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from consumer.features.files import write_entity_csv
from scoring.model import save_model
from scoring.synthetic import demo_spec, random_items, random_model, random_users

MODEL = "demo-lr"


@dataclass(frozen=True, slots=True)
class DemoData:
    root: Path
    user_ids: NDArray[np.int64]
    item_ids: NDArray[np.int64]

    @property
    def models_dir(self) -> Path:
        return self.root / "models"

    @property
    def users_file(self) -> Path:
        return self.root / "features" / "users.csv"

    @property
    def items_file(self) -> Path:
        return self.root / "features" / "items.csv"


def write_demo_data(
    root: Path, n_items: int = 100_000, n_users: int = 50_000, seed: int = 7, hash_bits: int = 22
) -> DemoData:
    """Generate and write the demo model and features under `root`."""
    spec = demo_spec()
    save_model(
        random_model(MODEL, "v1", spec, hash_bits=hash_bits, seed=seed), root / "models" / MODEL
    )
    items = random_items(n_items, spec, seed)
    users = random_users(n_users, spec, seed + 1)
    data = DemoData(root, np.asarray(users.ids, np.int64), np.asarray(items.ids, np.int64))
    write_entity_csv(data.items_file, "item_id", data.item_ids, items.categorical, items.dense)
    write_entity_csv(data.users_file, "user_id", data.user_ids, users.categorical, users.dense)
    return data


def main(argv: list[str] | None = None) -> int:
    """``python -m consumer.demo_data [ROOT]``: write the demo data set under ROOT."""
    parser = argparse.ArgumentParser(
        prog="python -m consumer.demo_data",
        description="Write the demo model (models/demo-lr) and feature files (features/*.csv).",
    )
    parser.add_argument("root", nargs="?", default="demo-data", help="target directory")
    parser.add_argument("--items", type=int, default=100_000, help="items (default 100000)")
    parser.add_argument("--users", type=int, default=50_000, help="users (default 50000)")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    target = Path(args.root)
    write_demo_data(target, n_items=args.items, n_users=args.users)
    print(f"demo data written to {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
