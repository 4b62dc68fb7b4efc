"""What each command does, in process: `run` and `serve` without what they need, the read-side
commands on two versions that differ, `export delta`'s output and refusals."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.cli import main
from pipeline.published import Store
from schemas.tables import MODELS
from tests.assembly import publish_frames
from tests.conftest import own_copy


def test_serve_without_a_server_says_how_to_start_one(monkeypatch, capsys) -> None:
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings(updates={PREFECT_API_URL: None}):
        assert main(["serve", "--cron", "0 6 * * *"]) == 3
    assert "prefect server start" in capsys.readouterr().err
    with temporary_settings(updates={PREFECT_API_URL: "http://127.0.0.1:9/api"}):
        assert main(["serve", "--cron", "0 6 * * *"]) == 3
    assert "no Prefect server answers at http://127.0.0.1:9/api" in capsys.readouterr().err


def test_missing_raw_folder_is_a_clear_error(tmp_path: Path, capsys) -> None:
    assert main(["run", "--raw", str(tmp_path / "nope"), "--out", str(tmp_path / "out")]) == 2
    # one line: where it looked, what it looked for, how to point it elsewhere
    assert capsys.readouterr().err.splitlines() == [
        f"error: no listings (*.txt) under {tmp_path / 'nope'} (pass --raw DIR)"
    ]
    assert not (tmp_path / "out").exists()  # refused before anything is written


# --- read-side commands on hostile or unusual folders --------------------------------------------


@pytest.fixture(scope="module")
def two_versions(sample_tables, tmp_path_factory) -> Path:
    """A dataset of two versions that differ: papers updated, added and removed."""
    from datetime import UTC, datetime

    from tests.validation import validate_dataset

    out = tmp_path_factory.mktemp("two-versions")
    first = validate_dataset(sample_tables)
    second = {name: frame.copy() for name, frame in first.items()}
    papers = second["papers"]
    papers.loc[0, "score"] = 12.5
    papers.loc[1, "title"] = "A" * 3_000  # a long value must not make a long line
    removed = papers.loc[2, "paper_id"]
    second["papers"] = papers[papers["paper_id"] != removed].reset_index(drop=True)
    for table in ("paper_authors", "paper_organizations"):
        second[table] = second[table][second[table]["paper_id"] != removed].reset_index(drop=True)
    when = datetime(2026, 11, 26, tzinfo=UTC)
    publish_frames(out, first, {"fingerprint": "f1"}, when)
    publish_frames(out, second, {"fingerprint": "f2"}, when)
    return out


def test_diff_of_two_different_versions_lists_each_change(two_versions: Path, capsys, gold) -> None:
    assert main(["diff", "000001", "000002", "--out", str(two_versions)]) == 0
    out = capsys.readouterr().out
    assert f"{gold.papers} → {gold.papers - 1} papers" in out  # one paper removed
    assert "0 added, 2 updated, 1 removed" in out
    assert "(score)" in out
    assert "(title)" in out
    assert max(len(line) for line in out.splitlines()) < 200


def test_show_keeps_lines_short(two_versions: Path, capsys, gold) -> None:
    assert main(["show", "--out", str(two_versions), "--table", "papers", "--limit", str(gold.papers)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3 + 1 + gold.papers - 1  # summary lines, the header row, the rows (one paper removed)
    assert max(len(line) for line in lines) < 400


def test_versions_of_a_missing_folder_is_an_error(tmp_path: Path, capsys) -> None:
    assert main(["versions", "--out", str(tmp_path / "missing")]) == 2
    assert capsys.readouterr().err.splitlines() == [f"error: no dataset at {tmp_path / 'missing'} (pass --out DIR)"]
    out = tmp_path / "out"
    with Store.open(out).lock(30):  # a dataset that has been written to (a refused first run), without versions
        pass
    assert main(["versions", "--out", str(out)]) == 0
    assert capsys.readouterr().out.splitlines() == [f"no versions published under {out}"]


@pytest.mark.flow
def test_losing_the_prefect_api_after_publishing_says_so(
    prefect_server, raw_dir: Path, tmp_path: Path, monkeypatch, capsys
) -> None:
    import httpx

    from pipeline.cli import flow_commands
    from tests.conftest import run_flow

    out = tmp_path / "out"
    real_flow = flow_commands.refresh

    def publish_then_lose_the_api(**parameters):
        run_flow(raw_dir, out, flow=real_flow)
        raise httpx.ConnectError("All connection attempts failed")

    monkeypatch.setattr(flow_commands, "refresh", publish_then_lose_the_api)
    assert main(["run", "--raw", str(raw_dir), "--out", str(out)]) == 3
    last = capsys.readouterr().err.splitlines()[-1]  # (Prefect's log handler may complain of pytest's streams)
    assert last.startswith("error: lost the Prefect API during the run (All connection attempts failed)")
    assert last.endswith("version 000001 was published before the failure, and is complete")


# --- export delta --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def dataset(sample_tables, tmp_path_factory) -> Path:
    """OUT with versions 000001 to 000003, each with one paper less than the one before (shared:
    tests that change OUT take `out`)."""
    from datetime import UTC, datetime

    from tests.assembly import successive_editions
    from tests.validation import validate_dataset

    out = tmp_path_factory.mktemp("dataset")
    editions = successive_editions(validate_dataset(sample_tables))[:3]
    when = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
    ids = [
        publish_frames(out, tables, {"fingerprint": f"f{n}"}, when).version_id for n, tables in enumerate(editions, 1)
    ]
    assert ids == ["000001", "000002", "000003"]
    return out


@pytest.fixture
def out(dataset: Path, tmp_path: Path) -> Path:
    """A copy of `dataset` of this test's own."""
    return own_copy(dataset, tmp_path / "out")


def _edited(file: Path) -> None:
    data = bytearray(file.read_bytes())
    data[len(data) // 2] ^= 0x04
    file.write_bytes(bytes(data))


def test_cli_prints_progress_on_stderr_and_one_summary_line(dataset: Path, tmp_path: Path, capsys, gold) -> None:
    command = ["export", "delta", str(tmp_path / "delta"), "--out", str(dataset)]
    assert main(command) == 0
    printed = capsys.readouterr()
    assert printed.out.splitlines() == [
        f"exported 3 version(s) (000001 to 000003) to {tmp_path / 'delta'}: {len(MODELS)} Delta tables, "
        f"{3 * len(MODELS)} commits; 0 version(s) were already there"
    ]
    # a version that removes a paper is written whole: its table is overwritten, not appended to
    assert f"000002 papers: {gold.papers - 1} rows (overwritten) → Delta version 1" in printed.err.splitlines()

    assert main(command) == 0
    printed = capsys.readouterr()
    assert printed.out.splitlines() == [
        f"{tmp_path / 'delta'} is up to date: 3 version(s) in {len(MODELS)} Delta tables, nothing new to export"
    ]
    assert printed.err == ""


def test_cli_refusals_are_one_line_with_exit_2(dataset: Path, out: Path, tmp_path: Path, capsys, monkeypatch) -> None:
    # a readers' cache of its own: a verified copy of the file in a shared one would be read instead of it
    monkeypatch.setenv("PIPELINE_CACHE_DIR", str(tmp_path / "reader-cache"))
    inside = ["export", "delta", str(dataset / "versions" / "x"), "--out", str(dataset)]
    assert main(inside) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith(f"error: {dataset / 'versions' / 'x' / 'papers'} would be written inside the dataset's own")

    (papers,) = Store.open(out).manifest("000001").tables["papers"]
    _edited(out / papers.key)
    assert main(["export", "delta", str(tmp_path / "delta"), "--out", str(out)]) == 2
    assert "differs from the sha256 in its manifest" in capsys.readouterr().err

    assert main(["export", "delta", str(tmp_path / "delta"), "--out", str(tmp_path / "missing")]) == 2
    assert capsys.readouterr().err.splitlines() == [f"error: no dataset at {tmp_path / 'missing'} (pass --out DIR)"]


def _unusable_s3(monkeypatch, fault: str) -> str:
    """Point this process at S3 with one fault; the URL to use (a client is made anew for new settings)."""
    from tests.s3server import SECRET_KEY, free_port

    if fault == "bad credentials":
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wrong-" + SECRET_KEY)
    elif fault == "dead endpoint":
        monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")
    return "s3://no-such-bucket/papers" if fault == "missing bucket" else "s3://listings/papers"


@pytest.mark.server
@pytest.mark.parametrize(
    ("fault", "said"),
    [("bad credentials", "access denied"), ("missing bucket", "bucket does not exist"),
     ("dead endpoint", "does not answer")],
)  # fmt: skip
@pytest.mark.parametrize("command", ["run --out", "run --raw", "versions", "validate", "export"])
def test_an_unusable_s3_store_is_one_line_with_exit_2(s3, raw_dir, tmp_path, monkeypatch, capsys, fault, said, command):
    from tests.s3server import SECRET_KEY

    url = _unusable_s3(monkeypatch, fault)
    argv = {
        "run --out": ["run", "--raw", str(raw_dir), "--out", url],
        "run --raw": ["run", "--raw", url, "--out", str(tmp_path / "out")],
        "versions": ["versions", "--out", url],
        "validate": ["validate", f"{url}/versions/000001"],
        "export": ["export", "delta", str(tmp_path / "delta"), "--out", url],
    }[command]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert said in err
    assert len(err.strip().splitlines()) == 1, err
    assert SECRET_KEY not in err
    assert not (tmp_path / "out").exists()
    assert not (tmp_path / "delta").exists()


@pytest.mark.server
@pytest.mark.parametrize(
    "argv",
    [["validate", "s3://listings/papers/versions/../x"], ["diff", "../000001", "--out", "s3://listings/papers"],
     ["show", "--table", "../papers", "--out", "s3://listings/papers"], ["run", "--out", "s3://listings/a/./b"]],
)  # fmt: skip
def test_a_name_that_would_escape_an_s3_prefix_is_refused_with_exit_2(s3, argv, capsys):
    try:
        code = main(argv)
    except SystemExit as usage:  # refused by the option's type, as a usage error
        code = usage.code
    assert code == 2
    assert "Traceback" not in capsys.readouterr().err
