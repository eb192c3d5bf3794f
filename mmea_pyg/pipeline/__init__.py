r"""The library pipeline: build a run's config, load its data, train, select on validation, evaluate
on test, and return a :class:`~mmea_pyg.results.RunResult` that saves and loads itself as JSON.

Every entry point goes through these functions: ``mmea train`` / ``mmea eval`` / ``mmea report`` /
``mmea align``, ``make bench``, ``make compare``, ``make ablation`` and ``make bench-align`` are thin
layers over them, and a notebook needs nothing else::

    from mmea_pyg import pipeline

    result = pipeline.run("fb15k-db15k", model="clamea", overrides=["train.epochs=20"])
    result.metrics("test")["hits@1"]          # the model's own embedding, source -> target
    result.metrics("test", "csls")["hits@1"]  # CSLS re-scored
    result.save("run.json"); pipeline.RunResult.load("run.json")
    result.report("report/")                  # PNG plots + report.md
    aligned = pipeline.align("../shared/ea/jape/SRPRS_EN_DE_15K_V1", out="runs/srprs")
    aligned.pairs[:3], aligned.metrics["alignment"]["f1"]

Model selection uses the validation pairs only (the best validation MRR, :class:`~mmea_pyg.training.
trainer.Trainer`); the test pairs are evaluated once, with the selected checkpoint. The "+ propagation"
add-on (:class:`~mmea_pyg.addons.propagation.LightEAPropagation`) is not part of any model; when asked
for, it is a separate evaluation of the same checkpoint, named as such.

The package's rooms: :mod:`~mmea_pyg.pipeline.inputs` (config and data), :mod:`~mmea_pyg.pipeline.fit`
(training runs), :mod:`~mmea_pyg.pipeline.evaluate` (evaluation, diagnostics, checkpoints) and
:mod:`~mmea_pyg.pipeline.align` (alignment). The records are :mod:`mmea_pyg.results`, the run folders
and machine records :mod:`mmea_pyg.runs`; both are re-exported here under the names they always had.
"""

from mmea_pyg.data.splits import SPLITS, pairs_of
from mmea_pyg.pipeline.align import align, align_model
from mmea_pyg.pipeline.evaluate import (
    check_propagation,
    diagnostics,
    entity_modalities,
    evaluate_checkpoint,
    evaluate_model,
)
from mmea_pyg.pipeline.fit import refit, run, train, train_and_load
from mmea_pyg.pipeline.inputs import default_ratio, load_dataset, make_config
from mmea_pyg.results import (
    ALIGNMENT_JSON,
    ALIGNMENT_TSV,
    CANDIDATES_TSV,
    MODEL,
    PROPAGATION,
    RESULT_NAME,
    AlignmentResult,
    CheckpointEvaluation,
    Evaluation,
    MalformedResultError,
    RunResult,
)
from mmea_pyg.runs import (
    LATEST,
    RUNS,
    check_run_folder,
    command_line,
    default_out,
    describe_machine,
    latest_run,
    machine_info,
    mark_latest,
    peak_memory,
)

#: The name this reading had before it moved to :mod:`mmea_pyg.data.splits` (kept for notebooks).
split_pairs = pairs_of

__all__ = [
    "ALIGNMENT_JSON",
    "ALIGNMENT_TSV",
    "CANDIDATES_TSV",
    "LATEST",
    "MODEL",
    "PROPAGATION",
    "RESULT_NAME",
    "RUNS",
    "SPLITS",
    "AlignmentResult",
    "CheckpointEvaluation",
    "Evaluation",
    "MalformedResultError",
    "RunResult",
    "align",
    "align_model",
    "check_propagation",
    "check_run_folder",
    "command_line",
    "default_out",
    "default_ratio",
    "describe_machine",
    "diagnostics",
    "entity_modalities",
    "evaluate_checkpoint",
    "evaluate_model",
    "latest_run",
    "load_dataset",
    "machine_info",
    "make_config",
    "mark_latest",
    "peak_memory",
    "refit",
    "run",
    "pairs_of",
    "split_pairs",
    "train",
    "train_and_load",
]
