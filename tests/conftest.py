"""Shared fixtures: the tiny MMKG files of tests/fixtures/mmkg and the real mirror for integration tests."""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import pytest
import torch

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "mmkg"
REPO = Path(__file__).resolve().parents[1]


def real_mirror() -> Path | None:
    """The offline MMKG mirror: ``MMEA_MIRROR`` if it is a folder, else ``../shared/mmkg`` beside the repo."""
    env = os.environ.get("MMEA_MIRROR")
    for candidate in (env, REPO.parent / "shared" / "mmkg"):
        if candidate and Path(candidate).is_dir():
            return Path(candidate).resolve()
    return None


@pytest.fixture
def data_root(tmp_path: Path) -> Path:
    """A data root whose ``mmkg/`` folder holds the tiny fixture files (as if already downloaded)."""
    root = tmp_path / "data"
    shutil.copytree(FIXTURES, root / "mmkg")
    return root


@pytest.fixture
def fixture_mirror(tmp_path: Path) -> Path:
    """The tiny fixture files as a mirror folder, with a ``SHA256SUMS`` that governs verification."""
    mirror = tmp_path / "mirror"
    shutil.copytree(FIXTURES, mirror)
    lines = []
    for path in sorted(p for p in mirror.rglob("*") if p.is_file()):
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        lines.append(f"{digest}  {path.relative_to(mirror).as_posix()}\n")
    (mirror / "SHA256SUMS").write_text("".join(lines))
    return mirror


@pytest.fixture(scope="session")
def mmkg_mirror() -> Path:
    mirror = real_mirror()
    if mirror is None:
        pytest.skip("no MMKG mirror: set MMEA_MIRROR to a folder with the mmkb files")
    return mirror


def seeded_model(data, *sets: str):
    """``build_model`` on ``data`` from the default config with ``--set`` style ``sets``, after
    ``torch.manual_seed(0)`` (the same initial weights in every call)."""
    import torch

    from mmea_pyg.config import Config
    from mmea_pyg.models import build_model

    torch.manual_seed(0)
    return build_model(Config().override(list(sets)), data)


def assert_reset_reinitialises(module, run=None) -> None:
    """Fill every parameter with a constant, call ``reset_parameters()`` and check each one changed and
    (with ``run``) that the module still gives finite output."""
    import torch

    with torch.no_grad():
        for p in module.parameters():
            p.fill_(0.123)
    module.reset_parameters()
    for name, p in module.named_parameters():
        assert not torch.all(p == 0.123), name
    if run is not None:
        assert torch.isfinite(run()).all()


def assert_all_params_get_grad(module: torch.nn.Module) -> None:
    """Every parameter of ``module`` has a finite, non-zero gradient."""
    for name, param in module.named_parameters():
        assert param.grad is not None, name
        assert torch.isfinite(param.grad).all(), name
        assert param.grad.abs().sum() > 0, name


def dense_gcn_operator(edge_index: torch.Tensor, n: int) -> torch.Tensor:
    """D^-1/2 (A + I) D^-1/2 of the undirected, unweighted graph, by hand (dense)."""
    adjacency = torch.zeros(n, n)
    for h, t in edge_index.t().tolist():
        if h != t:
            adjacency[h, t] = adjacency[t, h] = 1.0
    adjacency += torch.eye(n)
    inv_sqrt = adjacency.sum(1).pow(-0.5)
    return inv_sqrt[:, None] * adjacency * inv_sqrt[None, :]


#: A graph for the GCN operator and encoder tests: duplicate (0->1 twice), reverse (1->0) and self loop (2->2) edges; node 4 is isolated.
GCN_EDGES = torch.tensor([[0, 0, 1, 2, 2, 3], [1, 1, 0, 2, 3, 1]])
