"""The names of what tracking records, and what the tracking process is told: light, imported by all.

Record names shared with the Optuna study and with analysis (``PARENT_ATTR``, ``STUDY_SECONDS``,
``STORAGE_TAG``, ``EPOCH_METRICS``, ``RESTORED``), which of a run's final numbers are a metric, params
or tags (``result_records``; ``logged_results`` reads either layout), how a trial's end maps to an MLflow run status,
the ``Settings`` of a tracking process (``settings_of`` a config, the MLflow experiment it writes
to) and ``TrackingError``. This module imports neither MLflow nor Optuna.
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
STATUS = {"complete": "FINISHED", "pruned": "KILLED", "failed": "FAILED", "retried": "KILLED"}
OPTUNA_STATE = {"complete": "COMPLETE", "pruned": "PRUNED", "failed": "FAIL", "retried": "FAIL"}  # retried: another
# worker failed the trial for a stale heartbeat and runs it again (experiments.sweep.TAKEN_OVER)


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


VALUE = "value"  # a complete run's one metric besides its curves: its objective's value (Optuna's trial.value)
CONFIG_RESULTS = ("n_params",)  # final numbers that follow from the config: run params, beside it


def value_names(n: int) -> list[str]:
    """The metric names of a run's ``n`` objective values: ``value``, or ``value_0``, ``value_1``, ..."""
    return [VALUE] if n == 1 else [f"{VALUE}_{i}" for i in range(n)]


def is_result(name: str) -> bool:
    """A run's final number (a ``final_metrics`` or test metric name), not a curve or a config key."""
    return name in ("epochs_run", "n_params", "restored_epoch") or name.startswith((RESTORED, "test_"))


def run_result(final: dict[str, float], last_epoch: dict[str, float]) -> dict[str, float]:
    """A run's result by name: its ``final`` numbers, the last epoch's curve values, and where
    ``train.restore_best`` kept an epoch, that epoch's (``restored_<name>``) in their place."""
    kept = {k[len(RESTORED):]: v for k, v in final.items()
            if k.startswith(RESTORED) and k[len(RESTORED):] in EPOCH_METRICS}
    return {**last_epoch, **final, **kept}


def objective_window(cfg) -> int:
    """The epochs a run's objective averages (``sweep.objective.window`` of its config, a dict or DictConfig;
    1 without one)."""
    return int(cfg.get("sweep", {}).get("objective", {}).get("window", 1))


def window_means(epochs: list[dict[str, float]], window: int) -> dict[str, float]:
    """Each curve's mean over the last ``window`` of ``epochs`` (one ``{name: value}`` an epoch, in order),
    as a sweep's objective averages them (``sweep.objective.window``); ``{}`` without epochs."""
    last = epochs[-window:]
    names = set().union(*last) if last else set()
    return {k: sum(e[k] for e in last if k in e) / sum(k in e for e in last) for k in names}


def result_records(final: dict[str, float], last_epoch: dict[str, float], objective: list[str],
                   averaged: dict[str, float] | None = None) -> tuple[dict[str, float], dict[str, str], dict[str, str]]:
    """(metrics, params, tags): how a run records its ``final`` numbers (``final_metrics`` and the test
    metrics) beside its curves, whose last epoch is ``last_epoch``; ``averaged``: the curves' means over the
    objective's window (``window_means``, ``sweep.objective.window`` > 1), whose values are then the objective's.

    The only metrics are the values of ``objective`` (metric names; empty for a pruned or failed run),
    named by ``value_names``: MLflow's run list sorts and charts runs by metrics, and its Model metrics
    tab, in alphabetical order, then leads with the curves (``time``, ``train_*``, ``val_*`` < ``value``).
    ``n_params`` is a param (it follows from the config); the others (``epochs_run``, ``restored_*``,
    ``test_*``) are tags, written exactly (``number_text``)."""
    result = {**run_result(final, last_epoch), **(averaged or {})}
    metrics = {}
    if objective and all(is_number(result.get(m)) for m in objective):
        metrics = dict(zip(value_names(len(objective)), (float(result[m]) for m in objective)))
    params = {k: number_text(v) for k, v in final.items() if k in CONFIG_RESULTS}
    tags = {k: number_text(v) for k, v in final.items() if k not in CONFIG_RESULTS}
    return metrics, params, tags


def logged_results(metrics: dict, params: dict, tags: dict) -> dict[str, float]:
    """A logged run's final numbers by name (``is_result``), from either layout: params and tags
    (``result_records``) or one-step metrics (the runs logged before it)."""
    found = {k: float(v) for k, v in metrics.items() if is_result(k)}
    for source in (params, tags):
        found.update({k: float(v) for k, v in source.items() if is_result(k) and is_decimal(v)})
    return found


def number_text(value) -> str:
    """A number as a param or tag: integral ones without ``.0``, the others exactly (``repr``)."""
    value = float(value)
    return str(int(value)) if value.is_integer() and abs(value) < 2 ** 53 else repr(value)


def is_decimal(text: str) -> bool:
    """``text`` reads as a float."""
    try:
        float(text)
    except ValueError:
        return False
    return True


def is_number(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)
