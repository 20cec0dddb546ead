"""Evaluate small, large and hybrid language models on Amazon customer reviews.

The names below are the stable surface for plugin authors: everything a
plugin needs is importable from `harness` itself, and importing it stays light
(no torch, no transformers): the names that run a board (`run_board`,
`preflight`, `Runner`, ...) load the runner, numpy and the prediction cache
when first used, for command and backend plugins that run models.
"""

import importlib
from typing import TYPE_CHECKING, Any

from harness.board_flags import board_from_options, board_options
from harness.boards import SEED_COMPONENTS, Board, ModelEntry
from harness.errors import HarnessError
from harness.hookspecs import hookimpl
from harness.metrics import NO_LABEL, RegisteredMetrics, predictions, task_report
from harness.options import Option, OptionError, OptionSet
from harness.plugin_manager import PluginHost, get_host
from harness.registry import ContractError, Register, Registries
from harness.run_settings import ProgressSink, RunSettings
from harness.split_source import BoardSplits, SplitSource, open_reviews
from harness.types import (
    DEFAULT_CLUSTER_COL,
    NO_CLUSTER,
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
    Metric,
    Model,
    ModelContext,
    ModelFactory,
    ModelOutput,
    NamesCheckpoints,
    ReportsRowStats,
    ResampledFn,
    Review,
    Router,
    RouterFactory,
    RowStats,
    RunInfo,
    Source,
    SourceOptions,
    Splits,
    StoredLookup,
    Task,
    TaskFactory,
)

if TYPE_CHECKING:
    from harness.preflight_checks import preflight
    from harness.run import run_board
    from harness.runner import Runner, Scored, build_model

__version__ = "0.1.0"

_LOADED_ON_USE = {
    "preflight": "harness.preflight_checks",
    "Runner": "harness.runner",
    "Scored": "harness.runner",
    "build_model": "harness.runner",
    "run_board": "harness.run",
}


def __getattr__(name: str) -> Any:
    """The running names, imported on first use so that `import harness` stays light."""
    if name not in _LOADED_ON_USE:
        raise AttributeError(f"module 'harness' has no attribute {name!r}")
    value = getattr(importlib.import_module(_LOADED_ON_USE[name]), name)
    globals()[name] = value
    return value


__all__ = [
    "Backend",
    "BackendFactory",
    "BatchStats",
    "Board",
    "BoardSplits",
    "ChoosesBatchSize",
    "ChoosesForWorkload",
    "ContractError",
    "DEFAULT_CLUSTER_COL",
    "DistributesModels",
    "Example",
    "Exporter",
    "FitsTrainSplit",
    "HarnessError",
    "IssueLog",
    "KnowsFittedFingerprint",
    "LearnsToRoute",
    "LoadIssue",
    "Metric",
    "Model",
    "ModelContext",
    "ModelEntry",
    "ModelFactory",
    "ModelOutput",
    "NO_CLUSTER",
    "NO_LABEL",
    "NamesCheckpoints",
    "Option",
    "OptionError",
    "OptionSet",
    "PluginHost",
    "ProgressSink",
    "Register",
    "RegisteredMetrics",
    "Registries",
    "ReportsRowStats",
    "ResampledFn",
    "Review",
    "Router",
    "RouterFactory",
    "RowStats",
    "RunInfo",
    "RunSettings",
    "Runner",
    "SEED_COMPONENTS",
    "Scored",
    "Source",
    "SourceOptions",
    "SplitSource",
    "Splits",
    "StoredLookup",
    "Task",
    "TaskFactory",
    "board_from_options",
    "board_options",
    "build_model",
    "get_host",
    "hookimpl",
    "open_reviews",
    "predictions",
    "preflight",
    "run_board",
    "task_report",
]
