"""Alignment models, registered by name (``mmea train --model NAME``)."""

from mmea_pyg.models.base import MODELS, AlignmentModel, build_model, register_model
from mmea_pyg.models.clamea import CLAMEA

__all__ = ["MODELS", "AlignmentModel", "CLAMEA", "build_model", "register_model"]
