"""Storage: the narrow interface the store writes through, its local-disk implementation, and locks."""

from pipeline.storage.interface import Storage
from pipeline.storage.local import LocalStorage

__all__ = ["LocalStorage", "Storage"]
