"""The PyG behaviour :class:`~mmea_pyg.data.base.SafeInMemoryDataset` relies on where it overrides or
uses a private part of PyG (``Dataset._download``, ``Dataset._process``, ``_repr``, ``files_exist``, the
``_data`` / ``slices`` of an ``InMemoryDataset``): if a PyG release changes one of them, a test here
fails before a dataset silently stops waiting for downloads, reading safely or loading its graph."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch_geometric.data import HeteroData, InMemoryDataset
from torch_geometric.data.dataset import _repr, files_exist

from mmea_pyg.data.base import SIDES, SafeInMemoryDataset


def _graph() -> HeteroData:
    data = HeteroData()
    for side in SIDES:
        data[side].num_nodes = 3
    data["source", "aligned", "target"].edge_index = torch.tensor([[0, 1], [1, 2]])
    return data


class _Recorder(InMemoryDataset):
    """Records which of PyG's private hooks its ``__init__`` calls, and in which order."""

    def __init__(self, root: str, calls: list[str]) -> None:
        self.calls = calls
        super().__init__(root, log=False)

    @property
    def raw_file_names(self) -> list[str]:
        return ["raw.txt"]

    @property
    def processed_file_names(self) -> list[str]:
        return ["data.pt"]

    def _download(self) -> None:
        self.calls.append("_download")
        super()._download()

    def download(self) -> None:
        self.calls.append("download")
        Path(self.raw_paths[0]).write_text("raw\n")

    def _process(self) -> None:
        self.calls.append("_process")

    def process(self) -> None:  # pragma: no cover - _process above does not call it
        pass


def test_pyg_dataset_init_calls_the_private_download_then_process_hooks(tmp_path: Path) -> None:
    # MMKGDataset._download waits for another process's download before PyG's; GraphPairDataset's creates
    # nothing; SafeInMemoryDataset._process replaces PyG's. All three rely on __init__ calling them.
    calls: list[str] = []
    _Recorder(str(tmp_path), calls)
    assert calls == ["_download", "download", "_process"]
    calls.clear()
    _Recorder(str(tmp_path), calls)  # the raw file exists: PyG's _download does not call download()
    assert calls == ["_download", "_process"]


def test_pyg_repr_and_files_exist() -> None:
    # SafeInMemoryDataset._process writes and compares pre_transform.pt / pre_filter.pt as PyG does.
    assert _repr(None) == "None"

    class Transform:
        def __repr__(self) -> str:
            return "<my.Transform object at 0x7f00deadbeef>"

    assert _repr(Transform()) == "<my.Transform>"
    assert not files_exist([])  # no processed file names: processed on every instantiation


def test_pyg_files_exist_checks_every_path(tmp_path: Path) -> None:
    present = tmp_path / "a.pt"
    present.write_bytes(b"")
    assert files_exist([str(present)])
    assert not files_exist([str(present), str(tmp_path / "missing.pt")])


def test_save_graph_writes_what_pyg_save_writes_and_the_private_attributes_load_it(tmp_path: Path) -> None:
    # save_graph keeps the format of InMemoryDataset.save; _load_processed sets _data / slices /
    # _data_list as InMemoryDataset.load does (which would unpickle with weights_only=False).
    class Tiny(SafeInMemoryDataset):
        def __init__(self, root: str) -> None:
            super().__init__(root, log=False)
            self._load_processed()

        @property
        def raw_file_names(self) -> list[str]:
            return []

        @property
        def processed_file_names(self) -> list[str]:
            return ["graph.pt"]

        def process(self) -> None:
            self.save_graph(_graph())

    dataset = Tiny(str(tmp_path / "ours"))
    ours = torch.load(dataset.processed_paths[0], weights_only=True)
    pyg = tmp_path / "pyg.pt"
    InMemoryDataset.save([_graph()], str(pyg))
    theirs = torch.load(pyg, weights_only=True)
    assert ours[2] is theirs[2] is HeteroData
    assert ours[1] == theirs[1]
    assert HeteroData.from_dict(ours[0]).to_dict().keys() == HeteroData.from_dict(theirs[0]).to_dict().keys()
    assert len(dataset) == 1
    graph = dataset[0]
    assert torch.equal(graph["source", "aligned", "target"].edge_index, torch.tensor([[0, 1], [1, 2]]))
    assert graph["target"].num_nodes == 3


@pytest.mark.parametrize("name", ["pre_transform.pt", "pre_filter.pt"])
def test_process_writes_the_pyg_files_pyg_reads(tmp_path: Path, name: str) -> None:
    class Tiny(SafeInMemoryDataset):
        @property
        def raw_file_names(self) -> list[str]:
            return []

        @property
        def processed_file_names(self) -> list[str]:
            return ["graph.pt"]

        def process(self) -> None:
            self.save_graph(_graph())

    dataset = Tiny(str(tmp_path), log=False)
    assert torch.load(Path(dataset.processed_dir) / name, weights_only=True) == _repr(None)
