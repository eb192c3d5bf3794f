"""The training steps stay on the model's device: no host round trip inside a step (issue 20).

Within an epoch's steps (:meth:`~mmea_pyg.training.trainer.Trainer._steps`: forward, losses, backward,
optimiser step), the tensor methods that bring a value to the host (``.item()``, ``.tolist()``,
``.cpu()``, ``.numpy()``, ``bool`` / ``int`` / ``float`` of a tensor) raise when the package's own code
calls them, on the CPU always and on CUDA where a GPU is present (torch's own optimiser may read its CPU
step counter, which stays on the host by design). The losses and the finiteness of an epoch reach
the host once, after its steps.
"""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path

import pytest
import torch

from mmea_pyg.config import Config
from mmea_pyg.data.synthetic import toy_alignment
from mmea_pyg.presets import preset_path
from mmea_pyg.training.trainer import Trainer

#: The tensor methods that bring a value to the host (on CUDA each one waits for the device).
HOST_CALLS = ("item", "tolist", "cpu", "numpy", "__bool__", "__int__", "__float__", "__index__")


@pytest.fixture(scope="module")
def data():
    return toy_alignment(
        num_entities=160, avg_degree=6, attr_dim=8, img_dim=8, noise=2.0, train_ratio=0.3, seed=0
    )


def _trainer(data, tmp_path: Path, preset: str | None, device: str) -> Trainer:
    base = Config.load(preset_path(preset)) if preset else Config()
    cfg = base.override(
        [
            f"train.device={device}",
            "train.pair_batch_size=32",
            "train.transe_batch_size=256",
            "train.epochs=4",
            "train.eval_every=2",
            "train.iterative_start=2",
            "train.iterative_every=1",
            f"out={tmp_path / 'run'}",
        ]
    )
    return Trainer(cfg, data, progress=False, log_stream=open("/dev/null", "w"))


@contextlib.contextmanager
def no_host_calls_from_mmea_pyg():
    """Within the block, a :data:`HOST_CALLS` method called from a frame of ``mmea_pyg`` raises."""
    saved = {name: getattr(torch.Tensor, name) for name in HOST_CALLS}
    calls: list[str] = []

    def guard(name):
        original = saved[name]

        def method(self, *args, **kwargs):
            caller = sys._getframe(1)
            module = caller.f_globals.get("__name__", "")
            if module.startswith("mmea_pyg"):
                calls.append(f"Tensor.{name} from {module}:{caller.f_lineno}")
                raise AssertionError(calls[-1])
            return original(self, *args, **kwargs)

        return method

    for name in HOST_CALLS:
        setattr(torch.Tensor, name, guard(name))
    try:
        yield calls
    finally:
        for name, method in saved.items():
            setattr(torch.Tensor, name, method)


def _epoch_steps(trainer: Trainer) -> None:
    """One epoch's steps with pseudo seeds in play (the path of a real epoch after the first mining)."""
    from mmea_pyg.training.iterative import propose_pseudo_seeds

    trainer.pseudo_pairs = propose_pseudo_seeds(trainer.model, trainer.data, trainer.train_pairs)
    trainer.model.update_pseudo_seeds(trainer.pseudo_pairs)
    trainer.model.train()
    batches = trainer._pair_batches()
    pseudo = trainer._pseudo_batches([b.size(1) for b in batches])
    return batches, pseudo


#: MIMEA's optimal-transport term is left out: it selects each modality's rows and runs POT's Sinkhorn,
#: whose convergence test reads the error on the host (docs/distributed.md, "GPU").
SYNC_FREE = [None, "clamea", "ricea"]


@pytest.mark.parametrize("preset", SYNC_FREE)
def test_steps_make_no_host_call_on_cpu(data, tmp_path, preset):
    trainer = _trainer(data, tmp_path, preset, "cpu")
    batches, pseudo = _epoch_steps(trainer)
    before = [p.detach().clone() for p in trainer.model.parameters()]
    with no_host_calls_from_mmea_pyg() as calls:
        totals, finite = trainer._steps(batches, pseudo)
    assert not calls
    assert bool(finite) and "total" in totals and all(t.dim() == 0 for t in totals.values())
    assert any(not torch.equal(a, b) for a, b in zip(before, trainer.model.parameters(), strict=True))


def test_the_guard_catches_a_host_call(data, tmp_path):
    """The CPU guard is not vacuous: a step that reads its loss with ``.item()`` from a module of the
    package (as a logger inside the step would) is caught."""
    trainer = _trainer(data, tmp_path, "clamea", "cpu")
    batches, pseudo = _epoch_steps(trainer)
    scope = {"__name__": "mmea_pyg.probe"}
    exec("def read(terms):\n    return sum(terms.values()).item()\n", scope)
    step = trainer.step

    def reading_step(*args):
        terms = step(*args)
        scope["read"](terms)
        return terms

    trainer.step = reading_step
    with (
        no_host_calls_from_mmea_pyg() as calls,
        pytest.raises(AssertionError, match="Tensor.item from mmea_pyg.probe"),
    ):
        trainer._steps(batches, pseudo)
    assert calls


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("preset", SYNC_FREE)
def test_steps_stay_on_the_gpu(data, tmp_path, preset):
    """On CUDA: every parameter, loss and gradient of the epoch's steps is a CUDA tensor and no code of
    the package reads a value back. (Boolean-mask selections, the anchor hold-out and the hidden
    anchors, still wait for the device to learn their sizes: docs/distributed.md, "GPU".)"""
    trainer = _trainer(data, tmp_path, preset, "cuda")
    batches, pseudo = _epoch_steps(trainer)
    with no_host_calls_from_mmea_pyg() as calls:
        totals, finite = trainer._steps(batches, pseudo)
    assert not calls
    assert all(t.device.type == "cuda" for t in totals.values()) and finite.device.type == "cuda"
    assert all(p.device.type == "cuda" for p in trainer.model.parameters())
    assert bool(finite)
