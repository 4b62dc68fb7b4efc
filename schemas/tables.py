"""The published contract: one pandera DataFrameModel per table, plus its Arrow types."""

from __future__ import annotations

import sys

import pandas as pd
import pandera.pandas as pa
import pyarrow as pyarrow_lib
from pandera.engines.pandas_engine import Date
from pandera.typing import Series

from schemas.rules import SCORE_RANGE, RejectRule


def _validate_pandas_frames_only() -> None:
    """Let pandera find Dask missing. To validate Dask frames too, pandera imports
    `dask.dataframe` when it builds its first schema, whenever Dask is installed (it is, for
    prefect-dask): 0.4 s of every command's start and 29 MiB, for frames this contract never
    sees. A process that has already imported it (a Dask worker) keeps it."""
    if "dask.dataframe" in sys.modules or "pandera.typing.dask" in sys.modules:
        return
    sys.modules["dask.dataframe"] = None  # type: ignore[assignment]  # what an import then raises ImportError on
    try:
        import pandera.typing.dask  # noqa: F401
    except ImportError:
        pass  # a pandera without it looks for Dask elsewhere, or not at all
    finally:
        del sys.modules["dask.dataframe"]


_validate_pandas_frames_only()

PAPER_ID = r"^p_[0-9a-f]{16}$"
AUTHOR_ID = r"^a_[0-9a-f]{16}$"
SLUG = r"^[a-z0-9][a-z0-9._-]*$"
CHANGE_KINDS = ("added", "updated", "removed")
# Field metadata of a string column with few distinct values (a code, a file name): readers get
# it as a category (pandas) rather than one string object per row.
LOW_CARDINALITY = {"low_cardinality": True}


class Papers(pa.DataFrameModel):
    """One row per distinct paper; the latest capture that lists it supplies its fields."""

    paper_id: Series[str] = pa.Field(
        unique=True, str_matches=PAPER_ID,
        description="Stable id: hash of the folded title and first author's name_key.",
    )  # fmt: skip
    title: Series[str] = pa.Field(str_length={"min_value": 1}, description="Title as listed, whitespace collapsed.")
    published: Series[Date] = pa.Field(description="Publication date shown in the listing.")
    published_year_inferred: Series[bool] = pa.Field(
        description="True when the listing omitted the year and it was inferred from the capture date."
    )
    category: Series[str] = pa.Field(
        description="Canonical arXiv category code, e.g. cs.CL (FK to categories).", metadata=LOW_CARDINALITY
    )
    category_suffix: Series[str] = pa.Field(
        description="Subject suffix exactly as listed, e.g. CL.", metadata=LOW_CARDINALITY
    )
    category_ambiguous: Series[bool] = pa.Field(
        description="True when the suffix is shared by several archives and the preference rule chose the code."
    )
    has_code: Series[bool] = pa.Field(description="True when the listing shows a Code badge.")
    score: Series[float] = pa.Field(
        nullable=True, ge=SCORE_RANGE[0], le=SCORE_RANGE[1], description="Aggregator score (0–100), when shown."
    )
    authors_truncated: Series[bool] = pa.Field(description="True when the listing shows 'et al.' after three authors.")
    author_split_ambiguous: Series[bool] = pa.Field(
        description="True when another title/author boundary was also plausible; the documented rule chose this one."
    )
    abstract: Series[str] = pa.Field(description="Abstract exactly as listed (may hold LaTeX).")
    abstract_text: Series[str] = pa.Field(description="Abstract with LaTeX rendered to plain Unicode.")
    source_file: Series[str] = pa.Field(
        description="Raw listing file (relative to the raw folder) that supplied the row.", metadata=LOW_CARDINALITY
    )
    source_line: Series[int] = pa.Field(ge=1, description="1-based line of the record's header in source_file.")
    first_seen: Series[Date] = pa.Field(description="Capture date of the earliest listing that shows the paper.")
    last_seen: Series[Date] = pa.Field(description="Capture date of the latest listing that shows the paper.")

    class Config:
        strict = True
        coerce = True

    @pa.dataframe_check
    @classmethod
    def seen_in_order(cls, df: pd.DataFrame) -> pd.Series:
        """first_seen is on or before last_seen."""
        return df["first_seen"] <= df["last_seen"]


class Authors(pa.DataFrameModel):
    """One row per person or organisation, identified by the folded name key."""

    author_id: Series[str] = pa.Field(unique=True, str_matches=AUTHOR_ID, description="Stable id: hash of name_key.")
    name: Series[str] = pa.Field(str_length={"min_value": 1}, description="Display name; keeps diacritics.")
    name_key: Series[str] = pa.Field(
        unique=True, str_length={"min_value": 1},
        description="Folded key: transliterated to ASCII, lower-case, punctuation removed.",
    )  # fmt: skip
    given_name: Series[str] = pa.Field(
        nullable=True, description="Given name(s); null for organisations and one-word names."
    )
    family_name: Series[str] = pa.Field(
        nullable=True, description="Family name with particles; null for organisations."
    )
    is_organization: Series[bool] = pa.Field(
        description="True for an organisation or collaboration that signs (OpenAI, Gemma Team, The BABAR "
        "Collaboration): a registry name, an organisation word, or one word of two capitals or more."
    )

    class Config:
        strict = True
        coerce = True

    @pa.dataframe_check
    @classmethod
    def organizations_have_no_name_parts(cls, df: pd.DataFrame) -> pd.Series:
        """An organisation has no given or family name."""
        return ~df["is_organization"] | (df["given_name"].isna() & df["family_name"].isna())


class PaperAuthors(pa.DataFrameModel):
    """Authors of each paper in listed order (at most three are shown)."""

    paper_id: Series[str] = pa.Field(str_matches=PAPER_ID, description="FK to papers.")
    position: Series[int] = pa.Field(ge=1, le=3, description="1-based position in the listed author order.")
    author_id: Series[str] = pa.Field(str_matches=AUTHOR_ID, description="FK to authors.")
    name_as_listed: Series[str] = pa.Field(str_length={"min_value": 1}, description="Author exactly as in the listing.")

    class Config:
        strict = True
        coerce = True
        unique = ["paper_id", "position"]  # noqa: RUF012 - pandera reads a list


class Organizations(pa.DataFrameModel):
    """Affiliation slugs: registry entries and every slug seen in a listing."""

    org_id: Series[str] = pa.Field(unique=True, str_matches=SLUG, description="The slug as listed, e.g. openai.")
    name: Series[str] = pa.Field(nullable=True, description="Organisation name; null for slugs not in the registry.")
    ror_id: Series[str] = pa.Field(
        nullable=True, str_matches=r"^0[a-z0-9]{6}[0-9]{2}$", description="ROR identifier, when known."
    )

    class Config:
        strict = True
        coerce = True


class PaperOrganizations(pa.DataFrameModel):
    """Affiliation slugs of each paper in listed order."""

    paper_id: Series[str] = pa.Field(str_matches=PAPER_ID, description="FK to papers.")
    position: Series[int] = pa.Field(ge=1, description="1-based position in the listed slugs.")
    org_id: Series[str] = pa.Field(str_matches=SLUG, description="FK to organizations.")

    class Config:
        strict = True
        coerce = True
        unique = ["paper_id", "position"]  # noqa: RUF012 - pandera reads a list


class Categories(pa.DataFrameModel):
    """The arXiv category taxonomy (155 codes, aliases included)."""

    category: Series[str] = pa.Field(unique=True, description="arXiv code, e.g. cs.CL.")
    name: Series[str] = pa.Field(description="Category name.")
    archive: Series[str] = pa.Field(description="Archive, e.g. cs, math, astro-ph.")
    group: Series[str] = pa.Field(description="Subject group, e.g. Computer Science.")
    alias_of: Series[str] = pa.Field(nullable=True, description="Canonical code when this code is an alias.")

    class Config:
        strict = True
        coerce = True


class Rejects(pa.DataFrameModel):
    """Records (or stray lines) that could not be used, with the rule that rejected them."""

    source_file: Series[str] = pa.Field(
        description="Raw listing file, relative to the raw folder.", metadata=LOW_CARDINALITY
    )
    source_line: Series[int] = pa.Field(ge=1, description="1-based first line of the rejected text.")
    rule: Series[str] = pa.Field(
        isin=[rule.value for rule in RejectRule],
        description="Rule code (`schemas.tables.RejectRule`), e.g. unknown_category.",
        metadata=LOW_CARDINALITY,
    )
    reason: Series[str] = pa.Field(str_length={"min_value": 1}, description="One sentence saying what was wrong.")
    raw: Series[str] = pa.Field(description="The rejected text exactly as found.")

    class Config:
        strict = True
        coerce = True
        unique = ["source_file", "source_line"]  # noqa: RUF012 - pandera reads a list


class Changes(pa.DataFrameModel):
    """Papers added, updated or removed since the parent version."""

    paper_id: Series[str] = pa.Field(unique=True, str_matches=PAPER_ID, description="The paper that changed.")
    change: Series[str] = pa.Field(isin=list(CHANGE_KINDS), description="Kind of change.", metadata=LOW_CARDINALITY)
    changed_fields: Series[str] = pa.Field(
        description="Comma-separated fields that differ from the parent (empty for added/removed)."
    )

    class Config:
        strict = True
        coerce = True


MODELS: dict[str, type[pa.DataFrameModel]] = {
    "papers": Papers,
    "authors": Authors,
    "paper_authors": PaperAuthors,
    "organizations": Organizations,
    "paper_organizations": PaperOrganizations,
    "categories": Categories,
    "rejects": Rejects,
    "changes": Changes,
}

# The key order rows are published in, per table: what each file's footer declares (Parquet
# sorting_columns). papers and rejects are in capture order (the captures in turn, each by line),
# which no column holds: they declare none.
SORTED_BY: dict[str, tuple[str, ...]] = {
    "authors": ("author_id",),
    "paper_authors": ("paper_id", "position"),
    "organizations": ("org_id",),
    "paper_organizations": ("paper_id", "position"),
    "categories": ("category",),
    "changes": ("paper_id",),
}

# (child table, child column) → (parent table, parent column)
FOREIGN_KEYS: dict[tuple[str, str], tuple[str, str]] = {
    ("papers", "category"): ("categories", "category"),
    ("paper_authors", "paper_id"): ("papers", "paper_id"),
    ("paper_authors", "author_id"): ("authors", "author_id"),
    ("paper_organizations", "paper_id"): ("papers", "paper_id"),
    ("paper_organizations", "org_id"): ("organizations", "org_id"),
}

_ARROW = {
    "str": pyarrow_lib.string(),
    "string": pyarrow_lib.string(),
    "string[pyarrow]": pyarrow_lib.string(),
    "string[python]": pyarrow_lib.string(),
    "bool": pyarrow_lib.bool_(),
    "float64": pyarrow_lib.float64(),
    "int64": pyarrow_lib.int64(),
    "date": pyarrow_lib.date32(),
}


def arrow_schema(table: str) -> pyarrow_lib.Schema:
    """The Parquet schema of `table`, derived from its pandera model (dates → date32)."""
    schema = MODELS[table].to_schema()
    return pyarrow_lib.schema(
        [
            pyarrow_lib.field(name, _ARROW[str(column.dtype)], nullable=bool(column.nullable))
            for name, column in schema.columns.items()
        ]
    )


def low_cardinality_columns(table: str) -> list[str]:
    """The columns of `table` declared LOW_CARDINALITY in its model, in order."""
    columns = MODELS[table].to_schema().columns
    return [name for name, column in columns.items() if (column.metadata or {}).get("low_cardinality")]


DICTIONARY = pyarrow_lib.dictionary(pyarrow_lib.int32(), pyarrow_lib.string())


def published_schema(table: str) -> pyarrow_lib.Schema:
    """The schema `table` is written with: `arrow_schema`, with its LOW_CARDINALITY strings as
    dictionaries (readers that keep Arrow types get a category; the values are the same)."""
    coded = set(low_cardinality_columns(table))
    schema = arrow_schema(table)
    return pyarrow_lib.schema([f.with_type(DICTIONARY) if f.name in coded else f for f in schema])


def plain_schema(schema: pyarrow_lib.Schema) -> pyarrow_lib.Schema:
    """`schema` with dictionary types as their values' type and no metadata: what a file's schema
    is compared with `arrow_schema` as (versions written before dictionaries compare the same)."""
    fields = [f.with_type(f.type.value_type) if pyarrow_lib.types.is_dictionary(f.type) else f for f in schema]
    return pyarrow_lib.schema(fields)
