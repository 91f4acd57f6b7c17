"""The feature spec of a logistic-regression model: which fields, crosses and dense features exist.

Naming: categorical fields are bare names inside three groups (``user_fields``, ``item_fields``,
``context_fields``); everywhere else, including crosses and dense features, a field is named with
its group prefix: ``user.segment``, ``item.category``, ``context.device``, ``user.age``. The item id
is always a categorical feature named ``item.id`` and must not be listed in ``item_fields``.

Invariants enforced at construction (``SpecError`` otherwise):
- bare names are non-empty, contain no ``.``, and are unique within their group;
- a cross is ``(first, second)`` where ``second`` is an item field (``item.*``, including
  ``item.id``) and ``first`` is a user, context or item field; no self-crosses, no duplicates.
  The hash is order-sensitive, so ``(a, b)`` and ``(b, a)`` may not both appear;
- dense features are ``user.*`` or ``item.*``, unique, with finite mean/default and ``std > 0``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from scoring.errors import SpecError

USER = "user"
ITEM = "item"
CONTEXT = "context"
ITEM_ID = "item.id"


@dataclass(frozen=True, slots=True)
class DenseFeature:
    """A numeric feature standardized as ``(x - mean) / std``; ``default`` replaces missing x."""

    name: str
    mean: float
    std: float
    default: float

    def __post_init__(self) -> None:
        group, _, bare = self.name.partition(".")
        if group not in (USER, ITEM) or not _is_bare(bare):
            raise SpecError(f"dense feature {self.name!r} must be named 'user.<x>' or 'item.<x>'")
        if not (math.isfinite(self.mean) and math.isfinite(self.default)):
            raise SpecError(f"dense feature {self.name!r}: mean and default must be finite")
        if not (math.isfinite(self.std) and self.std > 0):
            raise SpecError(f"dense feature {self.name!r}: std must be finite and > 0")

    @property
    def group(self) -> str:
        return self.name.partition(".")[0]

    @property
    def field(self) -> str:
        """The bare field name used in feature mappings (``"age"`` for ``"user.age"``)."""
        return self.name.partition(".")[2]


@dataclass(frozen=True, slots=True)
class FeatureSpec:
    """Categorical fields per group, crosses and dense features of one model."""

    user_fields: tuple[str, ...]
    item_fields: tuple[str, ...]
    context_fields: tuple[str, ...]
    crosses: tuple[tuple[str, str], ...]
    dense: tuple[DenseFeature, ...]

    def __post_init__(self) -> None:
        _check_group(USER, self.user_fields)
        _check_group(ITEM, self.item_fields)
        _check_group(CONTEXT, self.context_fields)
        if "id" in self.item_fields:
            raise SpecError("item_fields must not list 'id': item.id is always a feature")
        self._check_crosses()
        names = [d.name for d in self.dense]
        if len(set(names)) != len(names):
            raise SpecError(f"duplicate dense feature in {names}")

    def categorical_names(self) -> tuple[str, ...]:
        """Every single categorical feature, full names, in term order (item.id first of items)."""
        return (
            *(f"{USER}.{f}" for f in self.user_fields),
            *(f"{CONTEXT}.{f}" for f in self.context_fields),
            ITEM_ID,
            *(f"{ITEM}.{f}" for f in self.item_fields),
        )

    def job_crosses(self) -> tuple[tuple[str, str], ...]:
        """Crosses whose first field is per job (user or context): computed per candidate."""
        return tuple(c for c in self.crosses if not c[0].startswith(f"{ITEM}."))

    def item_crosses(self) -> tuple[tuple[str, str], ...]:
        """Crosses of two item fields: computed once per item and cached."""
        return tuple(c for c in self.crosses if c[0].startswith(f"{ITEM}."))

    def _check_crosses(self) -> None:
        known = set(self.categorical_names())
        seen: set[tuple[str, str]] = set()
        for cross in self.crosses:
            if not (isinstance(cross, tuple) and len(cross) == 2):
                raise SpecError(f"malformed cross {cross!r}: expected a pair of field names")
            first, second = cross
            for name in cross:
                if name not in known:
                    raise SpecError(f"cross {cross!r} names unknown field {name!r}")
            if not second.startswith(f"{ITEM}."):
                raise SpecError(f"cross {cross!r}: the second field must be an item field")
            if first == second:
                raise SpecError(f"cross {cross!r} crosses a field with itself")
            if cross in seen or (second, first) in seen:
                raise SpecError(f"duplicate cross {cross!r}")
            seen.add(cross)


def _is_bare(name: str) -> bool:
    return bool(name) and "." not in name


def _check_group(group: str, fields: tuple[str, ...]) -> None:
    for name in fields:
        if not isinstance(name, str) or not _is_bare(name):
            raise SpecError(f"{group} field {name!r} must be a non-empty name without '.'")
    if len(set(fields)) != len(fields):
        raise SpecError(f"duplicate {group} field in {fields}")
