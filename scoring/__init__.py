"""The pure scoring package: model format, feature hashing, the vectorized LR kernel and top-k.

Depends on numpy and the standard library only (a test walks every import to keep it so). The
consumer codes against the names re-exported here.
"""

from scoring.batch import RankedBatch, ScoringBatch
from scoring.errors import InputError, ModelLoadError, ScoringError, SpecError, UnknownModelError
from scoring.features import ItemTable, UserFeatures
from scoring.kernel import Scorer
from scoring.model import LRModel, load_model, save_model
from scoring.spec import DenseFeature, FeatureSpec

__all__ = [
    "DenseFeature",
    "FeatureSpec",
    "InputError",
    "ItemTable",
    "LRModel",
    "ModelLoadError",
    "RankedBatch",
    "Scorer",
    "ScoringBatch",
    "ScoringError",
    "SpecError",
    "UnknownModelError",
    "UserFeatures",
    "load_model",
    "save_model",
]
