"""Unpacking image layers (``tusk.images.layers``): whiteouts, replacements, and nothing
written outside the image's root, whatever a layer holds."""

from __future__ import annotations

import io
import os
import stat
import tarfile
from pathlib import Path

import pytest

from tusk.images.layers import LayerError, apply_layer, finish_root


def layer(tmp: Path, name: str, members: list[tuple[str, str, str | bytes]], gz: bool = False) -> Path:
    """A layer archive: (kind, path, data) with kind file | dir | link (data: target) | setuid."""
    path = tmp / name
    with tarfile.open(path, "w:gz" if gz else "w") as tf:
        for kind, p, data in members:
            info = tarfile.TarInfo(p)
            if kind == "dir":
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tf.addfile(info)
            elif kind == "link":
                info.type, info.linkname = tarfile.SYMTYPE, str(data)
                tf.addfile(info)
            elif kind == "char":
                info.type, info.devmajor, info.devminor = tarfile.CHRTYPE, 1, 3
                tf.addfile(info)
            else:
                raw = data.encode() if isinstance(data, str) else data
                info.size = len(raw)
                info.mode = 0o4755 if kind == "setuid" else 0o644
                tf.addfile(info, io.BytesIO(raw))
    return path


def test_later_layers_replace_and_whiteouts_delete(tmp_path: Path) -> None:
    root = tmp_path / "rootfs"
    root.mkdir()
    apply_layer(root, layer(tmp_path, "1.tar", [
        ("dir", "etc", ""), ("file", "etc/keep", "k"), ("file", "etc/gone", "g"),
        ("dir", "app", ""), ("file", "app/old.py", "old"), ("file", "app/lib/x.py", "x"),
        ("file", "thing", "a file"), ("link", "bin", "usr/bin"),
    ], gz=True))
    apply_layer(root, layer(tmp_path, "2.tar", [
        ("file", "etc/.wh.gone", ""),          # deletes etc/gone
        ("file", "app/.wh..wh..opq", ""),      # hides everything lower layers put in app/
        ("file", "app/new.py", "new"),
        ("dir", "thing", ""), ("file", "thing/inside", "now a dir"),  # file -> directory
        ("file", "./etc/keep", "k2"),          # "./" prefixed names, as some tools write
    ]))
    finish_root(root)
    assert (root / "etc" / "keep").read_text() == "k2"
    assert not (root / "etc" / "gone").exists()
    assert sorted(os.listdir(root / "app")) == ["new.py"]
    assert (root / "thing" / "inside").read_text() == "now a dir"
    assert os.readlink(root / "bin") == "usr/bin"
    for d in ("pfs", "tmp", "dev", "proc"):
        assert (root / d).is_dir()


def test_setuid_bits_are_dropped_and_devices_skipped(tmp_path: Path) -> None:
    root = tmp_path / "rootfs"
    root.mkdir()
    apply_layer(root, layer(tmp_path, "1.tar", [("setuid", "su", "#!"), ("char", "null", "")]))
    assert not os.stat(root / "su").st_mode & (stat.S_ISUID | stat.S_ISGID)
    assert not os.path.lexists(root / "null")


@pytest.mark.parametrize("members", [
    [("file", "../escape", "x")],
    [("file", "/abs/escape", "x")],
    # a symlink out of the root, then a file written through it
    [("link", "evil", "OUTSIDE"), ("file", "evil/pwn", "x")],
])
def test_nothing_is_written_outside_the_root(tmp_path: Path, members: list) -> None:  # type: ignore[type-arg]
    outside = tmp_path / "outside"
    outside.mkdir()
    root = tmp_path / "rootfs"
    root.mkdir()
    members = [(k, p, str(outside) if d == "OUTSIDE" else d) for k, p, d in members]
    with pytest.raises(LayerError):
        apply_layer(root, layer(tmp_path, "bad.tar", members))
    assert os.listdir(outside) == []
    assert not (tmp_path / "escape").exists()
    assert not Path("/abs/escape").exists()


def test_a_file_that_is_not_a_layer_is_named(tmp_path: Path) -> None:
    bogus = tmp_path / "notatar"
    bogus.write_bytes(b"\x00garbage" * 100)
    with pytest.raises(LayerError, match="notatar"):
        apply_layer(tmp_path, bogus)
