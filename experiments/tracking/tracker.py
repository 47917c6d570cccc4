"""The caller's side of tracking: the tracker a study and its trials report to.

A tracker receives the life of a study and its trials: ``start_study`` → per trial
``start_trial`` → ``log_epoch`` per epoch → ``end_trial`` → ``end_study`` → ``close``.
``NullTracker`` records nothing (``tracking=none``); ``MlflowTracker`` records one parent run
per study and one nested child run per trial in ``cfg.tracking.uri``.

Cost: the trial code never waits for MLflow. ``MlflowTracker`` checks the store is reachable
(a few ms, no MLflow import), then hands each record as one small message to the tracking
process (experiments.tracking.process: run.py forks it as it starts, else the first record
does), which does every call. Forked sweep workers that were handed the tracker write to the
same process. The study's plots are drawn by processes forked from the caller's side
(``experiments.plots.draw_study_files``: Optuna and scikit-learn are loaded there already)
while the tracking process writes the last trials' records. ``close`` waits until everything
is written and returns what could not be (``problems``): a store that stops answering never
fails a trial, the Optuna study records every trial regardless.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import shutil
import tempfile
import time
from typing import Any

import numpy as np
from omegaconf import OmegaConf

from ..config import split_seed
from ..plots import draw_study_files
from .process import Link
from .reachable import check_reachable
from .schema import EPOCH_METRICS, final_metrics, run_status, settings_of

CLOSE_TIMEOUT = 300.0  # seconds ``close`` waits for the tracking process to write what it was sent

_log = logging.getLogger(__name__)


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

    def train_run(self) -> tuple[str, str] | None:
        """(run id, run name) of the ``mode=train`` run recorded: none here."""
        return None


def make_tracker(cfg) -> NullTracker | MlflowTracker:
    """The tracker ``cfg.tracking`` asks for."""
    if not cfg.tracking.enabled:
        return NullTracker()
    return MlflowTracker(cfg)


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
        from ..data import load_dataset  # here: the tracking process imports this module, never scikit-learn

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

    def train_run(self) -> tuple[str, str] | None:
        """(run id, run name) of the ``mode=train`` run recorded; None before ``close`` or without one."""
        run = (self._report or {}).get("train_run")
        return None if run is None else tuple(run)

    def problems(self) -> str | None:
        """One line on what could not be recorded, or None. Call after ``close``."""
        report = self._report or {}
        parts = []
        if report.get("timeout"):
            parts.append(f"the tracking process did not finish within {CLOSE_TIMEOUT:.0f} s")
        if report.get("kept"):
            parts.append(f"{report['kept']} records wait in {report['spool']} for the server to answer: the next "
                         "run.py started in this launch dir sends them")
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
                self._link = Link(self.settings)
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
