"""Every CLI error path the README names prints one line (``Error: ...``), no traceback, exit status 1
(2 for a usage error: a command line click cannot parse, or an option value out of range), before any
work starts and with nothing left behind; and a checkpoint built to run code when unpickled is refused
without running it."""

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


def _one_line_error(result, *needles: str, status: int = 1) -> str:
    """The one ``Error:`` line of a failed command (exit status ``status``: 1 for an error in the input,
    2 for a usage error), checked to be the last line of stderr and to hold every one of ``needles``."""
    assert result.exit_code == status, (result.exit_code, result.output)
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


def _created(root: Path) -> list[str]:
    """Every file and folder under ``root`` (relative paths, sorted)."""
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


PARSE_TIME = {
    "align --top-k 0": (["align", "fb15k-db15k", "--top-k", "0"], "--top-k"),
    "align --top-k -1": (["align", "fb15k-db15k", "--top-k", "-1"], "--top-k"),
    "align --top-k 0 --sinkhorn 5": (["align", "fb15k-db15k", "--top-k", "0", "--sinkhorn", "5"], "--top-k"),
    "align --sinkhorn -1": (["align", "fb15k-db15k", "--sinkhorn", "-1"], "--sinkhorn"),
    "align --sinkhorn-tau 0": (
        ["align", "fb15k-db15k", "--sinkhorn", "5", "--sinkhorn-tau", "0"],
        "--sinkhorn-tau",
    ),
    "align --sinkhorn-tau -1": (["align", "fb15k-db15k", "--sinkhorn-tau", "-1"], "--sinkhorn-tau"),
    "align --sinkhorn-tau nan": (["align", "fb15k-db15k", "--sinkhorn-tau", "nan"], "--sinkhorn-tau"),
    "align --threshold nan": (["align", "fb15k-db15k", "--threshold", "nan"], "--threshold"),
    "align --threshold inf": (["align", "fb15k-db15k", "--threshold", "inf"], "--threshold"),
    "align --threshold -inf": (["align", "fb15k-db15k", "--threshold=-inf"], "--threshold"),
    "align --epochs 0": (["align", "fb15k-db15k", "--epochs", "0"], "--epochs"),
    "align --epochs -1": (["align", "fb15k-db15k", "--epochs", "-1"], "--epochs"),
    "train --epochs 0": (["train", "--epochs", "0"], "--epochs"),
    "train --epochs -1": (["train", "--epochs", "-1"], "--epochs"),
}


@pytest.mark.parametrize("case", list(PARSE_TIME))
def test_options_out_of_range_are_refused_before_anything_runs(case: str, in_tmp: Path, data_root: Path):
    args, option = PARSE_TIME[case]
    before = _created(in_tmp)
    run = in_tmp / "run"
    result = CliRunner().invoke(cli, [*args, "--out", str(run), "--root", str(data_root), "--quiet"])
    _one_line_error(result, option, "mmea ", "--help", status=2)
    assert not run.exists() and _created(in_tmp) == before


@pytest.mark.parametrize(
    "args",
    [
        ["train", "--set", "train.epochs=0"],
        ["train", "--set", "train.eval_every=0"],
        ["train", "--set", "train.pseudo_bootstrap=0"],
        ["train", "--set", "train.pseudo_top_k=0"],
        ["align", "fb15k-db15k", "--set", "train.epochs=-1"],
    ],
)
def test_config_values_out_of_range_are_refused_before_anything_runs(args, in_tmp: Path, data_root: Path):
    run = in_tmp / "run"
    result = CliRunner().invoke(cli, [*args, "--out", str(run), "--root", str(data_root), "--quiet"])
    _one_line_error(result, args[-1].split("=")[0], "must be at least 1")
    assert not run.exists()


@pytest.mark.parametrize(
    ("assignment", "message"),
    [
        ("train.pseudo_sinkhorn=1.0", "must be below 1.0"),
        ("train.pseudo_sinkhorn=nan", "must be below 1.0"),
        ("train.pseudo_tau=0", "must be above 0.0"),
    ],
)
def test_bounded_config_values_are_refused_before_anything_runs(
    assignment: str, message: str, in_tmp: Path, data_root: Path
):
    run = in_tmp / "run"
    args = ["train", "--set", assignment, "--out", str(run), "--root", str(data_root), "--quiet"]
    result = CliRunner().invoke(cli, args)
    _one_line_error(result, assignment.split("=")[0], message)
    assert not run.exists()


def test_align_library_refuses_bad_options_before_training(in_tmp: Path, data_root: Path):
    from mmea_pyg import pipeline
    from mmea_pyg.errors import ConfigError

    for options, flag in (
        ({"top_k": 0, "sinkhorn": 5}, "--top-k"),
        ({"sinkhorn": 5, "sinkhorn_tau": float("nan")}, "--sinkhorn-tau"),
        ({"threshold": float("nan")}, "--threshold"),
        ({"sinkhorn": -1}, "--sinkhorn"),
    ):
        with pytest.raises(ConfigError, match=flag):
            pipeline.align("fb15k-db15k", out=in_tmp / "run", root=data_root, progress=False, **options)
        assert not (in_tmp / "run").exists()


@pytest.mark.parametrize(
    "args, needle",
    [
        (["nope"], "No such command 'nope'"),
        (["--nope"], "No such option"),
        (["train", "--nope"], "No such option"),
        (["train", "--epochs", "many"], "--epochs"),
        (["eval", "--split", "train"], "--split"),
        (["align", "fb15k-db15k", "--one-to-one", "best"], "--one-to-one"),
    ],
)
def test_usage_errors_are_one_line_with_status_2(args, needle: str, in_tmp: Path):
    result = CliRunner().invoke(cli, args)
    line = _one_line_error(result, needle, status=2)
    assert result.stderr.strip() == line  # no Usage / Try block around it
    assert "Usage:" not in result.output


EA_FIXTURES = Path(__file__).resolve().parent / "fixtures" / "ea"


def _blocker(root: Path) -> Path:
    """A regular file: no folder can be created beneath it, not even by root (chmod would not stop the
    tests, which may run as root)."""
    blocker = root / "somefile"
    blocker.write_text("not a folder\n")
    return blocker


@pytest.mark.parametrize(
    "args",
    [["train", "--epochs", "1"], ["align", "fb15k-db15k", "--epochs", "1"]],
    ids=["train", "align"],
)
def test_out_that_cannot_be_created_is_refused_before_the_build(args, in_tmp: Path, data_root: Path):
    blocker = _blocker(in_tmp)
    result = CliRunner().invoke(
        cli, [*args, "--out", str(blocker / "run"), "--root", str(data_root), "--quiet"]
    )
    _one_line_error(result, "--out", str(blocker / "run"), f"{blocker} is a file, not a folder")
    assert "run folder:" not in result.stderr  # training never started
    assert not list(data_root.rglob("processed")) and not (in_tmp / "runs").exists()


def test_out_without_write_permission_is_refused_before_the_build(in_tmp: Path, data_root: Path, monkeypatch):
    locked = in_tmp / "locked"
    locked.mkdir()
    real_access = os.access

    def access(path, mode, *args, **kwargs):
        if Path(path) == locked and mode & os.W_OK:
            return False
        return real_access(path, mode, *args, **kwargs)

    monkeypatch.setattr(os, "access", access)
    result = CliRunner().invoke(
        cli, ["train", "--epochs", "1", "--out", str(locked / "run"), "--root", str(data_root), "--quiet"]
    )
    _one_line_error(result, "--out", f"no permission to write in {locked}")
    assert list(locked.iterdir()) == [] and not list(data_root.rglob("processed"))


@pytest.mark.parametrize(
    "args",
    [
        ["info", str(EA_FIXTURES / "openea" / "D_Y_tiny")],
        ["train", "--dataset", str(EA_FIXTURES / "openea" / "D_Y_tiny"), "--epochs", "1", "--out", "run"],
    ],
    ids=["info", "train"],
)
def test_data_root_that_cannot_be_written_is_refused_before_the_build(args, in_tmp: Path):
    blocker = _blocker(in_tmp)
    before = _created(in_tmp)
    result = CliRunner().invoke(
        cli, [*args, "--quiet"] if args[0] == "train" else args, env={"MMEA_DATA": str(blocker / "data")}
    )
    _one_line_error(result, "processed dataset folder", f"{blocker} is a file, not a folder", "$MMEA_DATA")
    assert _created(in_tmp) == before


def test_checkpoint_folder_that_cannot_be_written_is_refused_before_evaluating(in_tmp: Path, monkeypatch):
    folder = in_tmp / "run"
    folder.mkdir()
    torch.save({"format": 1, "epoch": 1}, folder / "best.pt")
    real_access = os.access
    monkeypatch.setattr(
        os, "access", lambda p, mode, *a, **k: False if Path(p) == folder else real_access(p, mode, *a, **k)
    )
    result = CliRunner().invoke(cli, ["eval", "--checkpoint", str(folder / "best.pt")])
    _one_line_error(result, "checkpoint folder", f"no permission to write in {folder}")


def test_writable_check_creates_nothing(tmp_path: Path):
    from mmea_pyg.errors import NotWritableError
    from mmea_pyg.io import check_writable_dir

    check_writable_dir(tmp_path / "a" / "b", "run folder")
    assert list(tmp_path.iterdir()) == []
    blocker = _blocker(tmp_path)
    with pytest.raises(NotWritableError, match="is a file, not a folder"):
        check_writable_dir(blocker, "run folder")
    assert sorted(tmp_path.iterdir()) == [blocker]


def test_a_failed_build_leaves_no_empty_folder(in_tmp: Path):
    folder = in_tmp / "D_Y_bad"
    shutil.copytree(EA_FIXTURES / "openea" / "D_Y_tiny", folder)
    with (folder / "rel_triples_1").open("a") as handle:
        handle.write("only-one-field\n")
    data = in_tmp / "data"
    data.mkdir()
    result = CliRunner().invoke(cli, ["info", str(folder), "--root", str(data)])
    _one_line_error(result, "rel_triples_1")
    assert list(data.rglob("*")) == []


def _histogram(mean: float | None = 0.5) -> dict:
    return {"low": -1.0, "high": 1.0, "counts": [1, 3, 0, 2], "n": 6, "mean": mean}


def _saved_result(run: Path) -> Path:
    """A small but complete ``result.json`` in ``run``, as :meth:`RunResult.save` writes it."""
    from mmea_pyg.pipeline import Evaluation, RunResult

    metrics = {"hits@1": 0.5, "hits@10": 0.9, "mrr": 0.6, "mr": 3.0}
    result = RunResult(
        dataset="toy",
        model="clamea",
        config={},
        seed=0,
        split_seed=0,
        modalities=["r"],
        best_epoch=2,
        epochs=2,
        evaluations=[Evaluation("valid", "model", 10, metrics), Evaluation("test", "model", 20, metrics)],
        history=[
            {"epoch": e, "loss": {"total": 1.0 / e}, "valid": metrics, "pseudo_seeds": 0} for e in (1, 2)
        ],
        diagnostics={
            "split": "test",
            "scores": {"match": _histogram(), "hardest non-match": _histogram(None)},
            "modality_weights": {"w_r": {"r": _histogram()}},
        },
        run_dir=str(run),
    )
    return result.save()


MALFORMED = {
    "a number where a list is": ({"history": 5}, "history must be a list"),
    "a string where a mapping is": ({"diagnostics": "none"}, "diagnostics must be a mapping"),
    "a list where a number is": ({"best_epoch": [2]}, "best_epoch must be an integer"),
    "a nested string where a mapping is": (
        {"history": [{"epoch": 1, "loss": "low"}]},
        "history[0].loss must be a mapping",
    ),
    "a histogram without counts": (
        {"diagnostics": {"scores": {"match": {"low": 0.0, "high": 1.0, "n": 1, "mean": 0.1}}}},
        "diagnostics.scores.match lacks counts",
    ),
    "an evaluation missing fields": ({"evaluations": [{"split": "test"}]}, "evaluations[0] lacks"),
    "a boolean where a number is": (
        {"evaluations": [{"split": "test", "embedding": "model", "pairs": True, "metrics": {}}]},
        "evaluations[0].pairs must be an integer",
    ),
    "an unknown field": ({"colour": "red"}, "unknown field(s) colour"),
    "not a mapping": (None, "not an mmea-pyg run result"),
}


@pytest.mark.parametrize("case", list(MALFORMED))
def test_report_refuses_a_malformed_result_and_writes_nothing(case: str, in_tmp: Path):
    import json

    change, needle = MALFORMED[case]
    path = _saved_result(in_tmp / "run")
    values = json.loads(path.read_text())
    path.write_text(json.dumps([] if change is None else {**values, **change}))
    before = _created(in_tmp)
    result = CliRunner().invoke(cli, ["report", str(in_tmp / "run")])
    _one_line_error(result, str(path), needle)
    assert _created(in_tmp) == before


def test_report_refuses_a_folder_named_result_json(in_tmp: Path):
    (in_tmp / "run" / "result.json").mkdir(parents=True)
    result = CliRunner().invoke(cli, ["report", str(in_tmp / "run")])
    _one_line_error(result, "result.json", "is not a file")
    assert not (in_tmp / "run" / "report").exists()


def test_report_writes_all_files_or_none(in_tmp: Path, monkeypatch):
    from mmea_pyg import report
    from mmea_pyg.pipeline import RunResult

    run = in_tmp / "run"
    _saved_result(run)
    result = CliRunner().invoke(cli, ["report", str(run)])
    assert result.exit_code == 0, result.output
    written = sorted(p.name for p in (run / "report").iterdir())
    assert written == sorted([f"{key}.png" for key in report.PLOTS] + ["report.md"])

    def broken(*args, **kwargs):
        raise RuntimeError("the scores plot broke")

    monkeypatch.setattr(report, "_plot_scores", broken)  # the last plot: the others are written first
    with pytest.raises(RuntimeError, match="broke"):
        report.write_report(RunResult.load(run), in_tmp / "fresh" / "report")
    assert not (in_tmp / "fresh").exists()  # nothing, not even the parent folder
    with pytest.raises(RuntimeError, match="broke"):
        report.write_report(RunResult.load(run), run / "report")
    assert sorted(p.name for p in run.iterdir()) == ["report", "result.json"]  # no temporary folder
    assert sorted(p.name for p in (run / "report").iterdir()) == written  # the earlier report is whole


def test_report_into_an_existing_folder_replaces_its_own_files_only(in_tmp: Path):
    from mmea_pyg.pipeline import RunResult

    run = in_tmp / "run"
    _saved_result(run)
    out = in_tmp / "shared"
    out.mkdir()
    (out / "notes.txt").write_text("mine\n")
    (out / "modality_weights.png").write_bytes(b"stale plot")
    loaded = RunResult.load(run)
    loaded.diagnostics = {"split": "test", "scores": {"match": _histogram()}}  # no modality weights
    paths = loaded.report(out)
    assert sorted(p.name for p in out.iterdir()) == sorted([p.name for p in paths] + ["notes.txt"])
    assert (
        "modality_weights.png" not in {p.name for p in paths} and (out / "notes.txt").read_text() == "mine\n"
    )
    assert not [p for p in in_tmp.iterdir() if p.name.endswith(".tmp")]


BAD_CONFIGS = {
    "latin-1 bytes": ("train:\n  epochs: 5\nmodel:\n  name: café\n".encode("latin-1"), "line 4: not UTF-8"),
    "a tab for indentation": (b"train:\n\tepochs: 5\n", "line 2, column 1: not valid YAML"),
    "an unclosed list": (b"train:\n  ks: [1, 5\nmodel:\n  dim: 8\n", "line 3, column 6: not valid YAML"),
    "a mapping inside a value": (b"train:\n  epochs: 5: 6\n", "line 2, column 12: not valid YAML"),
}


@pytest.mark.parametrize("case", list(BAD_CONFIGS))
def test_unreadable_config_file_is_one_line_naming_its_line(case: str, in_tmp: Path, data_root: Path):
    content, needle = BAD_CONFIGS[case]
    (in_tmp / "bad.yaml").write_bytes(content)
    result = CliRunner().invoke(
        cli, ["train", "--config", "bad.yaml", "--out", "run", "--root", str(data_root), "--quiet"]
    )
    _one_line_error(result, "bad.yaml", needle)
    assert sorted(p.name for p in in_tmp.iterdir()) == ["bad.yaml", "data"]


@pytest.fixture
def trained_checkpoint(in_tmp: Path, data_root: Path) -> Path:
    """``best.pt`` of a one-epoch run on the fixture benchmark."""
    result = CliRunner().invoke(
        cli,
        ["train", "--root", str(data_root), "--ratio", "0.5", "--epochs", "1", "--out", "run", "--quiet"]
        + ["--set", "train.transe_batch_size=8", "--device", "cpu"],
    )
    assert result.exit_code == 0, result.output
    return in_tmp / "run" / "best.pt"


def _changed(checkpoint: Path, path: Path, pick, change) -> str:
    """Copy ``checkpoint`` to ``path`` with ``change`` applied to the first model tensor for which
    ``pick(name, tensor)`` holds; returns the tensor's name."""
    saved = torch.load(checkpoint, weights_only=True)
    name = next(k for k, v in saved["model"].items() if pick(k, v))
    saved["model"][name] = change(saved["model"][name])
    torch.save(saved, path)
    return name


def test_checkpoint_with_a_resized_tensor_is_one_line_naming_it(trained_checkpoint: Path, data_root: Path):
    bad = trained_checkpoint.parent / "resized.pt"
    name = _changed(
        trained_checkpoint,
        bad,
        lambda k, v: k.endswith(".weight") and v.dim() == 2,
        lambda v: torch.cat([v, v[:1]]),  # one row more
    )
    for args in (["eval", "--checkpoint", str(bad)], ["align", "--checkpoint", str(bad), "--quiet"]):
        before = _created(trained_checkpoint.parent)
        result = CliRunner().invoke(cli, [*args, "--root", str(data_root)])
        _one_line_error(result, "resized.pt", f"tensor {name} has shape", "needs")
        assert _created(trained_checkpoint.parent) == before  # no eval_test.json, no alignment files


def test_checkpoint_whose_pseudo_anchors_grew_still_loads(trained_checkpoint: Path, data_root: Path):
    """The pseudo anchors' size is the checkpoint's to decide (they grow during training)."""
    grown = trained_checkpoint.parent / "grown.pt"
    _changed(
        trained_checkpoint,
        grown,
        lambda k, v: k.endswith("pseudo_anchors"),
        lambda v: torch.tensor([[0, 1, 2], [0, 1, 2]]),
    )
    result = CliRunner().invoke(
        cli, ["eval", "--checkpoint", str(grown), "--root", str(data_root), "--quiet"]
    )
    assert result.exit_code == 0, result.output


def test_negative_relation_id_is_one_line_and_builds_nothing(in_tmp: Path):
    folder = in_tmp / "JA-EN"
    shutil.copytree(EA_FIXTURES / "contea" / "JA-EN_tiny", folder)
    (folder / "rel_dict").write_text("0\thttp://a\n-1\thttp://b\n")
    result = CliRunner().invoke(cli, ["info", str(folder), "--root", str(in_tmp / "data")])
    _one_line_error(result, "rel_dict, line 2", "id -1 is out of range")
    assert not (in_tmp / "data").exists()


@pytest.mark.parametrize("bad", [float("nan"), float("inf")], ids=["nan", "inf"])
def test_non_finite_image_features_are_one_line_and_cache_nothing(bad: float, in_tmp: Path):
    import numpy as np

    folder = in_tmp / "mea"
    shutil.copytree(EA_FIXTURES / "meaformer" / "npz", folder)
    npz = folder / "zh_en_id_img_feature_dict.npz"
    vectors = dict(np.load(npz))
    vectors["2"] = np.full(4, bad, dtype=np.float32)
    np.savez(npz, **vectors)
    result = CliRunner().invoke(cli, ["info", str(folder), "--root", str(in_tmp / "data")])
    _one_line_error(result, "zh_en_id_img_feature_dict.npz", "id 2 contains NaN or infinite values")
    assert not (in_tmp / "data").exists()


def test_quiet_hides_the_text_encoders_weight_loading_bar(in_tmp: Path, data_root: Path, monkeypatch):
    from huggingface_hub.utils import enable_progress_bars
    from transformers.utils import logging as transformers_logging

    monkeypatch.delenv("HF_HUB_DISABLE_PROGRESS_BARS", raising=False)
    enable_progress_bars()  # an earlier --quiet in this process may have hidden them
    transformers_logging.enable_progress_bar()
    result = CliRunner().invoke(
        cli,
        ["train", "--root", str(data_root), "--ratio", "0.5", "--epochs", "1", "--out", "run", "--quiet"]
        + ["--set", "train.transe_batch_size=8", "--device", "cpu"],
    )
    assert result.exit_code == 0, result.output
    assert "Loading weights" not in result.stderr and "%|" not in result.stderr, result.stderr


def test_align_checkpoint_checks_source_by_content_and_finds_its_dataset_from_anywhere(
    in_tmp: Path, monkeypatch
):
    """SOURCE with --checkpoint must hold the checkpoint's graphs (any path or copy of them); another
    graph is refused in one line and leaves nothing; without SOURCE the checkpoint finds its dataset
    by its absolute path from another working directory."""
    tiny = Path(__file__).parent / "fixtures" / "ea" / "jape" / "srprs_tiny"
    shutil.copytree(tiny, in_tmp / "a")
    shutil.copytree(tiny, in_tmp / "a copy")
    shutil.copytree(tiny, in_tmp / "other")
    lines = (in_tmp / "a" / "triples_1").read_text(encoding="utf-8").splitlines(keepends=True)
    (in_tmp / "other" / "triples_1").write_text("".join(lines[:2]), encoding="utf-8")  # two triples fewer
    small = [
        "--set", "lightea.ent_dim=16", "--set", "lightea.rel_dim=4", "--set", "lightea.mini_dim=2",
        "--set", "lightea.top_k=3",
    ]  # fmt: skip
    runner = CliRunner()
    trained = runner.invoke(cli, ["align", "a", "--model", "lightea", *small, "--out", "run", "--quiet"])
    assert trained.exit_code == 0, trained.output
    same = runner.invoke(cli, ["align", "a copy", "--checkpoint", "run/best.pt", "--out", "r2", "--quiet"])
    assert same.exit_code == 0, same.output
    other = runner.invoke(cli, ["align", "other", "--checkpoint", "run/best.pt", "--out", "r3", "--quiet"])
    _one_line_error(other, "other", "is not the dataset", "run/best.pt")
    assert not (in_tmp / "r3").exists()
    elsewhere = in_tmp / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    found = runner.invoke(
        cli, ["align", "--checkpoint", str(in_tmp / "run" / "best.pt"), "--out", "r4", "--quiet"]
    )
    assert found.exit_code == 0, found.output
    assert (elsewhere / "r4" / "alignment.tsv").exists()
