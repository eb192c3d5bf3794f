"""Bounded memory where the cost is quadratic: every all-pairs step on a graph whose dense N x N score
matrix would not fit under the ceiling.

Each case runs in a fresh Python process and reports how far its resident set rose during the step:
the kernel's high-water mark (``VmHWM``, reset just before the step through ``/proc/self/clear_refs``;
what the allocator took from the system, not a timer) over the resident set at that moment. With N = 40,000 entities per side a dense float32
N x N matrix is 6.0 GiB; the ceiling is 1 GiB.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self")

N = 40_000
#: Growth of the peak RSS allowed for one step (bytes); a dense N x N float32 matrix is 4 N^2 bytes.
CEILING = 1 << 30
DENSE = 4 * N * N

PRELUDE = f"""
import json, torch
torch.manual_seed(0)
torch.set_num_threads(2)
N = {N}
src = torch.randn(N, 32)
tgt = src + 0.1 * torch.randn(N, 32)
ids = torch.arange(N)
def status(field):
    for line in open("/proc/self/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
def start():
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # the high-water mark starts again from the current resident set
    return status("VmRSS")
def peak():
    return status("VmHWM")
"""

CASES = {
    "top_k_search": """
from mmea_pyg.similarity import top_k_search
before = start()
values, index = top_k_search(src, tgt, 10, chunk_size=512)
assert index.shape == (N, 10)
""",
    "sparse_sinkhorn": """
from mmea_pyg.similarity import sinkhorn_top_k
before = start()
probs, index = sinkhorn_top_k(src, tgt, 50, chunk_size=512)
assert probs.shape == (N, 50)
""",
    "csls_ranks": """
from mmea_pyg.evaluation import rank_pairs
before = start()
ranks = rank_pairs(src, tgt, torch.stack([ids, ids]), csls_k=10, chunk_size=512)
assert ranks["s2t"].shape == (N,)
""",
    "pseudo_seeds": """
from mmea_pyg.similarity import mutual_nearest_neighbours
before = start()
pairs = mutual_nearest_neighbours(src, tgt, ids, ids, chunk_size=512, csls_k=10)
assert pairs.size(0) == 2 and pairs.size(1) > N // 2
""",
    "training_step": """
from mmea_pyg.config import Config
from mmea_pyg.data.synthetic import toy_alignment
from mmea_pyg.training.trainer import Trainer
import os, tempfile
data = toy_alignment(num_entities=N, avg_degree=4, attr_dim=8, img_dim=0, train_ratio=0.3, seed=0)
config = Config().override(["train.device=cpu", "train.steps_per_epoch=1", "eval.chunk_size=512",
                            f"out={tempfile.mkdtemp()}/run"])
trainer = Trainer(config, data, progress=False, log_stream=open(os.devnull, "w"))
before = start()
losses = trainer.train_epoch()
assert "total" in losses
""",
}


def _growth(case: str) -> int:
    code = PRELUDE + textwrap.dedent(CASES[case]) + "\nprint(json.dumps(peak() - before))\n"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    return int(out.stdout.strip().splitlines()[-1])


@pytest.mark.slow
@pytest.mark.parametrize("case", sorted(CASES))
def test_an_all_pairs_step_stays_under_the_ceiling(case: str) -> None:
    assert DENSE > 5 * CEILING  # the dense matrix could not hide under the ceiling
    growth = _growth(case)
    assert growth < CEILING, (
        f"{case}: peak RSS grew by {growth / 2**30:.2f} GiB (ceiling {CEILING / 2**30:.0f} GiB)"
    )
