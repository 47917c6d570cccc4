"""Where runs are recorded. All MLflow calls of the harness live in this package.

A tracker (``make_tracker(cfg)``) receives the life of a study and its trials and records one
parent run per study and one nested child run per trial in ``cfg.tracking.uri``; the trial code
never waits for MLflow: a forked *tracking process* does every call. The modules, each importing
only those above it (none imports this package's ``__init__``):

- ``schema``: the record names shared with Optuna and analysis, ``Settings``, ``TrackingError``.
- ``reachable``: ``check_reachable``, a store probe before any record (no MLflow import).
- ``quiet``: ``quiet_mlflow``, the environment and loggers of a process that uses MLflow.
- ``breaker``: the tracking process's count of failed calls and its circuit breaker.
- ``environment``: the git commit, versions, host and user tags of a run.
- ``store``: new SQLite stores seeded from a cached empty schema; the lock that opens one.
- ``summary``: the study's summary on its parent run (metrics, tags, a Markdown note).
- ``recorder``: ``Recorder``, the tracking process's side: every MLflow call.
- ``spool``: ``Spool``, every record on local disk until MLflow has it (a server restart, a killed worker).
- ``process``: ``Link``, the forked tracking process and the pipe to it.
- ``tracker``: the caller's side: ``NullTracker``, ``MlflowTracker``, ``make_tracker``.
- ``replay``: ``fetch_run``, a recorded run's config and curves read back.

The names below are importable from the package itself (``from experiments.tracking import
make_tracker``); each is loaded from its module on first use, so importing the package imports
none of the others: a process that only reads record names need not load MLflow's side, Optuna's
plots or the URL probe.
"""

import importlib

_HOMES = {
    "schema": ("BEST_TAG", "EPOCH_METRICS", "INTERRUPTED_REASON", "OPTUNA_STATE", "OUTCOME_TAG", "PARENT_ATTR",
               "RESTORED", "STATUS", "STORAGE_TAG", "STUDY_SECONDS", "TRAIN_SUFFIX", "VALUE", "Settings",
               "TrackingError", "absolute_uri", "experiment_name", "final_metrics", "is_number", "is_result",
               "logged_results", "objective_window", "result_records", "run_result", "run_status", "settings_of",
               "trial_outcome", "trial_run_name", "value_names", "window_means"),
    "reachable": ("CHECK_TIMEOUT", "check_reachable", "is_file_store"),
    "quiet": ("quiet_mlflow",),
    "environment": ("environment_tags", "git_commit"),
    "store": ("save_template", "seed_store", "store_lock", "template_path"),
    "summary": ("SUMMARY_METRICS", "study_summary"),
    "recorder": ("Recorder", "masked"),
    "spool": ("Spool", "spool_folder"),
    "process": ("Link",),
    "tracker": ("CLOSE_TIMEOUT", "MlflowTracker", "NullTracker", "make_tracker"),
    "replay": ("fetch_run",),
}
_HOME_OF = {name: module for module, names in _HOMES.items() for name in names}
__all__ = sorted(_HOME_OF)


def __getattr__(name: str):
    """``name`` from the module that defines it (imported now, once)."""
    module = _HOME_OF.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
