"""The stale-row note of the benchmark reports (benchmarks/run_bench.py)."""

from __future__ import annotations

import sys
from dataclasses import asdict
from pathlib import Path

import pytest

from mmea_pyg.config import Config
from mmea_pyg.presets import preset_path


@pytest.fixture
def stale_preset_note(monkeypatch):
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1] / "benchmarks"))
    sys.modules.pop("run_bench", None)
    from run_bench import stale_preset_note

    return stale_preset_note


def test_stale_note_names_model_and_pseudo_seed_settings_a_row_differs_in(stale_preset_note):
    today = asdict(Config.load(preset_path("clamea")))
    assert stale_preset_note([today], "clamea", "make bench") == []
    old = {**today, "model": {**today["model"], "dim": 100}}
    old["train"] = {k: v for k, v in today["train"].items() if k != "pseudo_sinkhorn"}  # saved before it
    old["train"]["seed"] = 2  # a setting benchmarks vary on purpose: never stale
    (line, _) = stale_preset_note([today, old], "clamea", "make bench")
    assert "`model.dim` = 100, 256 (now 256)" in line
    assert "`train.pseudo_sinkhorn` = 0.0, 0.5 (now 0.5)" in line
    assert "train.seed" not in line and "Rerun `make bench`" in line
    assert stale_preset_note([old], "no-such-preset", "make bench") == []
