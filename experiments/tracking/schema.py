"""The names of what tracking records, and what the tracking process is told: light, imported by all.

Record names shared with the Optuna study and with analysis (``PARENT_ATTR``, ``STUDY_SECONDS``,
``STORAGE_TAG``, ``EPOCH_METRICS``, ``RESTORED``), how a trial's end maps to an MLflow run status,
the ``Settings`` of a tracking process (``settings_of`` a config, the MLflow experiment it writes
to) and ``TrackingError``. This module imports neither MLflow nor Optuna: run.py loads it (through
experiments.tracking.process) before forking.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass

from ..urls import absolute_uri, mask_password

PARENT_ATTR = "mlflow_parent_run_id"  # the study user attr that names its parent run
STUDY_SECONDS = "study_seconds"  # the study's user attr: the wall seconds of its sessions, summed (experiments.sweep)
STORAGE_TAG = "optuna.storage"  # the parent run's tag: where its Optuna study is (absolute path or masked URL)
INTERRUPTED_REASON = "interrupted (Ctrl-C)"  # = experiments.sweep.INTERRUPTED: a trial stopped by the user
EPOCH_METRICS = ("train_cost", "val_cost", "train_accuracy", "val_accuracy", "time")
RESTORED = "restored_"  # prefix of a run's result metrics when it kept its best epoch (train.restore_best)
STATUS = {"complete": "FINISHED", "pruned": "KILLED", "failed": "FAILED"}
OPTUNA_STATE = {"complete": "COMPLETE", "pruned": "PRUNED", "failed": "FAIL"}


BEST_TAG = "best"  # "true" on the best trial's child run (one per study; moved when a resumed study does better)
OUTCOME_TAG = "outcome"  # a trial run's end: complete, pruned, failed or interrupted (also its name's suffix)


def trial_outcome(state: str, status: str) -> str:
    """How a trial ended, in one word: ``complete``, ``pruned``, ``failed``, or ``interrupted`` (Ctrl-C:
    failed for Optuna, KILLED in MLflow)."""
    if state == "failed" and status == "KILLED":
        return "interrupted"
    return state


def trial_run_name(number: int, outcome: str | None = None) -> str:
    """A trial's run name: ``trial-0007`` while it runs and once complete; ``trial-0007-pruned``,
    ``-failed``, ``-interrupted`` otherwise, since MLflow's UI draws KILLED and FAILED runs alike."""
    return f"trial-{number:04d}" + (f"-{outcome}" if outcome not in (None, "complete") else "")


class TrackingError(ValueError):
    """The tracking store cannot be used; the message is one line naming ``tracking.uri``."""


@dataclass(frozen=True)
class Settings:
    """What the tracking process needs to know (picklable)."""

    uri: str
    location: str
    experiment: str
    log_plots: bool


def settings_of(cfg) -> Settings:
    """What the tracking process of ``cfg`` (the root config, tracking enabled) needs."""
    tracking = cfg.tracking
    return Settings(absolute_uri(str(tracking.uri)), mask_password(str(tracking.uri)),
                    str(tracking.experiment or experiment_name(cfg)), bool(tracking.log_plots))


TRAIN_SUFFIX = "-train"  # mode=train runs go to the experiment <study_name>-train, beside the study's


def experiment_name(cfg) -> str:
    """The MLflow experiment of ``cfg``'s runs when ``tracking.experiment`` is null: the study's name,
    or ``<study_name>-train`` for ``mode=train`` runs (never mixed with a study's parent and trials)."""
    return str(cfg.study_name) + (TRAIN_SUFFIX if cfg.get("mode") == "train" else "")


def run_status(state: str, reason: str | None = None) -> str:
    """The MLflow run status of a trial that ended in ``state``: FINISHED, KILLED or FAILED.

    A trial failed because the user pressed Ctrl-C was stopped, not broken: KILLED.
    """
    if state == "failed" and reason is not None and reason.startswith(INTERRUPTED_REASON):
        return "KILLED"
    return STATUS[state]


def final_metrics(final: dict) -> dict[str, float]:
    """What a run logs of its ``final`` besides the curves: ``epochs_run``, ``n_params``, and with
    ``train.restore_best`` ``restored_epoch`` and that epoch's metrics as ``restored_<name>`` (the curves'
    last points are the last epoch's; the run's result, its weights and test metrics are the kept one's)."""
    metrics = {k: float(v) for k, v in final.items() if k not in EPOCH_METRICS and is_number(v)}
    if "restored_epoch" in final:
        metrics.update({RESTORED + k: float(v) for k, v in final.items() if k in EPOCH_METRICS and is_number(v)})
    return metrics


def is_number(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)
