"""Errors raised by the scoring package.

Every error derives from ``ScoringError`` so a caller can catch the package as a whole. The tree is
sorted by what the caller must do:

    ScoringError
    ├── ModelLoadError      a model directory is unusable: keep serving the previous model
    ├── UnknownModelError   a job names a model that is not loaded: treat the job as poison
    └── InputError          inputs are inconsistent (a bug in the caller): also a ``ValueError``
        └── SpecError       a feature spec is malformed

Errors keep their context as attributes (``path``, ``reason``, ``model``) so callers can log and
label metrics without parsing messages.
"""

from __future__ import annotations

from pathlib import Path


class ScoringError(Exception):
    """Root of every error raised by ``scoring``."""


class ModelLoadError(ScoringError):
    """A model directory could not be loaded; nothing was half-loaded."""

    def __init__(self, path: Path | str, reason: str) -> None:
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"cannot load model from {self.path}: {reason}")


class UnknownModelError(ScoringError):
    """A model name that no loaded model answers to."""

    def __init__(self, model: str) -> None:
        self.model = model
        super().__init__(f"unknown model {model!r}")


class InputError(ScoringError, ValueError):
    """Inputs handed to the package are inconsistent (shapes, ordering, names)."""


class SpecError(InputError):
    """A feature spec is malformed (unknown field in a cross, bad dense feature, duplicates)."""
