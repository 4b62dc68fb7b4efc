"""The version report's page: rendered from its data (pure), and opened in a real browser."""

from __future__ import annotations

import dataclasses
import math
import os
import shutil
import struct
import subprocess
import zlib
from dataclasses import replace
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipeline.published.layout import REPORT_FILE
from pipeline.reported.report_data import (
    MAX_TOP_CATEGORIES,
    OTHER,
    Category,
    ColumnNulls,
    Ranked,
    RankedName,
    RejectCause,
    ReportData,
)
from pipeline.reported.series import TimeBins
from pipeline.reported.version_report import (
    CATEGORY_COLOURS,
    OTHER_COLOUR,
    RANK_COLOUR,
    REJECT_COLOUR,
    render_report,
)
from schemas.tables import CHANGE_KINDS, MODELS
from tests.png import SIGNATURE, colour_pixels, decode_png
from tests.report_versions import expected_top_authors

HOSTILE = '<script>alert("x")</script> & <img src=x onerror=alert(1)>'


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
        time=TimeBins("month", 2026 * 12 + 9, 2026 * 12 + 10, False, 0, 4),
        categories=(Category("cs.CL", HOSTILE), Category(OTHER, "all other categories")),
        papers_per_period=((2, 0), (1, 1)),
        top_authors=(RankedName(HOSTILE, 3, 2, 1), RankedName("Ann Lee\u0007\u202e", 1, 1, 0)),
        top_organizations=(Ranked(f"Org {HOSTILE}", 2),),
        rejects=(RejectCause("unknown_category", 4, f"the suffix {HOSTILE} is unknown"),),
        nulls=(ColumnNulls("papers", "score", 1, 3), ColumnNulls("papers", HOSTILE, 0, 3)),
    )


def _empty_data() -> ReportData:
    return ReportData("000001", None, dict.fromkeys(MODELS, 0), dict.fromkeys(CHANGE_KINDS, 0), None, (), (), (), (),
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
    sections = {"counts", "row-counts", "changes", "papers-over-time", "papers-per-period", "authors", "top-authors",
                "organizations", "top-organizations", "rejects", "reject-causes", "null-rates", "nulls"}  # fmt: skip
    assert sections <= parsed.ids()
    assert page == render_report(data)  # pure: the same data, the same page


def test_the_time_chart_says_what_its_series_are() -> None:
    """Its caption fits the series drawn: the largest categories and the rest, every category, or none."""
    with_rest = _hostile_data()
    assert any(c.code == OTHER for c in with_rest.categories)
    named = sum(1 for c in with_rest.categories if c.code != OTHER)
    assert f"the {named} largest categories, then all others together" in render_report(with_rest)
    every = replace(
        with_rest,
        categories=with_rest.categories[:named],
        papers_per_period=tuple(row[:named] for row in with_rest.papers_per_period),
    )
    assert f"one series per category ({named})" in render_report(every)
    assert "no paper to show" in render_report(_empty_data())


@pytest.mark.parametrize(
    ("time", "heading", "caption"),
    [
        (TimeBins("month", 24_310, 24_311, False, 0, 4), "Papers per month", "One bar per month, 2025-11 to 2025-12"),
        (
            TimeBins("month", 24_310, 24_311, True, 1, 4),
            "Papers per month",
            "One bar per month for the last 2 months (2025-11 to 2025-12); the first bar holds the 1 papers (25.0%)",
        ),
        (
            TimeBins("quarter", 8_072, 8_073, False, 0, 4),
            "Papers per quarter",
            "One bar per quarter, 2018 Q1 to 2018 Q2",
        ),
        (TimeBins("year", 1995, 1996, False, 0, 4), "Papers per year", "One bar per year, 1995 to 1996"),
    ],
    ids=["months", "window", "quarters", "years"],
)
def test_the_time_chart_states_its_binning(time: TimeBins, heading: str, caption: str) -> None:
    grid = ((2, 0), (1, 1)) if not time.windowed else ((1, 0), (2, 0), (0, 1))
    data = replace(_hostile_data(), time=time, papers_per_period=grid)
    page = Page(render_report(data))
    text = "".join(page.text)
    assert f"{heading} by category" in text
    assert caption in text
    bars = page.bars("papers-per-period")
    periods = [label for label, row in zip(time.labels, grid, strict=True) for n in row if n]
    assert [b["data-period"] for b in bars] == periods
    assert [int(b["data-papers"]) for b in bars] == [n for row in grid for n in row if n]


def test_top_authors_are_names_with_what_tells_their_people_apart() -> None:
    data = _hostile_data()
    page = Page(render_report(data))
    text = "".join(page.text)
    assert "per name, not per person" in text
    assert "different people who share a name are counted together" in text
    bars = page.bars("top-authors")
    assert [(int(b["data-papers"]), int(b["data-groups"]), int(b["data-organizations"])) for b in bars] == [
        (r.papers, r.coauthor_groups, r.organizations) for r in data.top_authors
    ]
    assert "2 co-author groups, 1 organisation" in text


def test_there_is_a_colour_for_each_category_drawn_apart() -> None:
    assert len(CATEGORY_COLOURS) == MAX_TOP_CATEGORIES
    assert OTHER_COLOUR not in CATEGORY_COLOURS


def test_the_charts_draw_one_bar_per_value() -> None:
    data = _hostile_data()
    parsed = Page(render_report(data))
    assert len(parsed.bars("papers-per-period")) == sum(1 for row in data.papers_per_period for n in row if n)
    assert len(parsed.bars("top-authors")) == len(data.top_authors)
    assert len(parsed.bars("top-organizations")) == len(data.top_organizations)
    assert len(parsed.bars("reject-causes")) == len(data.rejects)
    fills = {a["fill"] for a in parsed.bars("papers-per-period")}
    assert fills == {CATEGORY_COLOURS[0], OTHER_COLOUR}
    empty = Page(render_report(_empty_data()))
    assert not [a for tag, a, _ in empty.elements if tag == "rect"]


def test_stacked_bars_are_as_tall_as_their_papers() -> None:
    data = dataclasses.replace(_hostile_data(), papers_per_period=((6, 0), (3, 3)))
    bars = Page(render_report(data)).bars("papers-per-period")
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
    assert len(dom.bars("papers-per-period")) == sum(1 for row in data.papers_per_period for n in row if n) > 0
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
    for svg in ("papers-per-period", "top-authors", "top-organizations", "reject-causes"):
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


@pytest.fixture(scope="module", params=["sample", "large"])
def opened(request, versions, data, large, tmp_path_factory) -> tuple[str, dict[str, pd.DataFrame], Page]:
    """A version's report as the browser builds it: the sample's edited child, or the large
    generated version (200k papers over three decades); its name, tables and DOM."""
    tables, shown = (versions[1], data) if request.param == "sample" else large
    folder = tmp_path_factory.mktemp(f"opened-{request.param}")
    page = folder / REPORT_FILE
    page.write_text(render_report(shown), encoding="utf-8")
    dom = Page(_browser(page, folder / "profile", "--dump-dom").stdout.decode("utf-8"))
    return request.param, tables, dom


@pytest.mark.browser
def test_the_browser_shows_papers_over_time_as_the_tables_hold_them(opened) -> None:
    """The bars add up, period by period, to the papers table counted in pandas: the sample spans
    five years, most of them before any window of recent months, and is drawn by quarter; the large
    version spans three decades and is drawn by year."""
    name, tables, dom = opened
    published = pd.to_datetime(tables["papers"]["published"])
    unit, labels = {
        "sample": ("quarter", published.dt.year.astype(str) + " Q" + published.dt.quarter.astype(str)),
        "large": ("year", published.dt.year.astype(str)),
    }[name]
    expected = labels.value_counts().sort_index()
    drawn: dict[str, int] = {}
    for bar in dom.bars("papers-per-period"):
        drawn[bar["data-period"]] = drawn.get(bar["data-period"], 0) + int(bar["data-papers"])
    assert drawn == expected.to_dict()
    text = " ".join(dom.text)
    assert f"Papers per {unit} by category" in text
    assert f"One bar per {unit}, {expected.index[0]} to {expected.index[-1]}" in text


@pytest.mark.browser
def test_the_browser_shows_top_author_names_with_their_co_author_groups(opened) -> None:
    _, tables, dom = opened
    shown = [
        (int(b["data-papers"]), int(b["data-groups"]), int(b["data-organizations"])) for b in dom.bars("top-authors")
    ]
    assert shown == [(papers, groups, orgs) for _, papers, groups, orgs in expected_top_authors(tables)]
    assert "per name, not per person" in " ".join(dom.text)
