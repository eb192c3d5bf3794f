"""The ``mmea`` command line (installed as ``mmea_pyg.cli``)."""

from mmea_pyg.cli.main import main

__all__ = ["main"]
