"""`mmea train` and `mmea eval` end to end on the tiny fixture benchmark."""

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from mmea_pyg.cli.main import cli


@pytest.fixture
def in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # runs/ and runs/LATEST land here
    return tmp_path


def test_train_then_eval_defaults(data_root: Path, in_tmp: Path):
    runner = CliRunner()
    result = runner.invoke(
        cli,
        [
            "train",
            "--root",
            str(data_root),
            "--ratio",
            "0.5",
            "--epochs",
            "2",
            "--set",
            "train.eval_every=1",
            "--set",
            "train.transe_batch_size=8",
            "--device",
            "cpu",
            "--quiet",
        ],
    )
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert [r["epoch"] for r in records] == [1, 2]
    run = in_tmp / "runs" / "fb15k-db15k_clamea_r0.5_s0"
    assert (run / "best.pt").exists() and (run / "config.yaml").exists()
    assert (in_tmp / "runs" / "LATEST").read_text().strip() == str(run.resolve())

    result = runner.invoke(cli, ["eval", "--metric", "hits@1", "--root", str(data_root), "--json", "--csls"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert set(payload["metrics"]) == {"hits@1", "t2s/hits@1", "csls/hits@1", "csls/t2s/hits@1"}
    assert payload["split"] == "test" and payload["pairs"] == 3
    assert (run / "eval_test.json").exists()

    result = runner.invoke(cli, ["eval", "--metric", "mrr", "--root", str(data_root)])
    assert result.exit_code == 0 and "mrr" in result.stdout


def test_train_with_ablation_and_config_file(data_root: Path, in_tmp: Path):
    config = in_tmp / "cfg.yaml"
    config.write_text("train:\n  epochs: 1\n  transe_batch_size: 8\nmodel:\n  structure: gat\n")
    result = CliRunner().invoke(
        cli,
        [
            "train",
            "--root",
            str(data_root),
            "--config",
            str(config),
            "--ratio",
            "0.5",
            "--ablation",
            "wo_v",
            "--ablation",
            "w/o IT",
            "--out",
            "r",
            "--quiet",
            "--device",
            "cpu",
        ],
    )
    assert result.exit_code == 0, result.output
    saved = (in_tmp / "r" / "config.yaml").read_text()
    assert "structure: gat" in saved and "- w/o V" in saved and "- w/o IT" in saved


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["train", "--set", "train.nope=1"], "unknown key 'train.nope'"),
        (["train", "--ablation", "w/o X"], "unknown ablation"),
        (["eval", "--metric", "hits@x"], "hits@K"),
        (["eval", "--checkpoint", "missing.pt"], "not found"),
    ],
)
def test_bad_options_are_clean_errors(args, message, in_tmp: Path, data_root: Path):
    result = CliRunner().invoke(cli, [*args, "--root", str(data_root)])
    assert result.exit_code == 1, result.output
    assert message in result.output and "Traceback" not in result.output


def test_eval_without_a_run(in_tmp: Path):
    result = CliRunner().invoke(cli, ["eval"])
    assert result.exit_code == 1 and "train one first" in result.output
