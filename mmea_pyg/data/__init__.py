"""MMKG benchmarks as PyG datasets: download, parse, build, split.

The dataset classes are imported lazily, so that ``mmea download`` does not pay for importing PyG.
"""

from typing import Any

__all__ = ["FB15KDB15K", "FB15KYAGO15K", "MMKGDataset"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from mmea_pyg.data import dataset

        return getattr(dataset, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
