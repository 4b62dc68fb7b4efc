"""Rules of the code base as a whole: imports at the top, modules and functions of a readable size."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT

SOURCES = sorted((ROOT / "pipeline").rglob("*.py")) + sorted((ROOT / "schemas").glob("*.py"))
MAX_MODULE_LINES = 500
MAX_FUNCTION_LINES = 60
# Imported inside a function, each for its reason: the optional extras (deltalake, polars, the
# Dask task runner), Prefect in the CLI, which must not be imported before --quiet has set its
# logging settings in the environment, and the S3 client (obstore), which a run on local disk
# never needs, with boto3 only to read an AWS_PROFILE; and the contract's pandera models in the
# parser's modules, which the parsers' processes never load (they are given the staged schemas);
# and pandera's Dask types, imported once with Dask's dataframes hidden from it.
DEFERRED_IMPORTS = {
    ("pipeline/__init__.py", "pipeline.consume"),
    ("pipeline/errors.py", "schemas.validate"),
    ("pipeline/consume/export_delta.py", "deltalake"),
    ("pipeline/consume/read.py", "polars"),
    ("pipeline/orchestrate/runners.py", "prefect_dask"),
    ("pipeline/cli/__init__.py", "pipeline.cli.commands"),
    ("pipeline/cli/__init__.py", "pipeline.cli.flow_commands"),
    ("pipeline/cli/parser.py", "prefect.client.schemas.schedules"),
    ("pipeline/storage/s3.py", "obstore"),
    ("pipeline/storage/s3.py", "obstore.exceptions"),
    ("pipeline/storage/s3.py", "obstore.store"),
    ("pipeline/storage/s3.py", "boto3"),
    ("pipeline/storage/s3.py", "obstore.auth.boto3"),
    ("pipeline/parse/content.py", "schemas.tables"),
    ("pipeline/parse/tables.py", "schemas.tables"),
    ("schemas/tables.py", "pandera.typing.dask"),
}


def _tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"))


def test_imports_inside_functions_are_only_the_deferred_ones() -> None:
    found = set()
    for path in SOURCES:
        for node in ast.walk(_tree(path)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                for inner in ast.walk(node):
                    if isinstance(inner, ast.Import):
                        found |= {(path.relative_to(ROOT).as_posix(), alias.name) for alias in inner.names}
                    elif isinstance(inner, ast.ImportFrom):
                        found.add((path.relative_to(ROOT).as_posix(), str(inner.module)))
    assert found == DEFERRED_IMPORTS


def test_no_module_and_no_function_is_too_long_to_read() -> None:
    long_modules = [p.name for p in SOURCES if p.read_text(encoding="utf-8").count("\n") > MAX_MODULE_LINES]
    long_functions = [
        f"{path.relative_to(ROOT)}:{node.lineno} {node.name}"
        for path in SOURCES
        for node in ast.walk(_tree(path))
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and node.end_lineno is not None
        and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES
    ]
    assert (long_modules, long_functions) == ([], [])


def test_every_module_says_its_role_in_its_docstring() -> None:
    missing = [str(p.relative_to(ROOT)) for p in SOURCES if ast.get_docstring(_tree(p)) is None]
    assert missing == []


def test_a_run_on_local_disk_loads_neither_deltalake_nor_an_s3_client_nor_dask_dataframes() -> None:
    """What the CLI, the flow, the parsers' server and the published layer load, and what checking
    a batch against the contract loads: deltalake only for `export delta`, an S3 client only for an
    s3:// URL, and never Dask's dataframes, which pandera would import for nothing (each costs the
    run time and memory). One process for all three questions: each start pays Prefect's import."""
    modules = ("pipeline.cli.flow_commands", "pipeline.cli.commands", "pipeline.orchestrate.flow",
               "pipeline.staged.worker", "pipeline.consume.export_delta", "pipeline.published")  # fmt: skip
    unwanted = ("deltalake", "obstore", "boto3", "botocore", "dask.dataframe")
    code = (f"import sys, {', '.join(modules)}; import pyarrow; "
            "from schemas.tables import MODELS, arrow_schema; from schemas.validate import batch_failures; "
            "empty = {name: pyarrow.RecordBatch.from_pylist([], schema=arrow_schema(name)) for name in MODELS}; "
            "assert all(len(batch_failures(name, batch, 0)) == 0 for name, batch in empty.items()); "
            f"print(sorted(m for m in {unwanted!r} if m in sys.modules))")  # fmt: skip
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_the_installed_packages_are_compiled_once_at_install() -> None:
    """`make` installs with --compile-bytecode: where Python may not write its bytecode cache
    (PYTHONDONTWRITEBYTECODE, a read-only folder), every process would compile all it imports."""
    import importlib.util

    import pandas
    import prefect

    for module in (pandas, prefect):
        assert Path(importlib.util.cache_from_source(str(module.__file__))).is_file(), module.__name__
