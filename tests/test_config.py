"""Config values from YAML files and ``--set``: types, coercion and errors that name the key."""

import pytest

from mmea_pyg.config import Config
from mmea_pyg.errors import ConfigError


def test_exponent_floats_are_floats_from_set_and_from_files(tmp_path):
    # PyYAML reads YAML 1.1, where ``1e-3`` (no dot) is a string; a float field still takes it.
    assert Config().override(["train.lr=1e-3"]).train.lr == pytest.approx(1e-3)
    assert Config().override(["train.lr=5E-4", "train.temperature=1"]).train.temperature == 1.0
    path = tmp_path / "c.yaml"
    path.write_text("train:\n  lr: 2e-3\n")
    assert Config.load(path).train.lr == pytest.approx(2e-3)


@pytest.mark.parametrize("value", ["fast", "1e-3x", "true"])
def test_a_value_that_is_no_float_names_the_key(value):
    with pytest.raises(ConfigError, match=r"train\.lr: expected float"):
        Config().override([f"train.lr={value}"])


def test_the_published_ablation_rows_name_every_table2_switch():
    from mmea_pyg.config import ABLATIONS
    from mmea_pyg.data.registry import DATASETS

    for card in DATASETS.values():
        assert set(card.paper_ablations) == set(ABLATIONS), card.name
        assert all(set(row) == {"hits@1", "hits@10", "mrr"} for row in card.paper_ablations.values())
        # Table 2 of the paper: every switch costs the full model some Hits@1.
        assert all(row["hits@1"] < card.paper["hits@1"] for row in card.paper_ablations.values())
