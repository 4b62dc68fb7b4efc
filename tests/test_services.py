"""The suite's own rules (tests/services.py): CI's run fails on a skip; tests of services are marked."""

from __future__ import annotations

import pytest

SUITE = """
import pytest

def test_skipped():
    pytest.skip("no browser here")

def test_uses_s3(s3_server):
    pass

def test_plain():
    pass
"""


def test_a_skip_fails_the_run_where_every_test_is_required(pytester: pytest.Pytester, monkeypatch) -> None:
    pytester.makepyfile(test_example=SUITE)
    monkeypatch.setenv("PIPELINE_NO_SKIPS", "1")
    result = pytester.runpytest_inprocess("-p", "tests.services", "-k", "skipped")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*PIPELINE_NO_SKIPS=1 requires every test to run: *no browser here*"])
    monkeypatch.delenv("PIPELINE_NO_SKIPS")
    pytester.runpytest_inprocess("-p", "tests.services", "-k", "skipped").assert_outcomes(skipped=1)


def test_a_test_that_talks_to_a_service_is_left_out_of_the_fast_tier(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_example=SUITE)
    result = pytester.runpytest_inprocess("-p", "tests.services", "-m", "not service", "--collect-only", "-q")
    result.stdout.fnmatch_lines(["*test_skipped*", "*test_plain*", "*2/3 tests collected (1 deselected)*"])
