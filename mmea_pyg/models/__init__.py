"""Alignment models, registered by name (``mmea train --model NAME``)."""

from torch_geometric.data import HeteroData

from mmea_pyg.errors import ConfigError
from mmea_pyg.models.base import MODELS, AlignmentModel, register_model
from mmea_pyg.models.clamea import CLAMEA
from mmea_pyg.models.knowledge import KnowledgeEncoder
from mmea_pyg.models.lightea import LightEA
from mmea_pyg.models.mimea import MIMEA
from mmea_pyg.models.ricea import RICEA

__all__ = [
    "CLAMEA",
    "MIMEA",
    "MODELS",
    "RICEA",
    "AlignmentModel",
    "KnowledgeEncoder",
    "LightEA",
    "build_model",
    "register_model",
]


def build_model(config, data: HeteroData) -> AlignmentModel:
    """Build the model named by ``config.model.name`` for the graphs of ``data`` (every model of the
    package is registered once this package is imported)."""
    name = config.model.name.lower()
    if name not in MODELS:
        raise ConfigError(f"unknown model {config.model.name!r}; known models: {', '.join(sorted(MODELS))}")
    return MODELS[name].from_config(config, data)
