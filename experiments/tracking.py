"""Where runs are recorded. All MLflow calls of the harness live in this module.

A tracker receives the life of a study and its trials: ``start_study`` → per trial
``start_trial`` → ``log_epoch`` per epoch → ``end_trial`` → ``end_study`` → ``close``.
``NullTracker`` records nothing (``tracking=none``); ``MlflowTracker`` records one parent run
per study and one nested child run per trial in ``cfg.tracking.uri``.

Cost: the trial code never waits for MLflow. ``MlflowTracker`` checks the store is reachable
(a few ms, no MLflow import), then hands each record as one small message to a *tracking
process* (experiments.tracking_process: run.py forks it as it starts, else the first record
does); that process imports MLflow, owns the only ``MlflowClient`` (no SQLAlchemy engine or
HTTP session crosses a fork) and runs ``_Recorder``, which does every call: a trial's curves,
params and tags in one ``log_batch``, its artifacts with one ``log_artifacts``. Forked sweep
workers that were handed the tracker write to the same process. The study's plots are drawn
by processes forked from the caller's side (``experiments.plots.draw_study_files``: Optuna and
scikit-learn are loaded there already) while the tracking process writes the last trials'
records. ``close`` waits until everything is written and returns what could not be
(``problems``): a store that stops answering never fails a trial, the Optuna study records every
trial regardless.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib
import importlib.metadata
import logging
import math
import numbers
import os
import platform
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import yaml
from omegaconf import OmegaConf

from .config import YAML_DUMPER, flatten, split_seed
from .mlflow_store import save_template, seed_store
from .plots import StudySnapshot, draw_study_files, render_curves
from .storage import claim_lock, file_lock, mask_password, open_storage, sqlite_file
from .tracking_process import Link, Settings, absolute_uri, settings_of, take

PARENT_ATTR = "mlflow_parent_run_id"  # the study user attr that names its parent run
INTERRUPTED_REASON = "interrupted (Ctrl-C)"  # = experiments.sweep.INTERRUPTED: a trial stopped by the user
EPOCH_METRICS = ("train_cost", "val_cost", "train_accuracy", "val_accuracy", "time")
RESTORED = "restored_"  # prefix of a run's result metrics when it kept its best epoch (train.restore_best)
CHECK_TIMEOUT = 5.0  # seconds for the reachability check before a study
CLOSE_TIMEOUT = 300.0  # seconds ``close`` waits for the tracking process to write what it was sent
RETRY_AFTER = 10.0  # seconds the tracking process skips calls after the store failed twice in a row
VERSIONED = ("numpy", "optuna", "mlflow", "hydra-core", "omegaconf", "scikit-learn")
DB_PORTS = {"postgresql": 5432, "postgres": 5432, "mysql": 3306, "mssql": 1433}
STATUS = {"complete": "FINISHED", "pruned": "KILLED", "failed": "FAILED"}
OPTUNA_STATE = {"complete": "COMPLETE", "pruned": "PRUNED", "failed": "FAIL"}
SUMMARY_METRICS = ("val_cost", "val_accuracy", "test_cost", "test_accuracy")  # the best trial's, on the parent

_log = logging.getLogger(__name__)


class TrackingError(ValueError):
    """The tracking store cannot be used; the message is one line naming ``tracking.uri``."""


# ---------------------------------------------------------------------------- the interface
class NullTracker:
    """Tracking switched off: every call does nothing."""

    location = "tracking off"

    def check(self) -> None:
        """Raise ``TrackingError`` when the store cannot be reached."""

    def start_study(self, study, cfg) -> None:
        """Open (or reopen) the study's record."""

    def start_trial(self, number: int | None, cfg, values: dict[str, Any]) -> None:
        """Open a trial's record (``number`` None: a run outside any study, ``mode=train``)."""

    def log_epoch(self, metrics: dict[str, float], step: int) -> None:
        """One epoch's metrics."""

    def end_trial(self, state: str, final: dict[str, float], result=None, reason: str | None = None) -> None:
        """Close the trial's record with its state: complete, pruned or failed."""

    def end_study(self, study, interrupted: bool = False) -> None:
        """Close the study's record with the summary."""

    def close(self) -> None:
        """Wait until every record is written."""

    def problems(self) -> str | None:
        """What could not be recorded, in one line; None when everything was."""
        return None


def make_tracker(cfg) -> NullTracker | MlflowTracker:
    """The tracker ``cfg.tracking`` asks for."""
    if not cfg.tracking.enabled:
        return NullTracker()
    return MlflowTracker(cfg)


# ---------------------------------------------------------------------------- where
def is_file_store(uri: str) -> bool:
    """A plain path or ``file:`` URI: MLflow's file store, which MLflow 3 refuses by default."""
    scheme = urllib.parse.urlsplit(uri).scheme
    return scheme in ("", "file") or len(scheme) == 1  # len 1: a Windows drive letter


def check_reachable(uri: str, timeout: float = CHECK_TIMEOUT) -> None:
    """Raise ``TrackingError`` unless the store at ``uri`` answers, within about ``timeout`` seconds.

    http(s): ``GET /health`` of the MLflow server; sqlite: the database's directory is writable;
    another database URL: its host accepts a TCP connection. Nothing here imports MLflow.
    """
    shown = mask_password(uri)
    parts = urllib.parse.urlsplit(uri)
    scheme = parts.scheme.split("+")[0]
    try:
        if scheme in ("http", "https"):
            with urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=timeout) as response:
                if response.status != 200:
                    raise OSError(f"/health answered HTTP {response.status}")
        elif scheme == "sqlite":
            _check_sqlite_path(uri[len("sqlite:///"):])
        elif is_file_store(uri):
            if os.environ.get("MLFLOW_ALLOW_FILE_STORE", "").lower() not in ("1", "true"):
                raise OSError("MLflow 3 refuses the file store; use sqlite:///mlflow.db or an http:// server")
        elif parts.hostname:
            port = parts.port or DB_PORTS.get(scheme)
            if port is not None:
                socket.create_connection((parts.hostname, port), timeout=timeout).close()
    except urllib.error.HTTPError as err:
        raise TrackingError(f"cannot reach tracking.uri={shown}: /health answered HTTP {err.code}") from None
    except (OSError, ValueError) as err:
        reason = getattr(err, "reason", None) or err
        raise TrackingError(f"cannot reach tracking.uri={shown}: {reason}") from None


def _check_sqlite_path(path: str) -> None:
    if not path:
        raise OSError("an in-memory database is lost when the run ends; name a file: sqlite:///mlflow.db")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise OSError(f"directory {folder} does not exist")
    if not os.access(folder, os.W_OK):
        raise OSError(f"directory {folder} is not writable")
    if os.path.exists(path) and not os.access(path, os.R_OK | os.W_OK):
        raise OSError(f"{os.path.abspath(path)} is not readable and writable")


def run_status(state: str, reason: str | None = None) -> str:
    """The MLflow run status of a trial that ended in ``state``: FINISHED, KILLED or FAILED.

    A trial failed because the user pressed Ctrl-C was stopped, not broken: KILLED.
    """
    if state == "failed" and reason is not None and reason.startswith(INTERRUPTED_REASON):
        return "KILLED"
    return STATUS[state]


# ---------------------------------------------------------------------------- the caller's side
class MlflowTracker:
    """Records a study in MLflow through a tracking process; the trial code never waits for it.

    Calls between ``start_trial`` and ``end_trial`` buffer; the buffer goes out at the end of the
    trial and at least every ``tracking.flush_seconds``. No call raises except ``check`` and
    ``start_study`` (an unreachable store, before any trial runs).
    """

    def __init__(self, cfg):
        tracking = cfg.tracking
        self.settings = settings_of(cfg)
        self.uri, self.location = self.settings.uri, self.settings.location
        self.log_weights = bool(tracking.log_weights)
        self.flush_seconds = float(tracking.flush_seconds)
        self._link: Link | None = None
        self._checked = False
        self._trial = None  # key of the open trial run: its number, or "train"
        self._trial_cfg = None
        self._trial_data: dict | None = None
        self._epochs: list[tuple[int, int, dict[str, float]]] = []  # (step, time ms, metrics)
        self._last_send = 0.0
        self._lost: list[str] = []  # what this side could not hand over
        self._report: dict | None = None
        self._storage, self._metrics = "", ["val_cost"]  # the study's (start_study)
        self._study_folder: str | None = None  # the plots and trials.csv end_study drew, until close

    # -- study
    def check(self) -> None:
        """Raise ``TrackingError`` when the store cannot be reached (once per tracker)."""
        if not self._checked:
            check_reachable(self.uri)
            self._checked = True

    def start_study(self, study, cfg) -> None:
        """Check the store, then open the study's parent run (or reopen it: same study, same run)."""
        self.check()
        container = OmegaConf.to_container(cfg, resolve=True)
        self._storage, self._metrics = str(cfg.sweep.storage), list(cfg.sweep.objective.metrics)
        self._send(("study", study.study_name, self._storage, container))

    def end_study(self, study, interrupted: bool = False) -> None:
        """Summarise the study on its parent run (best trial, counts, plots, trials table). The plots
        and trials.csv are drawn here (``draw_study_files``) while the tracking process writes the
        last trials' records; it then logs them."""
        if self._link is None:
            return  # the study was never opened in the tracking process
        self._study_folder = tempfile.mkdtemp(prefix="nnsweep-study-")
        failure = draw_study_files(study.study_name, self._storage, self._metrics, self._study_folder,
                                   self.settings.log_plots)
        if failure:
            self._lose(f"the study's plots and trials.csv: {failure}")
        self._send(("study_end", interrupted, self._study_folder))

    # -- trial
    def start_trial(self, number: int | None, cfg, values: dict[str, Any]) -> None:
        """Open a child run for trial ``number`` (None: a single run, ``mode=train``)."""
        if self._trial is not None:
            self.end_trial("failed", {}, None, "the trial's record was not closed")
        self._trial = "train" if number is None else int(number)
        self._trial_cfg = cfg
        self._epochs = []
        self._last_send = time.monotonic()
        try:
            container = OmegaConf.to_container(cfg, resolve=True)
        except Exception as err:  # never fail a trial because of tracking
            self._lose(f"trial {number}: config: {err}")
            container = {}
        self._trial_data = container.get("data")
        self._send(("trial_start", self._trial, number, container, os.getpid()))

    def log_epoch(self, metrics: dict[str, float], step: int) -> None:
        """Buffer one epoch; hand the buffer over when ``flush_seconds`` have passed."""
        if self._trial is None:
            return
        values = {k: float(v) for k, v in metrics.items() if k in EPOCH_METRICS and v is not None}
        self._epochs.append((int(step), int(time.time() * 1000), values))
        if time.monotonic() - self._last_send >= self.flush_seconds:
            self._send(("metrics", self._trial, self._epochs))
            self._epochs = []
            self._last_send = time.monotonic()

    def end_trial(self, state: str, final: dict[str, float], result=None, reason: str | None = None) -> None:
        """Close the trial's run: last curve points, final and test metrics, tags, artifacts, status."""
        if self._trial is None:
            return  # the trial failed before it had a run (its config did not compose)
        key, epochs = self._trial, self._epochs
        self._trial, self._epochs = None, []
        metrics = final_metrics(final)
        folder = None
        try:
            if result is not None:
                metrics.update(self._test_metrics(result))
                folder = self._save_weights(result) if self.log_weights else None
        except Exception as err:  # a test split or weights that cannot be had: the rest still goes
            self._lose(f"trial {key}: {type(err).__name__}: {err}")
        step = int(final.get("epochs_run") or (epochs[-1][0] if epochs else 0))
        self._send(("trial_end", key, state, run_status(state, reason), reason, epochs, metrics, step, folder))

    def _test_metrics(self, result) -> dict[str, float]:
        """test_cost (and test_accuracy) of the trained net on the held-out test split."""
        from .data import load_dataset  # here: the tracking process imports this module, never scikit-learn

        cfg = self._trial_cfg
        data = load_dataset(self._trial_data or cfg.data, split_seed(cfg))  # cached: the trial loaded it
        return {k: float(v) for k, v in result.test_metrics(cfg, data).items()}

    @staticmethod
    def _save_weights(result) -> str:
        """A temp folder holding ``weights/final.npz`` and ``weights/initial.npz``, as
        ``nncore.Network.save`` writes them (~2 ms; large arrays do not go through the pipe)."""
        folder = tempfile.mkdtemp(prefix="nnsweep-run-")
        os.mkdir(os.path.join(folder, "weights"))
        final = result.net.arrays()
        np.savez(os.path.join(folder, "weights", "final.npz"), **final)
        np.savez(os.path.join(folder, "weights", "initial.npz"), **{**final, "params": result.initial_params})
        return folder

    # -- the end
    def close(self) -> None:
        """Wait (at most ``CLOSE_TIMEOUT`` s) until the tracking process has written everything."""
        link = self._link
        if link is None or link.owner != os.getpid():
            return  # nothing sent, or a forked worker: the process that started the link closes it
        self._link = None
        try:
            self._report = link.close(CLOSE_TIMEOUT)
        finally:
            self._remove_study_folder()

    def _remove_study_folder(self) -> None:
        if self._study_folder is not None:
            shutil.rmtree(self._study_folder, ignore_errors=True)
            self._study_folder = None

    @property
    def report(self) -> dict:
        """After ``close``: the tracking process's account: ``failed`` and ``skipped`` calls, ``trials``
        with gaps, ``first_error``, and ``busy``/``cpu``/``count``: wall and CPU seconds and messages per
        kind of record (``connect``: importing MLflow and opening the store)."""
        return dict(self._report or {})

    def problems(self) -> str | None:
        """One line on what could not be recorded, or None. Call after ``close``."""
        report = self._report or {}
        parts = []
        if report.get("timeout"):
            parts.append(f"the tracking process did not finish within {CLOSE_TIMEOUT:.0f} s")
        if report.get("failed") or report.get("skipped"):
            trials = report.get("trials", [])
            what = [f"the runs of trials {', '.join(map(str, trials[:10]))}{', ...' if len(trials) > 10 else ''}"]
            what = (what if trials else []) + (["the study's parent run"] if report.get("study") else [])
            parts.append(f"{report.get('failed', 0)} MLflow calls failed and {report.get('skipped', 0)} were "
                         f"skipped: {' and '.join(what) or 'some records'} are incomplete in {self.location} "
                         f"(first error: {report.get('first_error')})")
        if self._lost:
            parts.append(f"{len(self._lost)} records were not handed over ({self._lost[0]})")
        return "; ".join(parts) or None

    # -- plumbing
    def _send(self, message: tuple) -> None:
        try:
            if self._link is None:
                self._link = take(self.settings) or Link(self.settings)
                atexit.register(self._close_at_exit)
            self._link.send(message)
        except Exception as err:  # the tracking process is gone: count, never fail the caller
            self._lose(f"{message[0]}: {type(err).__name__}: {err}")

    def _close_at_exit(self) -> None:
        with contextlib.suppress(Exception):
            self.close()

    def _lose(self, what: str) -> None:
        if not self._lost:
            _log.warning("tracking: %s (the study goes on)", what)
        self._lost.append(what)


def final_metrics(final: dict) -> dict[str, float]:
    """What a run logs of its ``final`` besides the curves: ``epochs_run``, ``n_params``, and with
    ``train.restore_best`` ``restored_epoch`` and that epoch's metrics as ``restored_<name>`` (the curves'
    last points are the last epoch's; the run's result, its weights and test metrics are the kept one's)."""
    metrics = {k: float(v) for k, v in final.items() if k not in EPOCH_METRICS and _is_number(v)}
    if "restored_epoch" in final:
        metrics.update({RESTORED + k: float(v) for k, v in final.items() if k in EPOCH_METRICS and _is_number(v)})
    return metrics


def _is_number(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _quiet_mlflow() -> None:
    """Environment and loggers of the tracking process (its own: nothing here reaches the trials)."""
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
    for name in ("alembic", "mlflow"):
        logging.getLogger(name).setLevel(logging.WARNING)
    logging.getLogger("optuna").setLevel(logging.ERROR)  # run.py prints what the study has to say


class _Lost(Exception):
    """A record that could not be written (already counted)."""


@dataclass
class _Trouble:
    """What failed in the tracking process, and the circuit breaker of a store that stopped answering."""

    failed: int = 0
    skipped: int = 0
    first_error: str | None = None
    trials: set = field(default_factory=set)
    study: bool = False
    in_a_row: int = 0
    down_since: float | None = None

    def lost(self, key) -> None:
        if key == "study":
            self.study = True
        elif isinstance(key, int):
            self.trials.add(key)

    def call(self, key, fn, *args, **kwargs):
        """``fn(*args)``; a failure is counted against ``key`` and raises ``_Lost``."""
        if self.down_since is not None and time.monotonic() - self.down_since < RETRY_AFTER:
            self.skipped += 1
            self.lost(key)
            raise _Lost
        try:
            out = fn(*args, **kwargs)
        except Exception as err:
            self.failed += 1
            self.lost(key)
            if self.first_error is None:
                self.first_error = f"{type(err).__name__}: {err}".splitlines()[0][:300]
                _log.warning("tracking: an MLflow call failed (%s); the study goes on", self.first_error)
            self.in_a_row += 1
            if self.in_a_row >= 2:
                self.down_since = time.monotonic()
            raise _Lost from err
        self.in_a_row, self.down_since = 0, None
        return out

    def report(self) -> dict:
        return {"failed": self.failed, "skipped": self.skipped, "first_error": self.first_error,
                "trials": sorted(self.trials), "study": self.study}


@dataclass
class _OpenRun:
    run_id: str
    artifact_uri: str
    number: int | None
    container: dict
    epochs: list = field(default_factory=list)  # (step, metrics) for the curve PNG
    params: list = field(default_factory=list)  # the flat config, sent with the run's first batch

    def take_params(self) -> list:
        params, self.params = self.params, []
        return params


class _Recorder:
    """Every MLflow call: one client, the parent run of the study, the open child runs."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.trouble = _Trouble()
        self._client = None
        self._experiment_id: str | None = None
        self.parent: str | None = None
        self.parent_open = False  # the parent is RUNNING because of this process
        self.study_name: str | None = None
        self.storage: str | None = None
        self.container: dict = {}
        self.runs: dict[Any, _OpenRun] = {}
        self.tests: dict[int, dict] = {}  # trial number -> its final and test metrics
        self._warm = False
        self.busy: dict[str, float] = {}  # wall seconds per message kind (and "connect", within the first)
        self.cpu: dict[str, float] = {}  # CPU seconds per message kind (and "connect")
        self.count: dict[str, int] = {}

    # -- plumbing
    def client(self):
        if self._client is None:
            start, cpu = time.perf_counter(), time.process_time()
            from mlflow.tracking import MlflowClient
            _quiet_mlflow()  # importing MLflow set its logger's level
            with _store_lock(self.settings.uri):  # several run.py on one SQLite file: one makes its tables
                new = seed_store(self.settings.uri)  # a new SQLite store from the cached schema
                client = MlflowClient(self.settings.uri)
                if new:
                    save_template(self.settings.uri)
                self._experiment_id = self._experiment(client)
            self._client = client
            self.busy["connect"] = time.perf_counter() - start
            self.cpu["connect"] = time.process_time() - cpu
        return self._client

    def _experiment(self, client) -> str:
        name = self.settings.experiment
        experiment = client.get_experiment_by_name(name)
        if experiment is None:
            try:
                return client.create_experiment(name)
            except Exception:  # another process made it first
                experiment = client.get_experiment_by_name(name)
                if experiment is None:
                    raise
        if experiment.lifecycle_stage == "deleted":
            _log.warning("tracking: MLflow experiment %r was deleted; restoring it", name)
            client.restore_experiment(experiment.experiment_id)
        return experiment.experiment_id

    def call(self, key, method: str, *args, **kwargs):
        """``client.method(*args)`` (the client made on first use), counted against ``key``."""
        client = self._client if self._client is not None else self.trouble.call(key, self.client)
        return self.trouble.call(key, getattr(client, method), *args, **kwargs)

    def handle(self, message: tuple) -> None:
        kind, *args = message
        start, cpu = time.perf_counter(), time.process_time()
        try:
            getattr(self, "on_" + kind)(*args)
        except _Lost:
            pass
        except Exception as err:  # a bug or odd data here must not end the tracking process
            self.trouble.failed += 1
            self.trouble.lost(args[0] if kind.startswith(("trial", "metrics")) and args else "study")
            self.trouble.first_error = self.trouble.first_error or f"{kind}: {type(err).__name__}: {err}"
            _log.warning("tracking: %s failed: %s", kind, err, exc_info=True)
        finally:
            self.busy[kind] = self.busy.get(kind, 0.0) + time.perf_counter() - start
            self.cpu[kind] = self.cpu.get(kind, 0.0) + time.process_time() - cpu
            self.count[kind] = self.count.get(kind, 0) + 1

    def warm_up(self) -> None:
        """Import MLflow and its store's module (~2 s of CPU) while nothing waits for them."""
        if self._warm:
            return
        self._warm = True
        web = self.settings.uri.startswith(("http://", "https://"))
        try:
            import mlflow.tracking  # noqa: F401
            # the store's module: MlflowClient imports it on first use (SQLAlchemy's ORM: ~1 s CPU)
            importlib.import_module("mlflow.store.tracking." + ("rest_store" if web else "sqlalchemy_store"))
        except ImportError as err:  # the first record's client() meets it again and counts what is lost
            _log.debug("tracking: warm-up: %s", err)

    # -- study
    def on_study(self, study_name: str, storage: str, container: dict) -> None:
        self.study_name, self.storage, self.container = study_name, storage, masked(container)
        container = self.container
        study = _load_study(study_name, storage)
        self.experiment_id("study")
        with claim_lock(storage):
            run_id = study.user_attrs.get(PARENT_ATTR)
            run = self._existing_run(run_id) if run_id else None
            if run is None:
                run_id = self._create_parent(study_name, container)
                study.set_user_attr(PARENT_ATTR, run_id)
            else:
                self._reopen_parent(run, container)
        self.parent, self.parent_open = run_id, True
        self._close_stale_children(study)

    def _existing_run(self, run_id: str):
        """The live run ``run_id`` in this store and experiment, or None (deleted, or kept elsewhere)."""
        found = self.call("study", "search_runs", [self._experiment_id], f"attributes.run_id = '{run_id}'",
                          max_results=1)
        return found[0] if found else None

    def _create_parent(self, study_name: str, container: dict) -> str:
        tags = {"mlflow.runName": study_name, "optuna.study": study_name, "mlflow.note.content":
                f"Optuna study **{study_name}**: one child run per trial. The summary, the study's plots "
                "(`plots/`) and the trials table (`trials.csv`) arrive when the study ends.",
                **_environment_tags()}
        run = self.call("study", "create_run", self._experiment_id, tags=tags, run_name=study_name)
        params = _study_params(container)
        self.call("study", "log_batch", run.info.run_id, params=[_param(k, v) for k, v in params.items()])
        return run.info.run_id

    def _reopen_parent(self, run, container: dict) -> None:
        """A resumed study: RUNNING again; sweep settings that changed (n_trials, ...) become tags."""
        run_id = run.info.run_id
        self.call("study", "update_run", run_id, status="RUNNING")
        old, new = run.data.params, _study_params(container)
        params = [_param(k, v) for k, v in new.items() if k not in old]
        tags = [_tag(f"changed.{k}", v) for k, v in new.items() if k in old and old[k] != str(v)]
        tags.append(_tag("resumed", time.strftime("%Y-%m-%d %H:%M:%S")))
        self.call("study", "log_batch", run_id, params=params, tags=tags)

    def _close_stale_children(self, study) -> None:
        """Child runs left RUNNING by a process that died: KILLED, with a ``killed_reason`` tag.

        A run is stale when Optuna failed its trial on behalf of its dead process: FAIL without a
        ``fail_reason`` (a kill -9 found by the next run, or a heartbeat that stopped). Any other run
        is left alone: its trial still runs, or its worker's tracking process closes it (a trial that
        ended sent its record before its process could go)."""
        trials = {t.number: t for t in study.get_trials(deepcopy=False)}
        found = self.call("study", "search_runs", [self._experiment_id],
                          f"tags.`mlflow.parentRunId` = '{self.parent}' and attributes.status = 'RUNNING'")
        for run in found:
            number = run.data.tags.get("optuna.trial_number", "")
            trial = trials.get(int(number)) if number.isdigit() else None
            if trial is not None and trial.state == optuna.trial.TrialState.FAIL and \
                    "fail_reason" not in trial.user_attrs:
                why = "the process that ran it was killed before the trial ended"
                self.call("study", "set_tag", run.info.run_id, "killed_reason", why)
                self.call("study", "set_terminated", run.info.run_id, "KILLED")

    def on_study_end(self, interrupted: bool, folder: str) -> None:
        """The summary, then ``folder`` (plots/, trials.csv: see ``draw_study_files``) as artifacts."""
        if self.parent is None:
            return
        study = StudySnapshot(self.study_name, open_storage(self.storage))
        metrics, tags, note = self._summary(study)
        now, step = int(time.time() * 1000), len(study.trials)
        self.call("study", "log_batch", self.parent, metrics=[_metric(k, v, now, step) for k, v in metrics.items()],
                  tags=[_tag(k, v) for k, v in tags.items()] + [_tag("mlflow.note.content", note)])
        if os.listdir(folder):
            self.call("study", "log_artifacts", self.parent, folder)
        with contextlib.suppress(_Lost):  # a worker that died during the study (its trial was retried)
            self._close_stale_children(study)
        self.call("study", "set_terminated", self.parent, "KILLED" if interrupted else "FINISHED")
        self.parent_open = False

    def _summary(self, study) -> tuple[dict, dict, str]:
        """Metrics, tags and the run description that summarise the study on its parent run.

        Few metrics (each becomes a chart in the UI's chart view): the best trial's objective,
        val and test metrics. Counts, the best trial's number, run id, hyperparameters and its
        other results are tags."""
        S = optuna.trial.TrialState
        trials = study.get_trials(deepcopy=False)
        states = [t.state for t in trials]
        counts = {"complete": states.count(S.COMPLETE), "pruned": states.count(S.PRUNED),
                  "failed": states.count(S.FAIL), "running": states.count(S.RUNNING)}
        metrics: dict[str, float] = {}
        tags = {f"trials.{k}": str(v) for k, v in counts.items()}
        names = list(self.container["sweep"]["objective"]["metrics"])
        complete = counts["complete"] > 0
        best = ([study.best_trial] if complete else []) if len(study.directions) == 1 else study.best_trials
        lines = [f"Optuna study **{study.study_name}**: {counts['complete']} complete, {counts['pruned']} pruned, "
                 f"{counts['failed']} failed trials (one child run each, `trial-NNNN`)."]
        if len(study.directions) == 1 and best:  # (best_trials would list every trial tied for best)
            trial = best[0]
            child = self._child_metrics(trial.number)
            if "run_id" in child:
                tags["best.run_id"] = child.pop("run_id")
            results = {k: v for k, v in {**child, **trial.user_attrs}.items() if _is_number(v) and _is_result(k)}
            metrics.update({f"best.{n}": v for n, v in zip(names, trial.values)})
            metrics.update({f"best.{k}": v for k, v in results.items() if k in SUMMARY_METRICS})
            tags.update({f"best.{k}": str(v) for k, v in results.items() if f"best.{k}" not in metrics})
            tags.update({"best.trial_number": str(trial.number), **{f"best.{k}": str(v)
                                                                     for k, v in trial.params.items()}})
            values = ", ".join(f"{n} = {v:.4g}" for n, v in zip(names, trial.values))
            lines.append(f"Best: trial {trial.number} (`trial-{trial.number:04d}`), {values}; "
                         + ", ".join(f"{k} = {_short(v)}" for k, v in trial.params.items()) + ".")
        elif best:
            tags["best.trial_numbers"] = ", ".join(str(t.number) for t in best)
            lines.append("Pareto front: trials " + tags["best.trial_numbers"] + ".")
        for state, attr, word in ((S.PRUNED, "prune_reason", "Pruned"), (S.FAIL, "fail_reason", "Failed")):
            reasons: dict[str, list[int]] = {}
            for t in trials:
                if t.state == state:
                    reasons.setdefault(t.user_attrs.get(attr, "no reason recorded"), []).append(t.number)
            if reasons:
                lines.append(f"{word}: " + "; ".join(f"trials {', '.join(map(str, numbers))}: {reason}" for
                                                      reason, numbers in reasons.items())[:2000] + ".")
        lines.append("Artifacts: `plots/` (optimization history, parameter importances, parallel coordinates, "
                     "intermediate values) and `trials.csv`.")
        return metrics, tags, "\n\n".join(lines)

    def _child_metrics(self, number: int) -> dict:
        """The final and test metrics of trial ``number``'s run (and its ``run_id``)."""
        if number in self.tests:
            return dict(self.tests[number])
        with contextlib.suppress(_Lost):
            found = self.call("study", "search_runs", [self._experiment_id],
                              f"tags.`mlflow.parentRunId` = '{self.parent}' and tags.`optuna.trial_number` = "
                              f"'{number}'", max_results=1)
            if found:
                return {**found[0].data.metrics, "run_id": found[0].info.run_id}
        return {}

    # -- trials
    def on_trial_start(self, key, number: int | None, container: dict, pid: int) -> None:
        self.runs.pop(key, None)
        container = masked(container)
        if number is None:
            run_name = time.strftime("train-%Y%m%d-%H%M%S")
            tags = {"mlflow.runName": run_name, **_environment_tags()}
        else:
            run_name = f"trial-{number:04d}"
            tags = {"mlflow.runName": run_name, "optuna.study": str(self.study_name),
                    "optuna.trial_number": str(number), "optuna.trial_state": "RUNNING",
                    "host": socket.gethostname(), "pid": str(pid)}
            if self.parent is not None:
                tags["mlflow.parentRunId"] = self.parent
        seed = container.get("train", {}).get("seed")
        if seed is not None:
            tags["seed"] = str(seed)
        run = self.call(key, "create_run", self.experiment_id(key), tags=tags, run_name=run_name)
        params = [_param(k, v) for k, v in (flatten(container) if container else {}).items()]
        # The params go with the first curve batch (a flush, or the trial's end): one store call
        # less per trial (a batch costs ~5 ms CPU on SQLite, whatever it holds).
        self.runs[key] = _OpenRun(run.info.run_id, run.info.artifact_uri, number, container, params=params)

    def experiment_id(self, key) -> str:
        """The experiment's id (the client made on first use)."""
        if self._client is None:
            self.trouble.call(key, self.client)
        return self._experiment_id

    def on_metrics(self, key, epochs: list) -> None:
        run = self._open(key)
        run.epochs.extend((step, values) for step, _, values in epochs)
        self.call(key, "log_batch", run.run_id, metrics=_epoch_metrics(epochs), params=run.take_params())

    def on_trial_end(self, key, state: str, status: str, reason: str | None, epochs: list, final: dict,
                     step: int, folder: str | None) -> None:
        try:
            run = self._open(key)
            run.epochs.extend((s, values) for s, _, values in epochs)
            if run.number is not None:
                self.tests[run.number] = {**final, "run_id": run.run_id}
            now = int(time.time() * 1000)
            tags = [_tag("optuna.trial_state", OPTUNA_STATE[state])] if run.number is not None else []
            tags += _reason_tags(state, status, reason)
            self.call(key, "log_batch", run.run_id, tags=tags, params=run.take_params(),
                      metrics=_epoch_metrics(epochs) + [_metric(k, v, now, step) for k, v in final.items()])
            folder = folder or tempfile.mkdtemp(prefix="nnsweep-run-")
            self._write_run_files(run, folder)
            self.trouble.call(key, self._artifacts(run).log_artifacts, folder)
            self.call(key, "set_terminated", run.run_id, status)
            self.runs.pop(key, None)
        finally:
            if folder:
                shutil.rmtree(folder, ignore_errors=True)

    def _artifacts(self, run: _OpenRun):
        """The run's artifact repository, from the URI create_run returned: ``client.log_artifacts``
        would first read the whole run back (params, tags, metrics) to learn it, ~35 ms a trial."""
        from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository
        return get_artifact_repository(run.artifact_uri, tracking_uri=self.settings.uri)

    def _open(self, key) -> _OpenRun:
        if key not in self.runs:
            self.trouble.skipped += 1
            self.trouble.lost(key)
            raise _Lost
        return self.runs[key]

    def _write_run_files(self, run: _OpenRun, folder: str) -> None:
        """``config.yaml`` (the resolved config) and ``curves.png`` into ``folder``."""
        if run.container:  # = OmegaConf.to_yaml of the resolved config, at a fifth of the cost
            Path(folder, "config.yaml").write_text(yaml.dump(run.container, Dumper=YAML_DUMPER, sort_keys=False))
        if self.settings.log_plots and run.epochs:
            title = f"trial {run.number}" if run.number is not None else "train"
            last = run.epochs[-1][1].get("val_cost")
            if last is not None:
                title += f": val_cost {last:.4g} after {run.epochs[-1][0]} epochs"
            render_curves(run.epochs, os.path.join(folder, "curves.png"), title)

    def finish(self, closed: bool) -> None:
        """Runs still open when this process stops are ended: a child whose trial never ended KILLED;
        the parent FINISHED when the owner closed without a summary (``closed``), else KILLED."""
        why = "its trial never ended" if closed else "the process that ran it ended without closing it"
        for key, run in list(self.runs.items()):
            with contextlib.suppress(_Lost):
                self.call(key, "log_batch", run.run_id, params=run.take_params(), tags=[_tag("killed_reason", why)])
                self.call(key, "set_terminated", run.run_id, "KILLED")
            self.runs.pop(key, None)
        if self.parent_open:
            with contextlib.suppress(_Lost):
                self.call("study", "set_terminated", self.parent, "FINISHED" if closed else "KILLED")


def _store_lock(uri: str):
    """An flock beside a SQLite store (MLflow creates its tables on first use: two processes at once
    collide); nothing for other stores."""
    path = sqlite_file(uri)
    return contextlib.nullcontext() if path is None else file_lock(path + ".init-lock")


def fetch_run(uri: str, run_id: str, metrics: tuple[str, ...]) -> tuple[dict, dict[str, list[tuple[int, float]]]]:
    """What run ``run_id`` in ``uri`` logged: its resolved config (the ``config.yaml`` artifact) and the
    per-epoch history of ``metrics``, {name: [(epoch, value)]} in epoch order. ``TrackingError`` (one
    line naming the run) when the store, the run or its config cannot be had."""
    uri = absolute_uri(uri)
    check_reachable(uri)
    path = sqlite_file(uri)
    if path is not None and not os.path.exists(path):
        raise TrackingError(f"replay={run_id}: no such run in tracking.uri={mask_password(uri)} (no such file)")
    _quiet_mlflow()
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    try:
        client.get_run(run_id)
    except Exception as err:
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise TrackingError(f"replay={run_id}: no such run in tracking.uri={mask_password(uri)} ({reason})") from None
    try:
        with tempfile.TemporaryDirectory(prefix="nnsweep-replay-") as folder:
            stored = yaml.safe_load(Path(client.download_artifacts(run_id, "config.yaml", folder)).read_text())
        curves = {name: sorted((m.step, m.value) for m in client.get_metric_history(run_id, name)) for name in metrics}
    except Exception as err:
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise TrackingError(f"replay={run_id}: cannot read its config.yaml and curves: {reason}") from None
    if not isinstance(stored, dict):
        raise TrackingError(f"replay={run_id}: its config.yaml holds no config")
    return stored, curves


def _short(value) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _is_result(name: str) -> bool:
    """A metric of a trained net (not a bookkeeping attr such as pid or seed)."""
    return (name in EPOCH_METRICS[:-1] or name in ("epochs_run", "n_params", "restored_epoch")
            or name.startswith("test_"))


def _load_study(study_name: str, storage: str) -> optuna.Study:
    return optuna.load_study(study_name=study_name, storage=open_storage(storage))


def masked(node):
    """``node`` (a config as plain containers) with every URL password masked (storage, tracking URI)."""
    if isinstance(node, dict):
        return {k: masked(v) for k, v in node.items()}
    if isinstance(node, list):
        return [masked(v) for v in node]
    return mask_password(node) if isinstance(node, str) and "://" in node else node


def _study_params(container: dict) -> dict[str, Any]:
    """The parent run's params: the sweep config (passwords masked) and the study name."""
    params = {f"sweep.{k}": v for k, v in flatten(container["sweep"]).items()}
    params["study_name"] = container.get("study_name")
    params["data.name"] = container.get("data", {}).get("name")
    return params


def _environment_tags() -> dict[str, str]:
    """Where and with what the study ran: git commit, Python and package versions, host, user."""
    tags = {"host": socket.gethostname(), "version.python": platform.python_version(),
            "mlflow.source.name": "run.py", "mlflow.source.type": "LOCAL"}
    for package in VERSIONED:
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            tags[f"version.{package}"] = importlib.metadata.version(package)
    with contextlib.suppress(Exception):
        import getpass
        tags["mlflow.user"] = getpass.getuser()
    commit = git_commit(Path(__file__).resolve().parents[1])
    if commit:
        tags["mlflow.source.git.commit"] = commit
    return tags


def git_commit(folder: Path) -> str | None:
    """The commit checked out in ``folder``'s git work tree, or None (no git, no repository)."""
    try:
        out = subprocess.run(["git", "-C", str(folder), "rev-parse", "HEAD"], capture_output=True, text=True,
                             timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    commit = out.stdout.strip()
    return commit if out.returncode == 0 and commit else None


def _reason_tags(state: str, status: str, reason: str | None):
    """pruned=true, prune_reason / fail_reason (first line) and the run's description with all of it."""
    tags = []
    if state == "pruned":
        tags.append(_tag("pruned", "true"))
    if reason:
        first = reason.splitlines()[0]
        tags.append(_tag("prune_reason" if state == "pruned" else "fail_reason", first[:5000]))
        word = {"KILLED": "Stopped", "FAILED": "Failed"}.get(status, "Ended")
        body = reason if "\n" not in reason else f"{first}\n\n```\n{reason[len(first):].strip()}\n```"
        tags.append(_tag("mlflow.note.content", f"{word}: {body}"[:7900]))
    return tags


def _epoch_metrics(epochs: list) -> list:
    return [_metric(k, v, ms, step) for step, ms, values in epochs for k, v in values.items()]


def _metric(key: str, value: float, timestamp: int, step: int):
    from mlflow.entities import Metric
    value = float(value)
    return Metric(key, value if not math.isinf(value) else math.copysign(1.7e308, value), timestamp, step)


def _param(key: str, value):
    from mlflow.entities import Param
    return Param(key, str(value))


def _tag(key: str, value):
    from mlflow.entities import RunTag
    return RunTag(key, str(value))
