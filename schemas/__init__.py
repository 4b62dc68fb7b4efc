"""The dataset contract: pandera models per table, Arrow types and row checks."""

from schemas.tables import FOREIGN_KEYS, MODELS, arrow_schema

__all__ = ["FOREIGN_KEYS", "MODELS", "arrow_schema"]
