"""mmea-pyg: multimodal entity alignment on PyTorch Geometric."""

__version__ = "0.1.0"
