"""Disk faults: a full or read-only output folder gives exit 2, one line, and leaves nothing behind.

The faults are real file systems, made without root in a user and mount namespace
(`unshare -rm`): a 1 MiB tmpfs filled to its last kilobytes, and a read-only bind mount.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from pipeline.published import Store
from pipeline.storage.local import TMP_PREFIX
from tests.assembly import publish_frames
from tests.conftest import SAMPLE
from tests.validation import validate_dataset

pytestmark = pytest.mark.subprocess


def _namespaces_available() -> bool:
    unshare = shutil.which("unshare")
    if unshare is None:
        return False
    probe = subprocess.run([unshare, "-rm", "true"], capture_output=True, check=False)
    return probe.returncode == 0


requires_namespaces = pytest.mark.skipif(
    not _namespaces_available(),
    reason="needs `unshare -rm` (user namespaces) to mount a small tmpfs or a read-only folder without root",
)

SCRIPT = """
set -e
mount -t tmpfs -o size=1m tmpfs "$OUT"
cp -a "$SEED/." "$OUT/"
{prepare}
set +e
"$PYTHON" -m pipeline run --raw "$RAW" --out "$OUT" --quiet >"$RESULT/stdout" 2>"$RESULT/stderr"
echo $? >"$RESULT/code"
rm -f "$OUT/filler"
cp -a "$OUT/." "$RESULT/out/"
"""
FILL = """head -c "$(( $(stat -f -c '%a*%S' "$OUT") - 64*1024 ))" /dev/zero >"$OUT/filler" || true"""
READ_ONLY = """mount --bind "$OUT" "$OUT" && mount -o remount,bind,ro "$OUT" """


@pytest.fixture
def seeded(sample_tables, tmp_path: Path) -> dict[str, str]:
    """A dataset with version 000001, and a raw folder with one capture more than it has."""
    seed = tmp_path / "seed"
    publish_frames(seed, validate_dataset(sample_tables), {"fingerprint": "seed"}, datetime.now(UTC))
    raw = tmp_path / "raw"
    raw.mkdir()
    shutil.copy(SAMPLE, raw / SAMPLE.name)
    (raw / "listing_2026-11-27.txt").write_text("LGMar 1, 2025\nA Study of GraphsAnn Lee\nAbs.\n", encoding="utf-8")
    result = tmp_path / "result"
    (result / "out").mkdir(parents=True)
    out = tmp_path / "mnt"
    out.mkdir()
    return {"SEED": str(seed), "RAW": str(raw), "OUT": str(out), "RESULT": str(result), "PYTHON": sys.executable}


def run_in_namespace(prepare: str, paths: dict[str, str], env: dict[str, str]) -> tuple[int, str, Path]:
    script = SCRIPT.format(prepare=prepare)
    subprocess.run(["unshare", "-rm", "sh", "-c", script], env={**env, **paths}, check=True, timeout=900)
    result = Path(paths["RESULT"])
    code = int((result / "code").read_text())
    return code, (result / "stderr").read_text(encoding="utf-8"), result / "out"


def assert_untouched(out: Path) -> None:
    store = Store.open(out)
    assert store.latest_id() == "000001"
    assert store.version_ids() == ["000001"]
    assert (out / "LATEST_ID").read_text() == "000001\n"
    leftovers = [p for p in out.rglob("*") if p.name.startswith(TMP_PREFIX)]
    assert leftovers == []
    # no table or index file that version 000001 does not list (nothing half-published)
    listed = {f.key for f in store.manifest("000001").data_files()}
    stored = {p.relative_to(out).as_posix() for area in ("data", "index") if (out / area).is_dir()
              for p in (out / area).rglob("*") if p.is_file()}  # fmt: skip
    assert stored <= listed


@requires_namespaces
def test_a_full_disk_is_exit_2_and_one_line(seeded: dict[str, str], cli_env: dict[str, str]) -> None:
    code, stderr, out = run_in_namespace(FILL, seeded, cli_env)
    assert code == 2, stderr
    # --quiet: warnings (a capture that could not be staged) and the error line only
    assert "ERROR" not in stderr
    assert "Traceback" not in stderr
    error = stderr.splitlines()[-1]
    assert error.startswith(f"error: cannot write {seeded['OUT']}/"), stderr
    assert error.endswith(": No space left on device")
    assert_untouched(out)


@requires_namespaces
def test_a_read_only_output_folder_is_exit_2_and_one_line(seeded: dict[str, str], cli_env: dict[str, str]) -> None:
    code, stderr, out = run_in_namespace(READ_ONLY, seeded, cli_env)
    assert code == 2, stderr
    assert stderr.startswith(f"error: cannot write {seeded['OUT']}/"), stderr
    assert stderr.endswith(": Read-only file system\n")
    assert stderr.count("\n") == 1
    assert_untouched(out)
