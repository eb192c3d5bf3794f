"""The library pipeline and its result object, used as a notebook would, and `mmea report`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from mmea_pyg import pipeline
from mmea_pyg.data.synthetic import toy_alignment
from mmea_pyg.errors import ConfigError, MMEAError

FAST = [
    "train.epochs=6",
    "train.eval_every=3",
    "train.iterative_start=3",
    "train.iterative_every=3",
    "train.device=cpu",
    "train.pair_batch_size=32",
    "eval.propagation_dim=16",
    "eval.propagation_rounds=1",
]


@pytest.fixture(scope="module")
def toy():
    return toy_alignment(num_entities=80, seed=0)


@pytest.fixture(scope="module")
def result(toy, tmp_path_factory) -> pipeline.RunResult:
    out = tmp_path_factory.mktemp("pipeline") / "run"
    return pipeline.run(model="clamea", overrides=FAST, out=out, data=toy, progress=False, propagation=True)


def test_notebook_style_run_returns_metrics_per_split_and_embedding(result: pipeline.RunResult, toy):
    aligned = toy["source", "aligned", "target"]
    test = result.evaluation("test")
    assert test.pairs == int(aligned.test_mask.sum()) and result.evaluation("valid").pairs == int(
        aligned.valid_mask.sum()
    )
    cosine, csls = result.metrics("test"), result.metrics("test", "csls")
    assert {"hits@1", "hits@10", "mrr", "mr", "t2s/hits@1"} <= set(cosine) and "csls/hits@1" not in cosine
    assert csls["hits@1"] == test.metrics["csls/hits@1"]
    for metrics in (cosine, csls):
        assert 0.0 <= metrics["hits@1"] <= metrics["hits@10"] <= 1.0
    added = result.evaluation("test", "propagation")
    assert added.embedding == pipeline.PROPAGATION and added.pairs == test.pairs
    # What carries the run: seed, config, modalities, selection on validation, timings, memory, machine.
    assert result.seed == 0 and result.config["train"]["epochs"] == 6 and result.model == "clamea"
    assert result.modalities == ["v", "r", "a"]
    assert result.best_epoch in {h["epoch"] for h in result.history} and result.epochs == 6
    best = max(result.history, key=lambda h: h["valid"]["mrr"])
    assert best["epoch"] == result.best_epoch
    assert result.timings["train"] > 0 and result.timings["total"] >= result.timings["train"]
    assert result.peak_memory["rss_gib"] > 0 and result.machine["cores"] >= 1
    assert Path(result.checkpoints["best"]).exists() and Path(result.run_dir, pipeline.RESULT_NAME).exists()
    with pytest.raises(KeyError, match="no evaluation"):
        result.evaluation("train")


def test_result_saves_and_loads_itself_as_json(result: pipeline.RunResult, tmp_path: Path):
    path = result.save(tmp_path / "copy.json")
    json.loads(path.read_text())  # plain JSON
    loaded = pipeline.RunResult.load(path)
    assert loaded == result
    assert pipeline.RunResult.load(result.run_dir) == result  # a run folder works too
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(MMEAError, match="not valid JSON"):
        pipeline.RunResult.load(tmp_path / "bad.json")
    (tmp_path / "other.json").write_text('{"format": 99}')
    with pytest.raises(MMEAError, match="not an mmea-pyg run result"):
        pipeline.RunResult.load(tmp_path / "other.json")


def test_checkpoint_evaluation_reproduces_the_result(result: pipeline.RunResult, toy):
    again = pipeline.evaluate_checkpoint(result.checkpoints["best"], data=toy, device="cpu", progress=False)
    assert again.evaluation.metrics == result.evaluation("test").metrics
    assert again.epoch == result.best_epoch
    path = again.save()
    assert path.name == "eval_test.json" and json.loads(path.read_text())["embedding"] == "model"


def test_diagnostics_hold_score_and_modality_weight_histograms(result: pipeline.RunResult):
    scores = result.diagnostics["scores"]
    pairs = result.evaluation("test").pairs
    assert set(scores) == {"match", "random non-match", "hardest non-match"}
    assert all(sum(h["counts"]) == h["n"] == pairs for h in scores.values())
    # The hardest non-match is at least as similar as a random one.
    assert scores["hardest non-match"]["mean"] >= scores["random non-match"]["mean"]
    weights = result.diagnostics["modality_weights"]
    assert "Dsum ar: w_a" in weights and "Dsum ar: w_r" in weights
    for groups in weights.values():
        for hist in groups.values():
            assert 0.0 <= hist["mean"] <= 1.0 and sum(hist["counts"]) == hist["n"] > 0


@pytest.mark.parametrize("model", ["ricea", "mimea"])
def test_modality_weights_of_ricea_and_mimea_sum_to_one(model: str, toy):
    from mmea_pyg.models import build_model

    config = pipeline.make_config(model, overrides=["train.device=cpu"], out="unused")
    torch.manual_seed(0)
    net = build_model(config, toy).eval()
    weights = net.modality_weights(toy, "source")
    assert len(weights) == len(net.kept)
    total = sum(weights.values())
    assert torch.allclose(total, torch.ones_like(total), atol=1e-5)


def test_report_writes_plots_and_a_page_naming_them(result: pipeline.RunResult, tmp_path: Path):
    paths = result.report(tmp_path / "report")
    names = {p.name for p in paths}
    assert names == {
        "losses.png",
        "validation.png",
        "pseudo_seeds.png",
        "modality_weights.png",
        "scores.png",
        "report.md",
    }
    page = (tmp_path / "report" / "report.md").read_text()
    for path in paths:
        assert path.stat().st_size > 0
        if path.suffix == ".png":
            assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
            assert f"({path.name})" in page
    assert "model + LightEA propagation" in page and "hits@1" not in page.lower().split("|")[0]


def test_mmea_report_command(result: pipeline.RunResult, tmp_path: Path):
    from mmea_pyg.cli.main import cli

    out = tmp_path / "r"
    outcome = CliRunner().invoke(cli, ["report", result.run_dir, "--out", str(out)])
    assert outcome.exit_code == 0, outcome.output
    assert (out / "report.md").exists() and (out / "scores.png").stat().st_size > 0
    assert str(out / "report.md") in outcome.output


def test_make_config_layers_preset_options_and_overrides():
    config = pipeline.make_config("ricea", "fb15k-yago15k", overrides=["train.lr=0.5"], epochs=3, seed=4)
    assert config.model.name == "ricea" and config.data.dataset == "fb15k-yago15k"
    assert config.train.epochs == 3 and config.train.seed == 4 and config.train.lr == 0.5
    assert config.out == "runs/fb15k-yago15k_ricea_r0.2_s4"
    assert pipeline.make_config(ablations=["wo_v"]).model.ablations == ["w/o V"]
    with pytest.raises(ConfigError, match="unknown option"):
        pipeline.make_config(bogus=1)
