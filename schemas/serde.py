"""The serde entry points in one place: job decoding/encoding and ranked-list encoding/decoding.

A facade only: the implementations live in :mod:`schemas.job_decoder`,
:mod:`schemas.job_encoder` and :mod:`schemas.ranked`, one concern per module.
"""

from __future__ import annotations

from schemas.job_decoder import JobDecoder
from schemas.job_encoder import JobEncoder
from schemas.ranked import RankedListDecoder, RankedListEncoder

__all__ = ["JobDecoder", "JobEncoder", "RankedListDecoder", "RankedListEncoder"]
