"""Leftovers of interrupted writes: stale temporary files and folders are removed by the next write
into their folder; fresh ones (a live writer's) and files of other names are left alone."""

from __future__ import annotations

import os
import time
from pathlib import Path

from mmea_pyg.io import STALE_AFTER_SECONDS, atomic_torch_save, atomic_write_text, temporary_sibling_dir


def _aged(path: Path, seconds: float) -> Path:
    past = time.time() - seconds
    os.utime(path, (past, past))
    return path


def test_next_write_removes_stale_temporaries_only(tmp_path: Path):
    stale = tmp_path / ".data_1234.pt.k3x_9qa0.tmp"  # what kill -9 during atomic_torch_save leaves
    stale.write_bytes(b"")
    _aged(stale, STALE_AFTER_SECONDS + 60)
    stale_dir = tmp_path / ".report.ab12cd34.tmp"
    stale_dir.mkdir()
    (stale_dir / "losses.png").write_bytes(b"half")
    _aged(stale_dir, STALE_AFTER_SECONDS + 60)
    live = tmp_path / ".other.pt.zz99yy88.tmp"  # another writer, still writing
    live.write_bytes(b"partial")
    mine = tmp_path / ".notes.tmp"  # not a name this library gives
    mine.write_text("keep me\n")
    _aged(mine, STALE_AFTER_SECONDS + 60)

    atomic_torch_save({"x": 1}, tmp_path / "data_1234.pt")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["data_1234.pt", live.name, mine.name])


def test_temporary_folders_clean_their_siblings_too(tmp_path: Path):
    stale = tmp_path / ".x.json.abcdefgh.tmp"
    stale.write_text("{")
    _aged(stale, STALE_AFTER_SECONDS + 1)
    folder = temporary_sibling_dir(tmp_path / "report")
    assert not stale.exists() and folder.is_dir() and folder.parent == tmp_path
    atomic_write_text(tmp_path / "x.json", "{}\n")
    assert (tmp_path / "x.json").read_text() == "{}\n"
