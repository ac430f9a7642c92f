"""The names pages and ui/ may use, besides ``Service`` itself: request types, the defaults,
error classes and the typed results the service returns. Together with ``app/`` (the façades) this is
the one door into the core; pages import nothing else from ``ptuning_core`` (except the pure
formatting helpers of ``stats``). tests/test_door.py checks it."""
from __future__ import annotations

from ptuning_core.lm.backbone import DEFAULT_LABEL, DEFAULT_MODEL, ModelLoadError
from . import config as ranges  # the user-facing ranges and UI defaults (config.py)
from ptuning_core.engine.compare import VARIANTS
from ptuning_core.config import SEEDS as DEFAULT_SEEDS
from ptuning_core.data.bundled import DataError
from ptuning_core.engine.experiment import USER_ERRORS, RunSpec
from ptuning_core.engine.experiments import EXPERIMENTS, STORE_KIND as EXPERIMENT_KIND, Experiment, \
    ExperimentRequest, ExperimentResult
from ptuning_core.engine.experiments import get as get_experiment
from ptuning_core.engine.fewshot import DEFAULT_METHODS, METHODS, SweepSpec
from ptuning_core.executors.jobs import QueueFull
from ptuning_core.engine.learned import Evaluation, NoLearnedPrompt, Prediction
from ptuning_core.executors.live import JobView, QueueSnapshot
from ptuning_core.engine.portable import PromptFileError
from ptuning_core.config import ConfigError, TrainConfig
from ptuning_core.app.views import (Accuracy, ChangedPrediction, ComparisonRow, ComparisonView, Confusion,
                    EmbeddingMap, EmbeddingsView, LabelTokens, LabelVector, Neighbour, PairTest,
                    PreviewRow, PseudoToken, RetestResult, RunDetail, RunSummary, StripToken,
                    StudioView, SweepCell, SweepPoint, SweepView, TagAccuracy, WordChoice)

__all__ = [
    # requests and their defaults (TrainConfig holds the one set of training defaults)
    "RunSpec", "TrainConfig", "SweepSpec", "VARIANTS", "METHODS", "DEFAULT_METHODS",
    "DEFAULT_MODEL", "DEFAULT_LABEL", "DEFAULT_SEEDS", "ranges",
    # the method's claims as experiments (requests, the catalogue, what comes back)
    "ExperimentRequest", "EXPERIMENTS", "Experiment", "get_experiment", "EXPERIMENT_KIND",
    "ExperimentResult",
    # errors: USER_ERRORS are one line for the user; the others are shown the same way
    "USER_ERRORS", "ConfigError", "DataError", "ModelLoadError", "PromptFileError",
    "NoLearnedPrompt", "QueueFull",
    # what comes back
    "JobView", "QueueSnapshot", "Evaluation", "Prediction", "StudioView", "StripToken", "WordChoice", "LabelTokens",
    "PreviewRow", "EmbeddingsView", "PseudoToken", "LabelVector", "Neighbour", "EmbeddingMap", "RetestResult",
    "ComparisonView", "ComparisonRow", "PairTest", "Confusion", "ChangedPrediction",
    "SweepView", "SweepCell", "SweepPoint", "RunSummary", "RunDetail", "Accuracy", "TagAccuracy",
]

# What a page shows as one line without a traceback: the user errors, a model this server will
# not load, a full queue.
SHOWN_ERRORS = (ModelLoadError, QueueFull, *USER_ERRORS)
__all__.append("SHOWN_ERRORS")
