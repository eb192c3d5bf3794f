"""Every CLI error path the README names prints one line (``Error: ...``), no traceback, exit status 1;
and a checkpoint built to run code when unpickled is refused without running it."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from mmea_pyg.cli.main import cli


class _RunsCode:
    """Unpickling this object calls ``open(path, "w")``: it creates ``path``."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def _malicious_checkpoint(path: Path, marker: Path) -> Path:
    torch.save({"format": 1, "config": {}, "model": {}, "epoch": 1, "payload": _RunsCode(marker)}, path)
    return path


def _one_line_error(result, *needles: str) -> str:
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit), repr(result.exception)  # not an escaped exception
    # Notices and progress bars may come before; the error is the last line, and the only one.
    lines = [line.strip() for line in result.stderr.replace("\r", "\n").splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("Error: ")]
    assert len(errors) == 1 and lines[-1] == errors[0], result.stderr
    assert "Traceback" not in result.output and "Traceback" not in result.stderr
    for needle in needles:
        assert needle in errors[0], errors[0]
    return errors[0]


@pytest.fixture
def in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_malicious_checkpoint_is_refused_and_runs_nothing(in_tmp: Path):
    marker = in_tmp / "pwned"
    checkpoint = _malicious_checkpoint(in_tmp / "evil.pt", marker)
    assert not marker.exists()
    result = CliRunner().invoke(cli, ["eval", "--checkpoint", str(checkpoint)])
    _one_line_error(result, "evil.pt", "refused", "could run code")
    assert not marker.exists()
    # The same file does run code with a plain pickle load: the test's payload is real.
    torch.load(checkpoint, weights_only=False)
    assert marker.exists()


def _case_files(root: Path, data_root: Path, fixture_mirror: Path) -> dict[str, list[str]]:
    """Arguments of each README error path, with the files each needs written under ``root``."""
    empty = root / "empty-mirror"
    empty.mkdir(parents=True)
    garbage = root / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint")
    keyless = root / "keyless.pt"
    torch.save({"format": 1, "epoch": 1}, keyless)
    bad_sums = root / "bad-sums"
    shutil.copytree(fixture_mirror, bad_sums)
    sums = (bad_sums / "SHA256SUMS").read_text().splitlines()
    name = sums[0].split(maxsplit=1)[1]
    sums[0] = f"{'0' * 64}  {name}"
    (bad_sums / "SHA256SUMS").write_text("\n".join(sums) + "\n")
    malformed = root / "malformed"
    shutil.copytree(data_root, malformed)
    (malformed / "mmkg" / "FB15K" / "FB15K_EntityTriples.txt").write_text("/m/01 /r /m/02 .\n/m/01 /r\n")
    bad_h5 = root / "bad-h5"
    shutil.copytree(data_root, bad_h5)
    (bad_h5 / "mmkg" / "FB15K" / "FB15K_ImageData.h5").write_bytes(b"this is no HDF5 file")
    no_result = root / "no-result"
    no_result.mkdir()
    return {
        "unknown dataset": ["download", "fb15k-nope"],
        "missing file in a mirror": [
            "download",
            "fb15k-db15k",
            "--root",
            str(root / "d1"),
            "--mirror",
            str(empty),
        ],
        "checksum mismatch": [
            "download",
            "fb15k-db15k",
            "--root",
            str(root / "d2"),
            "--mirror",
            str(bad_sums),
        ],
        "malformed raw line": ["info", "fb15k-db15k", "--root", str(malformed)],
        "unreadable .h5": ["info", "fb15k-db15k", "--root", str(bad_h5)],
        "text model not available offline": [
            "info",
            "fb15k-db15k",
            "--root",
            str(data_root),
            "--text-model",
            str(root / "no-such-model"),
        ],
        "bad option value": ["train", "--set", "train.nope=1", "--root", str(data_root)],
        "unknown ablation": ["train", "--ablation", "w/o X", "--root", str(data_root)],
        "bad metric": ["eval", "--metric", "hits@x"],
        "missing checkpoint": ["eval", "--checkpoint", str(root / "missing.pt")],
        "not a checkpoint": ["eval", "--checkpoint", str(garbage)],
        "checkpoint without a config": ["eval", "--checkpoint", str(keyless)],
        "no run to evaluate": ["eval"],
        "no run to report": ["report"],
        "run folder without result.json": ["report", str(no_result)],
    }


NEEDLES = {
    "unknown dataset": ["fb15k-db15k"],
    "missing file in a mirror": ["empty-mirror"],
    "checksum mismatch": ["sha256"],
    "malformed raw line": ["FB15K_EntityTriples.txt, line 2"],
    "unreadable .h5": ["FB15K_ImageData.h5"],
    "text model not available offline": ["no-such-model"],
    "bad option value": ["train.nope"],
    "unknown ablation": ["w/o X"],
    "bad metric": ["hits@K"],
    "missing checkpoint": ["missing.pt", "not found"],
    "not a checkpoint": ["garbage.pt", "not a readable checkpoint"],
    "checkpoint without a config": ["keyless.pt", "missing config"],
    "no run to evaluate": ["train one first"],
    "no run to report": ["train one first"],
    "run folder without result.json": ["result.json"],
}


@pytest.mark.parametrize("case", list(NEEDLES))
def test_every_named_error_path_is_one_line(case: str, in_tmp: Path, data_root: Path, fixture_mirror: Path):
    args = _case_files(in_tmp / "cases", data_root, fixture_mirror)[case]
    env = {"MMEA_MIRROR": "", "MMEA_DATA": str(in_tmp / "nodata")}
    result = CliRunner().invoke(cli, args, env=env)
    _one_line_error(result, *NEEDLES[case])


def test_no_file_is_left_half_written_by_a_failed_download(in_tmp: Path, fixture_mirror: Path):
    (fixture_mirror / "FB15K" / "FB15K_EntityTriples.txt").unlink()
    result = CliRunner().invoke(
        cli, ["download", "fb15k-db15k", "--root", str(in_tmp / "d"), "--mirror", str(fixture_mirror), "-q"]
    )
    _one_line_error(result, "FB15K_EntityTriples.txt")
    leftovers = [p for p in (in_tmp / "d").rglob("*") if p.name.endswith((".tmp", ".part"))]
    assert leftovers == [], leftovers
    assert os.path.isdir(in_tmp / "d")
