import json
import math
from pathlib import Path

import pytest
import torch

from mmea_pyg.config import Config
from mmea_pyg.data.synthetic import toy_alignment
from mmea_pyg.errors import ConfigError
from mmea_pyg.presets import preset_names, preset_path
from mmea_pyg.training.checkpoint import CheckpointError, load_checkpoint, load_model
from mmea_pyg.training.iterative import propose_pseudo_seeds, unaligned_candidates
from mmea_pyg.training.trainer import Trainer, TrainingDivergedError, loss_weights

FAST = ["train.device=cpu", "train.transe_batch_size=500", "train.pair_batch_size=64", "train.eval_every=5"]


@pytest.fixture(scope="module")
def data():
    # Attribute features are weak (noise 2.0): alignment must be learnt from seeds and structure.
    return toy_alignment(
        num_entities=200, avg_degree=8, attr_dim=16, img_dim=8, noise=2.0, train_ratio=0.3, seed=0
    )


def config(tmp_path: Path, *sets: str) -> Config:
    return Config().override([*FAST, f"out={tmp_path / 'run'}", *sets])


def test_training_beats_an_untrained_model(data, tmp_path):
    trainer = Trainer(
        config(
            tmp_path,
            "train.epochs=40",
            "train.steps_per_epoch=5",
            "train.lr=0.005",
            "train.iterative_start=20",
            "train.iterative_every=10",
        ),
        data,
        progress=False,
        log_stream=open("/dev/null", "w"),
    )
    before = trainer.evaluate(trainer.valid_pairs)["hits@1"]
    state = trainer.fit()
    assert state.best_valid_mrr > 0
    # The paper's settings (TransE rows, MSNEA loss) on noisy features: the alignment comes from the
    # attribute and image blocks. Observed 0.10 -> best 0.35 (with CMAE's earlier target-query reading,
    # which writes their content into the TransE block too, 0.05 -> 0.90; docs/clamea.md).
    best = max(row["valid"]["hits@1"] for row in state.history)
    assert best >= before + 0.2, (before, state.history)
    lines = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in lines] == [5, 10, 15, 20, 25, 30, 35, 40]
    assert {"mcl", "transe", "total"} <= set(lines[-1]["loss"]) and "mrr" in lines[-1]["valid"]
    assert lines[-1]["pseudo_seeds"] > 0


#: The anchored inductive GAT encoder (gat-attr + anchors), with pseudo seeds as anchors (state that changes in training).
ANCHORED = [
    "model.structure=gat-attr",
    "model.anchors=true",
    "model.anchor_pseudo=true",
    "model.relation_context=true",
    "train.contrastive=infonce",
]


@pytest.mark.parametrize("extra", [[], ANCHORED], ids=["transe", "anchored-gat"])
def test_checkpoints_carry_config_seed_and_resume_exactly(data, tmp_path, extra):
    cfg = config(
        tmp_path,
        "train.epochs=10",
        "train.seed=7",
        "train.iterative_start=5",
        "train.iterative_every=5",
        *extra,
    )
    full = Trainer(cfg, data, progress=False, log_stream=open("/dev/null", "w"))
    full.fit()
    last = load_checkpoint(tmp_path / "run" / "last.pt")
    assert last["seed"] == 7 and last["epoch"] == 10 and last["config"]["train"]["seed"] == 7
    assert (tmp_path / "run" / "config.yaml").exists() and (tmp_path / "run" / "best.pt").exists()

    # Interrupted after epoch 5, then resumed: the same parameters as the uninterrupted run.
    cfg5 = config(
        tmp_path / "b",
        "train.epochs=10",
        "train.seed=7",
        "train.iterative_start=5",
        "train.iterative_every=5",
        *extra,
    )
    part = Trainer(cfg5, data, progress=False, log_stream=open("/dev/null", "w"))
    part.config.train.epochs = 5
    part.fit()
    part.config.train.epochs = 10
    resumed = Trainer(cfg5, data, progress=False, log_stream=open("/dev/null", "w"))
    resumed.resume()
    assert resumed.state.epoch == 5
    resumed.fit()
    for (name, a), (_, b) in zip(
        full.model.state_dict().items(), resumed.model.state_dict().items(), strict=True
    ):
        torch.testing.assert_close(a, b, msg=name)


def test_resume_refuses_a_different_config(data, tmp_path):
    Trainer(config(tmp_path, "train.epochs=5"), data, progress=False, log_stream=open("/dev/null", "w")).fit()
    other = Trainer(config(tmp_path, "train.epochs=5", "train.lr=0.01"), data, progress=False)
    with pytest.raises(CheckpointError, match="different config"):
        other.resume()


def test_nan_guard_stops_and_keeps_last_good_checkpoint(data, tmp_path):
    trainer = Trainer(
        config(tmp_path, "train.epochs=10"), data, progress=False, log_stream=open("/dev/null", "w")
    )
    trainer.config.train.epochs = 5
    trainer.fit()
    good = load_checkpoint(tmp_path / "run" / "last.pt")
    trainer.config.train.epochs = 10
    with torch.no_grad():
        trainer.model.knowledge.project["a"].missing.fill_(math.nan)
    with pytest.raises(TrainingDivergedError, match="non-finite.*grad_clip"):
        trainer.fit()
    after = load_checkpoint(tmp_path / "run" / "last.pt")
    assert after["epoch"] == good["epoch"] == 5


def test_nan_guard_before_any_checkpoint_names_none(data, tmp_path):
    trainer = Trainer(
        config(tmp_path, "train.epochs=2"), data, progress=False, log_stream=open("/dev/null", "w")
    )
    with torch.no_grad():
        trainer.model.knowledge.project["a"].missing.fill_(math.nan)
    with pytest.raises(TrainingDivergedError, match="no checkpoint was written yet") as info:
        trainer.fit()
    assert "last.pt" not in str(info.value) and not (tmp_path / "run" / "last.pt").exists()


def test_load_model_and_bad_checkpoint(data, tmp_path):
    Trainer(config(tmp_path, "train.epochs=5"), data, progress=False, log_stream=open("/dev/null", "w")).fit()
    model, cfg, checkpoint = load_model(tmp_path / "run" / "best.pt", data, device="cpu")
    assert cfg.train.epochs == 5 and checkpoint["epoch"] == 5 and not model.training
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="not a readable checkpoint"):
        load_checkpoint(bad)
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "missing.pt")


def test_loss_weights_follow_eq_28_and_ablations():
    weights = loss_weights(Config())
    expected = {
        "transe": 1.0,
        "vae": 1.0,
        "m": 0.01,
        "s": 0.01,
        "mcl": 1.0,
        "pseudo": 0.1,
        "ot": 1.0,
        "kl": 0.01,
    }
    assert weights == expected
    ablated = loss_weights(Config().override(["model.ablations=['w/o L_m', 'w/o L_s']"]))
    assert ablated["m"] == 0.0 and ablated["s"] == 0.0


def test_pseudo_seeds_are_mutual_and_exclude_training_entities(data, tmp_path):
    trainer = Trainer(config(tmp_path), data, progress=False)
    train_pairs = trainer.train_pairs
    pseudo = propose_pseudo_seeds(trainer.model, trainer.data, train_pairs)
    src_c, tgt_c = unaligned_candidates(trainer.data, train_pairs)
    assert set(pseudo[0].tolist()) <= set(src_c.tolist()) and set(pseudo[1].tolist()) <= set(tgt_c.tolist())
    assert len(set(pseudo[0].tolist())) == pseudo.size(1) == len(set(pseudo[1].tolist()))
    assert trainer.model.training  # restored


def test_iterative_schedule(data, tmp_path):
    trainer = Trainer(config(tmp_path, "train.iterative_epochs=[3, 7]"), data, progress=False)
    assert [e for e in range(1, 10) if trainer._iterative_due(e)] == [3, 7]
    off = Trainer(config(tmp_path, "model.ablations=['w/o IT']"), data, progress=False)
    assert not any(off._iterative_due(e) for e in range(1, 100))


@pytest.mark.parametrize("name", preset_names())
def test_shipped_presets_load_and_build(data, name):
    cfg = Config.load(name)
    assert Config.load(preset_path(name)) == cfg  # by name or by file
    model = Trainer(cfg.override(["train.device=cpu", "out=unused"]), data, progress=False).model
    assert model.output_dim > 0


def test_presets_cover_every_model_and_unknown_names_fail():
    assert {"clamea", "ricea", "mimea", "paper"} <= set(preset_names())
    for model in ("clamea", "ricea", "mimea"):
        assert Config.recommended(model).model.name == model
    assert Config.load("paper").model.structure == "transe"  # the paper's literal settings
    with pytest.raises(ConfigError, match="neither a file nor a preset"):
        Config.load("no-such-preset")
    with pytest.raises(ConfigError, match="unknown model"):
        Config.recommended("nope")


def test_a_fresh_run_starts_a_new_metrics_log_and_a_resumed_one_appends(data, tmp_path):
    cfg = config(tmp_path, "train.epochs=5")
    for _ in range(2):
        Trainer(cfg, data, progress=False, log_stream=open("/dev/null", "w")).fit()
    log = tmp_path / "run" / "metrics.jsonl"
    assert [json.loads(x)["epoch"] for x in log.read_text().splitlines()] == [5]
    cfg.train.epochs = 10
    resumed = Trainer(cfg, data, progress=False, log_stream=open("/dev/null", "w"))
    resumed.resume()
    resumed.fit()
    assert [json.loads(x)["epoch"] for x in log.read_text().splitlines()] == [5, 10]


class _FixedEmbedding(torch.nn.Module):
    """A model stand-in whose embeddings are given: what propose_pseudo_seeds reads of a model."""

    def __init__(self, source: torch.Tensor, target: torch.Tensor) -> None:
        super().__init__()
        self.vectors = {"source": source, "target": target}

    def embed(self, data, side, index, chunk_size):
        return self.vectors[side][index]


def test_pseudo_seed_passes_pair_twins_one_to_one_and_nothing_else():
    from torch_geometric.data import HeteroData

    data = HeteroData()
    data["source"].num_nodes, data["target"].num_nodes = 6, 6
    train = torch.tensor([[4], [4]])  # a training pair: never a candidate
    # Sources 0 and 1 are twins (one vector), as are targets 0 and 1; 2 and 3 are plainly matched.
    # Source 5's best candidates (targets 0 and 1) are taken by the twins; target 5 prefers source 5.
    source = torch.tensor(
        [[1.0, 0, 0], [1.0, 0, 0], [0, 1.0, 0], [0, 0, 1.0], [1.0, 1.0, 1.0], [0.9, 0.1, 0]]
    )
    target = torch.tensor(
        [[1.0, 0, 0], [1.0, 0, 0], [0, 1.0, 0.1], [0, 0.1, 1.0], [1.0, 1.0, 1.0], [0.5, 0.5, 0.5]]
    )
    model = _FixedEmbedding(source, target)

    def found(passes):
        pairs = propose_pseudo_seeds(model, data, train, passes=passes)
        return sorted(map(tuple, pairs.t().tolist()))

    assert found(1) == [(0, 0), (2, 2), (3, 3)]  # one of the twins: ties go to the lowest index
    # The other twin in the second pass. Sources 5 and target 5 are mutual in the third, but neither
    # ties at its best with the other: source 5 was outscored, not tied, so it stays unpaired.
    assert found(2) == found(8) == [(0, 0), (1, 1), (2, 2), (3, 3)]
    with pytest.raises(ValueError, match="passes"):
        propose_pseudo_seeds(model, data, train, passes=0)
