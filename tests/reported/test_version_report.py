"""The version report: its data from a version's files, its page (pure), and that page in a real browser."""

from __future__ import annotations

import dataclasses
import math
import os
import shutil
import struct
import subprocess
import zlib
from dataclasses import replace
from datetime import UTC, date, datetime
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from pipeline.errors import VersionDamagedError
from pipeline.published.layout import REPORT_FILE
from pipeline.published.manifest import read_manifest
from pipeline.published.verify import verified_files
from pipeline.reported.version_report import (
    CATEGORY_COLOURS,
    OTHER,
    OTHER_COLOUR,
    RANK_COLOUR,
    REJECT_COLOUR,
    Category,
    ColumnNulls,
    Ranked,
    RejectCause,
    ReportData,
    monthly_series,
    render_report,
    report_data,
)
from schemas import MODELS
from schemas.tables import CHANGE_KINDS
from tests.assembly import assembled, publish_frames
from tests.conftest import SAMPLE
from tests.png import SIGNATURE, colour_pixels, decode_png
from tests.validation import validate_dataset

CAPTURE = date(2026, 11, 26)
HOSTILE = '<script>alert("x")</script> & <img src=x onerror=alert(1)>'
STRAY = "<script>alert(1)</script> a line that belongs to no record\n"
UNKNOWN_CATEGORY = "ZZMar 1, 2025\nA Study of GraphsAnn Lee\nAbstract.\n"


# --- a small version with a parent: the sample, then the sample edited ----------------------------


def _edited_sample(text: str) -> str:
    """The sample without its first paper, with the abstract of its second changed, and two rejects."""
    lines = text.splitlines(keepends=True)
    records = ["".join(lines[i : i + 3]) for i in range(0, len(lines), 3)]
    header, title, _ = records[1].splitlines(keepends=True)
    edited = [header + title + "A different abstract.\n", *records[2:]]
    return STRAY + "".join(r if r.endswith("\n") else r + "\n" for r in edited) + UNKNOWN_CATEGORY


@pytest.fixture(scope="module")
def versions(tmp_path_factory, sample_tables, sample_text) -> tuple[Path, dict[str, pd.DataFrame]]:
    """A dataset of two versions (the second has a parent, changes and rejects), and the second's tables."""
    out = tmp_path_factory.mktemp("report") / "out"
    first = validate_dataset(sample_tables)
    publish_frames(out, first, {"fingerprint": "f1"}, datetime(2026, 11, 26, tzinfo=UTC))
    work = tmp_path_factory.mktemp("edited")
    second = validate_dataset(assembled(work, [(SAMPLE.name, CAPTURE, _edited_sample(sample_text))], parent=first))
    outcome = publish_frames(out, second, {"fingerprint": "f2"}, datetime(2026, 11, 27, tzinfo=UTC))
    assert (outcome.version_id, outcome.parent_id) == ("000002", "000001")
    return outcome.path, second


def folder_report_data(folder: Path) -> ReportData:
    """The report data of a published version folder, as the publish step makes it: ids from its
    manifest, its files verified against the manifest's sha256 first (VersionDamagedError otherwise)."""
    manifest = read_manifest(folder)
    files = verified_files(folder, list(MODELS))
    parent = manifest.get("parent_id")
    return report_data(files, str(manifest["id"]), str(parent) if parent is not None else None)


@pytest.fixture(scope="module")
def data(versions) -> ReportData:
    return folder_report_data(versions[0])


def _ranked(links: pd.DataFrame, key: str, names: pd.Series, top: int = 20) -> list[tuple[str, int]]:
    """Names by distinct papers, most first, ties by name: the report's ranking, in pandas."""
    papers = links.groupby(key)["paper_id"].nunique()
    ranked = sorted(((str(names[k]), int(n)) for k, n in papers.items()), key=lambda r: (-r[1], r[0]))
    return ranked[:top]


def test_report_data_of_a_version_agrees_with_its_tables(data: ReportData, versions) -> None:
    folder, tables = versions
    assert (data.version_id, data.parent_id) == ("000002", "000001")
    assert data.row_counts == read_manifest(folder)["row_counts"]
    assert list(data.row_counts) == list(MODELS)
    assert data.changes == {"added": 0, "updated": 1, "removed": 1}

    papers = tables["papers"]
    assert sum(map(sum, data.papers_per_month)) == len(papers)
    by_category = papers["category"].value_counts()
    drawn = {c.code: sum(row[j] for row in data.papers_per_month) for j, c in enumerate(data.categories)}
    named = {code: n for code, n in drawn.items() if code != OTHER}
    assert named == {code: int(by_category[code]) for code in named}
    assert drawn.get(OTHER, 0) == len(papers) - sum(named.values())
    assert min(named.values()) >= max(by_category.drop(list(named)), default=0)

    authors = tables["authors"].set_index("author_id")["name"]
    assert [(r.name, r.papers) for r in data.top_authors] == _ranked(tables["paper_authors"], "author_id", authors)
    orgs = tables["organizations"].set_index("org_id")
    org_names = orgs["name"].fillna(pd.Series(orgs.index, index=orgs.index))
    assert [(r.name, r.papers) for r in data.top_organizations] == _ranked(
        tables["paper_organizations"], "org_id", org_names
    )

    rejects = tables["rejects"]
    assert {r.rule: r.records for r in data.rejects} == rejects["rule"].value_counts().to_dict()
    assert {"stray_lines", "unknown_category"} <= {r.rule for r in data.rejects}
    for cause in data.rejects:
        assert cause.example == rejects.loc[rejects["rule"] == cause.rule, "reason"].min()

    expected = [(t, c, int(tables[t][c].isna().sum()), len(tables[t])) for t in MODELS for c in tables[t].columns]
    assert [(n.table, n.column, n.nulls, n.rows) for n in data.nulls] == expected
    assert any(n.nulls for n in data.nulls)  # the sample's scores are mostly missing


def test_a_folder_whose_path_duckdb_would_read_as_a_pattern_gives_the_same_report(
    tmp_path: Path, data: ReportData, versions
) -> None:
    odd = tmp_path / "out[1]" / "v*"
    shutil.copytree(versions[0], odd)
    assert folder_report_data(odd) == data


def test_columns_without_null_statistics_are_counted(tmp_path: Path, data: ReportData, versions) -> None:
    files = {name: versions[0] / f"{name}.parquet" for name in MODELS}
    for name in ("papers", "organizations"):
        bare = tmp_path / f"{name}.parquet"
        pq.write_table(pq.read_table(files[name]), bare, write_statistics=False)
        assert pq.read_metadata(bare).row_group(0).column(0).statistics is None
        files[name] = bare
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    assert report_data(files, "000002", "000001", scratch=scratch) == data
    assert list(scratch.iterdir()) == []  # its spill folder is gone


def test_a_damaged_version_is_refused(tmp_path: Path, versions) -> None:
    copy = tmp_path / "000002"
    shutil.copytree(versions[0], copy)
    with (copy / "rejects.parquet").open("r+b") as handle:
        handle.seek(10)
        handle.write(b"\0\0\0\0")
    with pytest.raises(VersionDamagedError, match="differs from the sha256"):
        folder_report_data(copy)


def test_an_empty_version_reports_zeros(tmp_path: Path, sample_tables, reference) -> None:
    tables = {name: frame if name == "categories" else frame.iloc[0:0] for name, frame in sample_tables.items()}
    outcome = publish_frames(tmp_path / "out", validate_dataset(tables), {"fingerprint": "empty"})
    data = report_data({name: outcome.path / f"{name}.parquet" for name in MODELS}, outcome.version_id, None)
    # a version without papers still has every category of the taxonomy
    assert data.row_counts == {name: len(reference.categories) if name == "categories" else 0 for name in MODELS}
    assert data.changes == dict.fromkeys(CHANGE_KINDS, 0)
    assert (data.months, data.categories, data.papers_per_month) == ((), (), ())
    assert (data.top_authors, data.top_organizations, data.rejects) == ((), (), ())
    assert all(n.nulls == 0 and n.rate == 0 for n in data.nulls if n.table != "categories")
    page = render_report(data)
    assert "no papers" in page
    assert "no record was rejected" in page


def test_report_data_needs_every_table(versions) -> None:
    files = {name: versions[0] / f"{name}.parquet" for name in MODELS if name != "changes"}
    with pytest.raises(ValueError, match="changes"):
        report_data(files, "000002", "000001")


# --- the monthly series ----------------------------------------------------------------------------


def _month(year: int, month: int) -> int:
    return year * 12 + month - 1


def test_monthly_series_keeps_the_largest_categories_and_the_last_months() -> None:
    counts = [
        (_month(2020, 1), "cs.CL", 4),  # before the window: one "before" bar
        (_month(2025, 11), "cs.CL", 5),
        (_month(2025, 11), "cs.LG", 8),
        (_month(2026, 1), "math.OC", 1),
        (_month(2026, 1), "cs.LG", 2),
        (_month(2026, 1), "stat.ML", 1),
    ]
    names = {"cs.CL": "Computation and Language", "cs.LG": "Machine Learning"}
    months, categories, grid = monthly_series(counts, names, top_categories=2, max_months=3)
    assert months == ("before 2025-11", "2025-11", "2025-12", "2026-01")
    assert categories == (
        Category("cs.LG", "Machine Learning"),
        Category("cs.CL", "Computation and Language"),
        Category(OTHER, "all other categories"),
    )
    assert grid == ((0, 4, 0), (8, 5, 0), (0, 0, 0), (2, 0, 2))
    assert monthly_series([], names) == ((), (), ())
    # Within the window and no more categories than shown: no "before" bar, no OTHER.
    months, categories, _ = monthly_series(counts[1:3], names)
    assert (months, [c.code for c in categories]) == (("2025-11",), ["cs.LG", "cs.CL"])


# --- the page, pure --------------------------------------------------------------------------------


class Page(HTMLParser):
    """What a test needs of a report page: its elements (tag, attributes, enclosing svg id) and text."""

    def __init__(self, page: str) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[tuple[str, dict[str, str], str | None]] = []
        self.text: list[str] = []
        self._svg: str | None = None
        self.feed(page)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = {k: v or "" for k, v in attrs}
        if tag == "svg":
            self._svg = attributes.get("id")
        self.elements.append((tag, attributes, self._svg))

    def handle_endtag(self, tag: str) -> None:
        if tag == "svg":
            self._svg = None

    def handle_data(self, data: str) -> None:
        self.text.append(data)

    def tags(self, tag: str) -> list[dict[str, str]]:
        return [attributes for name, attributes, _ in self.elements if name == tag]

    def bars(self, svg_id: str) -> list[dict[str, str]]:
        return [a for tag, a, svg in self.elements if tag == "rect" and svg == svg_id and a.get("class") == "bar"]

    def ids(self) -> set[str]:
        return {a["id"] for _, a, _ in self.elements if "id" in a}


def _hostile_data() -> ReportData:
    return ReportData(
        version_id="000007",
        parent_id="000006",
        row_counts={name: 3 for name in MODELS},
        changes={"added": 2, "updated": 1, "removed": 0},
        months=("2026-10", "2026-11"),
        categories=(Category("cs.CL", HOSTILE), Category(OTHER, "all other categories")),
        papers_per_month=((2, 0), (1, 1)),
        top_authors=(Ranked(HOSTILE, 3), Ranked("Ann Lee\u0007\u202e", 1)),
        top_organizations=(Ranked(f"Org {HOSTILE}", 2),),
        rejects=(RejectCause("unknown_category", 4, f"the suffix {HOSTILE} is unknown"),),
        nulls=(ColumnNulls("papers", "score", 1, 3), ColumnNulls("papers", HOSTILE, 0, 3)),
    )


def _empty_data() -> ReportData:
    return ReportData("000001", None, dict.fromkeys(MODELS, 0), dict.fromkeys(CHANGE_KINDS, 0), (), (), (), (), (),
                      (), ())  # fmt: skip


def test_hostile_names_are_shown_as_text() -> None:
    page = render_report(_hostile_data())
    parsed = Page(page)
    assert parsed.tags("script") == []
    assert parsed.tags("img") == []
    assert not [a for _, a, _ in parsed.elements if any(k.startswith("on") for k in a)]
    text = "".join(parsed.text)
    assert text.count(HOSTILE) >= 5  # the category, author, organisation, reason and column, as written
    assert "\u0007" not in page  # a control character is shown as a replacement character
    assert "Ann Lee\ufffd\u202e" in text


@pytest.mark.parametrize("data", [_hostile_data(), _empty_data()], ids=["data", "empty"])
def test_the_page_is_self_contained_and_has_every_section(data: ReportData) -> None:
    page = render_report(data)
    lowered = page.lower()
    for remote in ("http://", "https://", "//", "url(", "@import", "<script", "<link", "<img", "<iframe"):
        assert remote not in lowered
    parsed = Page(page)
    assert not [a for _, a, _ in parsed.elements if "src" in a or "href" in a]
    sections = {"counts", "row-counts", "changes", "papers-by-month", "papers-per-month", "authors", "top-authors",
                "organizations", "top-organizations", "rejects", "reject-causes", "null-rates", "nulls"}  # fmt: skip
    assert sections <= parsed.ids()
    assert page == render_report(data)  # pure: the same data, the same page


def test_the_monthly_chart_says_what_its_series_are() -> None:
    """Its caption fits the series drawn: the largest categories and the rest, every category, or none."""
    with_rest = _hostile_data()
    assert any(c.code == OTHER for c in with_rest.categories)
    named = sum(1 for c in with_rest.categories if c.code != OTHER)
    assert f"the {named} largest categories, then all others together" in render_report(with_rest)
    every = replace(
        with_rest,
        categories=with_rest.categories[:named],
        papers_per_month=tuple(row[:named] for row in with_rest.papers_per_month),
    )
    assert f"one series per category ({named})" in render_report(every)
    assert "no paper to show" in render_report(_empty_data())


def test_the_charts_draw_one_bar_per_value() -> None:
    data = _hostile_data()
    parsed = Page(render_report(data))
    assert len(parsed.bars("papers-per-month")) == sum(1 for row in data.papers_per_month for n in row if n)
    assert len(parsed.bars("top-authors")) == len(data.top_authors)
    assert len(parsed.bars("top-organizations")) == len(data.top_organizations)
    assert len(parsed.bars("reject-causes")) == len(data.rejects)
    fills = {a["fill"] for a in parsed.bars("papers-per-month")}
    assert fills == {CATEGORY_COLOURS[0], OTHER_COLOUR}
    empty = Page(render_report(_empty_data()))
    assert not [a for tag, a, _ in empty.elements if tag == "rect"]


def test_stacked_bars_are_as_tall_as_their_papers() -> None:
    data = dataclasses.replace(_hostile_data(), papers_per_month=((6, 0), (3, 3)))
    bars = Page(render_report(data)).bars("papers-per-month")
    heights = [float(b["height"]) for b in bars]
    assert heights[0] == pytest.approx(heights[1] + heights[2], abs=0.2)
    assert heights[1] == pytest.approx(heights[2], abs=0.1)


# --- the PNG reader the browser test relies on -----------------------------------------------------


def _filtered(rows: np.ndarray, kinds: list[int], bpp: int) -> bytes:
    """Rows of bytes filtered as PNG does, one filter kind per row (the encoder's side, by the book)."""
    out = bytearray()
    prior = [0] * rows.shape[1]
    for row, kind in zip(rows.tolist(), kinds, strict=True):
        line = []
        for x, value in enumerate(row):
            a = row[x - bpp] if x >= bpp else 0
            b = prior[x]
            c = prior[x - bpp] if x >= bpp else 0
            p = a + b - c
            paeth = a if abs(p - a) <= abs(p - b) and abs(p - a) <= abs(p - c) else b if abs(p - b) <= abs(p - c) else c
            predicted = [0, a, b, (a + b) // 2, paeth][kind]
            line.append((value - predicted) & 0xFF)
        out += bytes([kind, *line])
        prior = row
    return bytes(out)


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


@pytest.mark.parametrize("channels", [3, 4])
def test_the_png_reader_undoes_every_filter(channels: int) -> None:
    image = np.random.default_rng(7).integers(0, 256, size=(10, 7, channels), dtype=np.uint8)
    kinds = [0, 1, 2, 3, 4, 4, 3, 2, 1, 0]
    header = struct.pack(">IIBBBBB", 7, 10, 8, {3: 2, 4: 6}[channels], 0, 0, 0)
    body = zlib.compress(_filtered(image.reshape(10, -1), kinds, channels))
    png = SIGNATURE + _chunk(b"IHDR", header) + _chunk(b"IDAT", body) + _chunk(b"IEND", b"")
    assert np.array_equal(decode_png(png), image)
    assert colour_pixels(decode_png(png), "#{:02x}{:02x}{:02x}".format(*image[0, 0, :3]), tolerance=0) >= 1


# --- the page in a real browser --------------------------------------------------------------------

BROWSER_TIMEOUT_S = 120  # a cold start on a loaded machine; the page itself has nothing to wait for
WINDOW = (1200, 4000)  # tall enough to hold every chart of the test's version in one screenshot


def _chromium() -> str:
    found = shutil.which("chromium")
    if found:
        return found
    message = "chromium is not installed (Debian: apt-get install chromium; .ci/run installs it)"
    if os.environ.get("PIPELINE_REQUIRE_BROWSER") == "1":
        pytest.fail(f"{message}, and PIPELINE_REQUIRE_BROWSER=1 requires the browser tests")
    pytest.skip(message)


def _browser(page: Path, profile: Path, *options: str) -> subprocess.CompletedProcess[bytes]:
    """Chromium, headless, on `page`: no network at all (every host name fails to resolve)."""
    command = [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
               f"--user-data-dir={profile}", "--host-resolver-rules=MAP * ~NOTFOUND",
               *options, page.as_uri()]  # fmt: skip
    done = subprocess.run(command, capture_output=True, timeout=BROWSER_TIMEOUT_S, check=False)
    assert done.returncode == 0, done.stderr.decode(errors="replace")[-2000:]
    return done


@pytest.fixture(scope="module")
def rendered(data: ReportData, tmp_path_factory) -> tuple[Path, Path]:
    """The report of the test's version, written where the browser opens it, and its profile folder."""
    folder = tmp_path_factory.mktemp("page")
    page = folder / REPORT_FILE
    page.write_text(render_report(data), encoding="utf-8")
    return page, folder / "profile"


def _area_at_least(bars: list[dict[str, str]]) -> int:
    """Pixels that bars of these sizes cover whatever their position (edges snap to pixels)."""
    return sum(max(math.floor(float(b["width"])) - 1, 0) * max(math.floor(float(b["height"])) - 1, 0) for b in bars)


@pytest.mark.browser
def test_the_browser_builds_every_chart(data: ReportData, rendered) -> None:
    page, profile = rendered
    dom = Page(_browser(page, profile, "--dump-dom").stdout.decode("utf-8"))
    assert len(dom.bars("papers-per-month")) == sum(1 for row in data.papers_per_month for n in row if n) > 0
    assert len(dom.bars("top-authors")) == len(data.top_authors) > 0
    assert len(dom.bars("top-organizations")) == len(data.top_organizations) > 0
    assert len(dom.bars("reject-causes")) == len(data.rejects) > 0
    assert dom.tags("script") == []


@pytest.mark.browser
def test_the_browser_paints_the_bars(data: ReportData, rendered, tmp_path: Path) -> None:
    page, profile = rendered
    shot = tmp_path / "report.png"
    _browser(page, profile, f"--screenshot={shot}", f"--window-size={WINDOW[0]},{WINDOW[1]}")
    image = decode_png(shot.read_bytes())
    assert image.shape[:2] == (WINDOW[1], WINDOW[0])
    bars = Page(render_report(data))
    by_colour: dict[str, list[dict[str, str]]] = {}
    for svg in ("papers-per-month", "top-authors", "top-organizations", "reject-causes"):
        for bar in bars.bars(svg):
            by_colour.setdefault(bar["fill"], []).append(bar)
    assert {CATEGORY_COLOURS[0], RANK_COLOUR, REJECT_COLOUR} <= set(by_colour)
    for colour, drawn in by_colour.items():
        expected = _area_at_least(drawn)
        assert expected > 0
        assert colour_pixels(image, colour) >= expected, f"{colour}: fewer pixels than its bars cover"


@pytest.mark.browser
def test_hostile_names_stay_text_in_the_browser(tmp_path: Path) -> None:
    page = tmp_path / REPORT_FILE
    page.write_text(render_report(_hostile_data()), encoding="utf-8")
    dom = Page(_browser(page, tmp_path / "profile", "--dump-dom").stdout.decode("utf-8"))
    assert dom.tags("script") == []
    assert dom.tags("img") == []
    assert HOSTILE in "".join(dom.text)
