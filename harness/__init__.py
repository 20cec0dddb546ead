"""Evaluate small, large and hybrid language models on Amazon customer reviews.

The names below are the stable surface for plugin authors: everything a
plugin needs is importable from `harness` itself, and importing it stays light
(no torch, no transformers).
"""

from harness.board_flags import board_from_options, board_options
from harness.boards import Board, ModelEntry
from harness.errors import HarnessError
from harness.hookspecs import hookimpl
from harness.metrics import NO_LABEL, Metric, RegisteredMetrics, predictions, task_report
from harness.options import Option, OptionError, OptionSet
from harness.registry import ContractError, Register
from harness.run_settings import ProgressSink, RunSettings
from harness.types import (
    SEED_COMPONENTS,
    Backend,
    BackendFactory,
    BatchStats,
    ChoosesBatchSize,
    ChoosesForWorkload,
    DistributesModels,
    Example,
    Exporter,
    FitsTrainSplit,
    IssueLog,
    KnowsFittedFingerprint,
    LearnsToRoute,
    LoadIssue,
    MeasuresRawText,
    Model,
    ModelContext,
    ModelFactory,
    ModelOutput,
    NamesCheckpoints,
    ReportsRunStats,
    Review,
    Router,
    RouterFactory,
    RunInfo,
    Source,
    SourceOptions,
    Splits,
    SummarisesRawText,
    Task,
    TaskFactory,
)

__version__ = "0.1.0"

__all__ = [
    "Backend",
    "BackendFactory",
    "BatchStats",
    "Board",
    "ChoosesBatchSize",
    "ChoosesForWorkload",
    "ContractError",
    "DistributesModels",
    "Example",
    "Exporter",
    "FitsTrainSplit",
    "HarnessError",
    "IssueLog",
    "KnowsFittedFingerprint",
    "LearnsToRoute",
    "LoadIssue",
    "MeasuresRawText",
    "Metric",
    "Model",
    "ModelContext",
    "ModelEntry",
    "ModelFactory",
    "ModelOutput",
    "NO_LABEL",
    "NamesCheckpoints",
    "Option",
    "OptionError",
    "OptionSet",
    "ProgressSink",
    "Register",
    "RegisteredMetrics",
    "ReportsRunStats",
    "Review",
    "Router",
    "RouterFactory",
    "RunInfo",
    "RunSettings",
    "SEED_COMPONENTS",
    "Source",
    "SourceOptions",
    "Splits",
    "SummarisesRawText",
    "Task",
    "TaskFactory",
    "board_from_options",
    "board_options",
    "hookimpl",
    "predictions",
    "task_report",
]
