"""Named configurations shipped with the package: ``mmea train --config NAME`` (or
:meth:`mmea_pyg.config.Config.load`) accepts a preset name where it accepts a YAML file.

* ``paper``: CLAMEA's literal hyperparameters (App. F) with TMEA's 300-epoch schedule.

Without ``--config`` the defaults of :mod:`mmea_pyg.config` apply: the best configuration validated on
FB15K-DB15K (``docs/clamea.md``).
"""

from __future__ import annotations

from pathlib import Path

#: Folder of the preset YAML files.
PRESET_DIR = Path(__file__).parent


def preset_names() -> list[str]:
    """The names of the shipped presets."""
    return sorted(p.stem for p in PRESET_DIR.glob("*.yaml"))


def preset_path(name: str) -> Path | None:
    """The YAML file of preset ``name``, or :obj:`None` if there is none of that name."""
    path = PRESET_DIR / f"{name}.yaml"
    return path if name in preset_names() else None
