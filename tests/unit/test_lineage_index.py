"""``why_ran``: the reason the planner records for each datum it runs (pure, no storage)."""

from __future__ import annotations

from tusk.pps.datums import Datum, DatumInput, FileRecord, content_hash
from tusk.pps.lineage import CHANGED, NEW, PREVIOUSLY_FAILED, REPROCESS, why_ran


def datum(content: bytes) -> Datum:
    files = (FileRecord("/a", content, len(content)),)
    return Datum.of([DatumInput("in", "in", "master", "default", "/a", files, content_hash("/a", files))])


def test_reasons() -> None:
    old, new = datum(b"h1"), datum(b"h2")
    assert old.id == new.id  # same match path, different content
    assert why_ran(new, None, None, "s1", None) == NEW
    assert why_ran(new, "failed", old.hash("s1"), "s1", "s1") == PREVIOUSLY_FAILED
    # A recovered datum is done with, like a processed one: it runs when changed or reprocessed.
    assert why_ran(new, "recovered", old.hash("s1"), "s1", "s1") == CHANGED
    assert why_ran(old, "recovered", old.hash("s1"), "s2", "s1") == REPROCESS
    assert why_ran(new, "success", old.hash("s1"), "s1", "s1") == CHANGED
    # A new salt with the same data: a reprocess; with new data too, the data changed.
    assert why_ran(old, "success", old.hash("s1"), "s2", "s1") == REPROCESS
    assert why_ran(new, "success", old.hash("s1"), "s2", "s1") == CHANGED
    # Same hash and still run: only reprocess_spec every_job does that.
    assert why_ran(old, "success", old.hash("s1"), "s1", "s1") == REPROCESS
    # A base job from before salts were recorded cannot tell a reprocess from a change.
    assert why_ran(old, "success", old.hash("s1"), "s2", None) == CHANGED
