"""Reference data shipped with the package: the arXiv taxonomy, the organisation registry and given names."""

from __future__ import annotations

import csv
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources
from types import MappingProxyType


@dataclass(frozen=True, slots=True)
class Category:
    """One arXiv category of the taxonomy."""

    code: str
    name: str
    archive: str
    group: str
    alias_of: str | None


@dataclass(frozen=True, slots=True)
class Organization:
    """One known affiliation slug."""

    org_id: str
    name: str
    ror_id: str | None


@dataclass(frozen=True, slots=True)
class Reference:
    """Everything the normalisers look up, as plain immutable mappings."""

    categories: Mapping[str, Category]
    # suffix as listed (LG, CV, mes-hall) → candidate codes before alias resolution
    suffixes: Mapping[str, tuple[str, ...]]
    organizations: Mapping[str, Organization]
    # Words seen as given names in real author lists (`given_names.csv`): evidence for reading a
    # compound such as AmirHossein whole.
    given_names: frozenset[str]


def _rows(name: str) -> list[dict[str, str]]:
    # keep_default_na-style reading: csv never turns the suffix "NA" into a missing value.
    text = resources.files("pipeline.refdata").joinpath(name).read_text(encoding="utf-8")
    return list(csv.DictReader(text.splitlines()))


@cache
def load_reference() -> Reference:
    """Load the reference CSVs from the package (read-only, cached for the process)."""
    categories = {
        r["code"]: Category(r["code"], r["name"], r["archive"], r["group"], r["alias_of"] or None)
        for r in _rows("arxiv_categories.csv")
    }
    suffixes = {r["suffix"]: tuple(r["candidate_codes"].split()) for r in _rows("arxiv_suffixes.csv")}
    organizations = {
        r["org_id"]: Organization(r["org_id"], r["name"], r["ror_id"] or None) for r in _rows("organizations.csv")
    }
    given_names = frozenset(r["name"] for r in _rows("given_names.csv"))
    return Reference(
        MappingProxyType(categories), MappingProxyType(suffixes), MappingProxyType(organizations), given_names
    )
