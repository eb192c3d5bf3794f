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


def test_eval_with_propagation(data_root: Path, in_tmp: Path):
    """`mmea eval --propagation`: the same checkpoint with LightEA's seed labels appended, its own file,
    options eval.propagation_* of the run's config."""
    runner = CliRunner()
    train = [
        "train",
        "--root",
        str(data_root),
        "--ratio",
        "0.5",
        "--epochs",
        "1",
        "--set",
        "train.transe_batch_size=8",
        "--set",
        "eval.propagation_dim=16",
        "--set",
        "eval.propagation_rounds=1",
        "--device",
        "cpu",
        "--quiet",
    ]
    result = runner.invoke(cli, train)
    assert result.exit_code == 0, result.output
    run = in_tmp / "runs" / "fb15k-db15k_clamea_r0.5_s0"
    common = ["eval", "--metric", "hits@1", "--root", str(data_root), "--device", "cpu", "--json", "--csls"]

    result = runner.invoke(cli, common)
    assert result.exit_code == 0, result.output
    plain = json.loads(result.stdout)
    result = runner.invoke(cli, [*common, "--propagation"])
    assert result.exit_code == 0, result.output
    propagated = json.loads(result.stdout)

    assert plain["embedding"] == "model" and propagated["embedding"] == "model + LightEA propagation"
    assert propagated["pairs"] == plain["pairs"] == 3 and propagated["epoch"] == plain["epoch"]
    assert (
        set(propagated["metrics"])
        == set(plain["metrics"])
        == {
            "hits@1",
            "t2s/hits@1",
            "csls/hits@1",
            "csls/t2s/hits@1",
        }
    )
    assert all(0.0 <= v <= 1.0 for v in propagated["metrics"].values()), propagated["metrics"]
    # Both records on disk, each with its embedding and every metric; the plain one is not overwritten.
    saved_plain = json.loads((run / "eval_test.json").read_text())
    saved = json.loads((run / "eval_test_propagation.json").read_text())
    assert saved_plain["embedding"] == "model" and saved["embedding"] == "model + LightEA propagation"
    assert saved["metrics"]["hits@1"] == propagated["metrics"]["hits@1"]
    assert {"mrr", "hits@10", "csls/mrr"} <= set(saved["metrics"])
    for key, value in saved["metrics"].items():
        assert 0.0 <= value <= 1.0, key
    assert saved["metrics"]["hits@1"] <= saved["metrics"]["hits@5"] <= saved["metrics"]["hits@10"]
    assert saved["config"]["eval"]["propagation_dim"] == 16

    # The table names the embedding; the validation split gets its own file.
    result = runner.invoke(
        cli, ["eval", "--propagation", "--split", "valid", "--root", str(data_root), "--device", "cpu"]
    )
    assert result.exit_code == 0, result.output
    assert "model + LightEA propagation" in result.stdout
    assert (run / "eval_valid_propagation.json").exists() and not (run / "eval_valid.json").exists()
