"""The dataset contract: pandera models per table, Arrow types and whole-dataset validation."""

from schemas.tables import FOREIGN_KEYS, MODELS, arrow_schema
from schemas.validate import DatasetInvalidError, validate_dataset

__all__ = ["FOREIGN_KEYS", "MODELS", "DatasetInvalidError", "arrow_schema", "validate_dataset"]
