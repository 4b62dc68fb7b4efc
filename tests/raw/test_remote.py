"""Raw listings on object storage: listed under a prefix, dated as files are, copied before reading."""

from __future__ import annotations

from datetime import date

import pytest

from pipeline.errors import InputError
from pipeline.raw.remote import discover_remote_sources, local_copies
from pipeline.storage.s3 import S3Storage, parse_s3_url
from tests.s3server import BUCKET

pytestmark = pytest.mark.server


def test_listings_under_a_prefix_are_found_dated_and_copied(s3, s3_prefix, tmp_path):
    storage = S3Storage(parse_s3_url(s3_prefix))
    storage.write_bytes("a/listing_2026-01-02.txt", b"x")
    storage.write_bytes("b/undated.txt", b"yy")
    storage.write_bytes("b/readme.md", b"not a listing")
    # A key no name of ours could have: written with a bare client.
    s3.client().put_object(Bucket=BUCKET, Key=f"{storage.location.prefix}/c/bad\x01name_2026-01-03.txt", Body=b"z")
    found = discover_remote_sources(parse_s3_url(s3_prefix), date(2026, 2, 1))
    assert [(s.name, s.capture_date, s.capture_date_from) for s in found.sources] == [
        ("a/listing_2026-01-02.txt", date(2026, 1, 2), "file name"),
        ("b/undated.txt", date(2026, 2, 1), "--as-of"),
    ]
    assert [n.action for n in found.notices] == ["skipped"]
    copies = local_copies(found.sources, tmp_path)
    assert [c.path.read_bytes() for c in copies] == [b"x", b"yy"]
    assert all(c.path.parent == tmp_path and c.location is None for c in copies)


def test_a_prefix_without_listings_is_an_input_error(s3, s3_prefix):
    with pytest.raises(InputError, match="no listings"):
        discover_remote_sources(parse_s3_url(s3_prefix), None)
