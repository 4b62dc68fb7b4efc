"""Every snippet of the README and docs/ runs as a test (Sybil), against a dataset the test builds.

- ```python blocks run in one namespace per page (`>>>` lines are doctests: their output is checked);
- ```console blocks: each `$ command` runs in bash, and its output must match the lines shown
  under it (`...` stands for any text within a line, or alone on a line for any lines);
- ```sh blocks run in bash and must succeed;
- ```text blocks are shown, not run; `<!-- skip: next -->` skips the next block (a server that runs
  until stopped, the suite itself).

A page's snippets build on each other, so they run in order in one process: under xdist, with
`--dist loadfile` (as `make test` does).

Each page runs in a folder of its own (`docs_workdir`): the README's holds the sample in `data/raw`
and the project's Makefile, so that `make run` publishes the first version; the pages' hold a
dataset of two versions (the sample, then a five-record capture), also published to the session's
S3 server at ``s3://listings/papers``, whose settings are in the environment. Commands run with
the project's virtual environment first on PATH, and the session's Prefect server.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sybil import Example, Sybil
from sybil.parsers.markdown import CodeBlockParser, PythonCodeBlockParser, SkipParser

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "data" / "raw" / "listing_2026-11-26.txt"
SECOND = ROOT / "tests" / "data" / "layout1" / "raw" / "listing_2026-11-27.txt"  # five records, one edited
S3_DATASET = "s3://listings/papers"
COMMAND_TIMEOUT_S = 600
# What the README's `make run` needs beside the sample: the Makefile and the environment it made
# (linked), and the files that environment was installed from (copied, dated before its stamp: the
# environment is the suite's own, installed, and `make` must not install it again from here, where
# the package's sources are not).
PROJECT_LINKS = ("Makefile", ".venv")
PROJECT_INSTALLED_FROM = ("pyproject.toml", "uv.lock")
INSTALLED_STAMP = ".venv/.installed"


@dataclass(frozen=True)
class Workdir:
    """Where a page's snippets run, and the environment of its commands."""

    path: Path
    env: dict[str, str]


def expected_pattern(shown: str) -> re.Pattern[str]:
    """The output a console block shows as a pattern: `...` alone on a line stands for any lines,
    within a line for any text; every other character stands for itself."""
    parts = []
    for line in shown.splitlines():
        if line.strip() == "...":
            parts.append(r"(?:[^\n]*\n)*?")
        else:
            parts.append(".*?".join(re.escape(piece) for piece in line.rstrip().split("...")) + r"\n")
    return re.compile("".join(parts), re.DOTALL)


def _matches(shown: str, output: str) -> bool:
    text = "".join(line.rstrip() + "\n" for line in output.splitlines())
    return expected_pattern(shown).fullmatch(text) is not None


def _run(command: str, workdir: Workdir) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", "-e", "-o", "pipefail", "-c", command], cwd=workdir.path, env=workdir.env,
                          capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S, check=False)  # fmt: skip


def evaluate_console(example: Example) -> str | None:
    """Run each `$ command` of a console block; its output must match what the block shows."""
    workdir: Workdir = example.namespace["docs_workdir"]
    steps: list[tuple[str, list[str]]] = []
    for line in str(example.parsed).splitlines():
        if line.startswith("$ "):
            steps.append((line[2:], []))
        elif steps:
            steps[-1][1].append(line)
        elif line.strip():
            return f"a console block must start with `$ `: {line!r}"
    for command, shown in steps:
        done = _run(command, workdir)
        if done.returncode != 0:
            return f"`{command}` exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
        if not _matches("\n".join(shown), done.stdout):
            return f"`{command}` printed:\n{done.stdout}\nwhere the page shows:\n" + "\n".join(shown)
    return None


def evaluate_sh(example: Example) -> str | None:
    """Run a shell block; it must succeed."""
    done = _run(str(example.parsed), example.namespace["docs_workdir"])
    if done.returncode != 0:
        return f"the block exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
    return None


def _environment(server_env: dict[str, str], prefect_url: str) -> dict[str, str]:
    venv_bin = str(Path(sys.executable).parent)
    env = {**os.environ, **server_env, "PREFECT_API_URL": prefect_url}
    env["PATH"] = venv_bin + os.pathsep + env.get("PATH", "")
    for unset in ("PIPELINE_RAW_DIR", "PIPELINE_OUT_DIR", "PREFECT_LOGGING_LEVEL"):
        env.pop(unset, None)
    return env


@pytest.fixture(scope="session")
def docs_dataset(prefect_server, s3_server, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The pages' dataset: `data/raw` and `data/processed` of two versions, also published to S3."""
    from pipeline.cli import flow_parameters
    from pipeline.orchestrate.flow import refresh

    root = tmp_path_factory.mktemp("docs-dataset")
    raw, out = root / "data" / "raw", root / "data" / "processed"
    raw.mkdir(parents=True)
    shutil.copy(SAMPLE, raw / SAMPLE.name)
    refresh(**flow_parameters(raw, out))
    shutil.copy(SECOND, raw / SECOND.name)
    refresh(**flow_parameters(raw, out))
    with pytest.MonkeyPatch.context() as patched:
        for name, value in s3_server.env().items():
            patched.setenv(name, value)
        refresh(**flow_parameters(raw, S3_DATASET))
    return root


@pytest.fixture(scope="module")
def docs_workdir(
    request: pytest.FixtureRequest, prefect_api_url: str, s3_server, tmp_path_factory
) -> Iterator[Workdir]:
    """A page's own folder (module scope: one per page), the process inside it with the page's
    environment for its Python snippets."""
    page = Path(str(request.path))
    path = tmp_path_factory.mktemp(f"docs-{page.stem.lower()}")
    if page.name == "README.md":
        (path / "data" / "raw").mkdir(parents=True)
        shutil.copy(SAMPLE, path / "data" / "raw" / SAMPLE.name)
        for name in PROJECT_LINKS:
            (path / name).symlink_to(ROOT / name)
        installed = (ROOT / INSTALLED_STAMP).stat().st_mtime
        for name in PROJECT_INSTALLED_FROM:
            shutil.copyfile(ROOT / name, path / name)
            os.utime(path / name, (installed - 1, installed - 1))
    else:
        shutil.copytree(request.getfixturevalue("docs_dataset"), path, symlinks=True, dirs_exist_ok=True)
    env = _environment(s3_server.env(), prefect_api_url)
    with pytest.MonkeyPatch.context() as patched:
        patched.chdir(path)
        for name, value in env.items():
            if os.environ.get(name) != value:
                patched.setenv(name, value)
        for name in ("PIPELINE_RAW_DIR", "PIPELINE_OUT_DIR"):
            patched.delenv(name, raising=False)
        yield Workdir(path, env)


def _mark(items: list[pytest.Item]) -> None:
    for item in items:
        item.add_marker(pytest.mark.docs)


pytest_collect_file = Sybil(
    parsers=[
        SkipParser(),
        PythonCodeBlockParser(),
        CodeBlockParser("console", evaluate_console),
        CodeBlockParser("sh", evaluate_sh),
    ],
    path=str(ROOT),
    patterns=["README.md", "docs/*.md"],
    fixtures=["docs_workdir"],
).pytest()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The docs' snippets need the services: marked `docs`, so that the fast tier leaves them out."""
    _mark([item for item in items if item.path.suffix == ".md"])
