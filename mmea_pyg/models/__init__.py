"""Alignment models, registered by name (``mmea train --model NAME``)."""

from mmea_pyg.models.base import MODELS, AlignmentModel, build_model, register_model
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
