"""What processing one micro-batch produced: outputs to publish and inputs rejected.

Every input position of a batch appears in exactly one `Output` or one `Rejected`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray


@dataclass(frozen=True, slots=True)
class Output:
    position: int  # position of the input payload in the batch
    key: bytes
    value: bytes
    headers: list[tuple[str, bytes]]


@dataclass(frozen=True, slots=True)
class Rejected:
    position: int
    kind: str  # "decode" | "invalid" | "unknown_model" | "deadline"
    reason: str


@dataclass(slots=True)
class BatchOutcome:
    outputs: list[Output] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)
    predictions: dict[str, int] = field(default_factory=dict)  # by model name
    jobs: dict[str, int] = field(default_factory=dict)  # jobs scored, by model name
    e2e_ms: NDArray[np.int64] = field(default_factory=lambda: np.zeros(0, np.int64))
    stage_seconds: dict[str, float] = field(default_factory=dict)
    stage_started: dict[str, float] = field(default_factory=dict)  # time.perf_counter()
    degraded: int = 0  # jobs scored with default features
    late: int = 0  # jobs older than the deadline when scored
    shadow_overlap: dict[tuple[str, str], list[float]] = field(default_factory=dict)
    kernel_cpu_s: float = 0.0  # CPU of the calling thread inside the kernel (rank and shadows)
