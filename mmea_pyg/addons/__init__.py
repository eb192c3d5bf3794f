"""Add-ons that are not part of any model, each with its own row in every benchmark table:
entity names (:mod:`mmea_pyg.addons.names`, ``mmea align --names``) and LightEA's propagated seed
labels appended at evaluation time (:mod:`mmea_pyg.addons.propagation`, ``mmea eval --propagation``)."""
