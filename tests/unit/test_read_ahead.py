"""Read-ahead of a put's source: a hint that must never hang, fail, or read past its lead."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tusk.storage import read_ahead
from tusk.storage.read_ahead import ReadAhead


def test_it_stops_at_the_lead_until_the_consumer_advances(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(read_ahead, "STEP", 4096)
    path = tmp_path / "src"
    path.write_bytes(os.urandom(64 * 4096))
    offsets: list[int] = []
    real = os.posix_fadvise

    def spy(fd: int, offset: int, length: int, advice: int) -> None:
        offsets.append(offset)
        real(fd, offset, length, advice)

    monkeypatch.setattr(read_ahead.os, "posix_fadvise", spy)
    fd = os.open(path, os.O_RDONLY)
    try:
        ra = ReadAhead.of_file(fd, lead=8 * 4096)
        ra._thread.join(0.3)  # it runs ahead, then waits for the consumer
        assert max(offsets) == 7 * 4096
        ra.advance(60 * 4096)
        ra._thread.join(5)  # now it reaches the end of the file and stops by itself
        assert not ra._thread.is_alive()
        assert max(offsets) == 63 * 4096  # the last step of the file
        ra.close()
    finally:
        os.close(fd)


def test_close_returns_while_it_waits_and_a_failing_hint_is_not_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "src"
    path.write_bytes(b"x" * 100)
    fd = os.open(path, os.O_RDONLY)
    try:
        ra = ReadAhead.of_file(fd, lead=0)  # never allowed ahead: it waits at once
        ra.close()

        def fail(*_args: object) -> None:
            raise OSError(22, "Invalid argument")

        monkeypatch.setattr(read_ahead.os, "posix_fadvise", fail)
        ra = ReadAhead.of_file(fd)
        ra._thread.join(5)  # the hint gives up quietly: nothing is raised anywhere
        assert not ra._thread.is_alive()
        ra.close()
    finally:
        os.close(fd)
