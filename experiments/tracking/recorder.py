"""The tracking process's side: ``Recorder`` does every MLflow call of a run.py.

It owns the only ``MlflowClient`` (made on the first record, in the tracking process: no
SQLAlchemy engine or HTTP session crosses a fork) and turns each message of the caller's
tracker into store calls: the study's parent run (created, or reopened on resume), one child
run per trial with its curves, params and tags in one ``log_batch`` and its artifacts with one
``log_artifacts``, the summary when the study ends (experiments.tracking.summary). A failed
call is counted (experiments.tracking.breaker), never raised: the study goes on.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import math
import os
import shutil
import socket
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
import yaml

from ..config import YAML_DUMPER, flatten
from ..plots import StudySnapshot, render_curves
from ..storage import claim_lock, describe, exclusive, open_storage
from ..urls import mask_password
from .breaker import Lost, Trouble
from .environment import environment_tags
from .quiet import quiet_mlflow
from .schema import (
    BEST_TAG,
    OPTUNA_STATE,
    OUTCOME_TAG,
    PARENT_ATTR,
    STORAGE_TAG,
    Settings,
    logged_results,
    objective_window,
    result_records,
    trial_outcome,
    trial_run_name,
    window_means,
)
from .store import save_template, seed_store, store_lock
from .summary import study_summary

_log = logging.getLogger(__name__)


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


class Recorder:
    """Every MLflow call: one client, the parent run of the study, the open child runs."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.trouble = Trouble()
        self._client = None
        self._experiment_id: str | None = None
        self.parent: str | None = None
        self.parent_open = False  # the parent is RUNNING because of this process
        self.study_name: str | None = None
        self.storage: str | None = None
        self.container: dict = {}
        self.runs: dict[Any, _OpenRun] = {}
        self.tests: dict[int, dict] = {}  # trial number -> its final and test metrics
        self.train_run: tuple[str, str] | None = None  # (run id, run name) of a ``mode=train`` run
        self.replaying = False  # a record sent again (experiments.tracking.spool): a trial's run may exist
        self._warm = False
        self.busy: dict[str, float] = {}  # wall seconds per message kind (and "connect", within the first)
        self.cpu: dict[str, float] = {}  # CPU seconds per message kind (and "connect")
        self.count: dict[str, int] = {}

    # -- plumbing
    def client(self):
        if self._client is None:
            start, cpu = time.perf_counter(), time.process_time()
            from mlflow.tracking import MlflowClient
            quiet_mlflow()  # importing MLflow set its logger's level
            with store_lock(self.settings.uri):  # several run.py on one SQLite file: one makes its tables
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
        except Lost:
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
        with contextlib.suppress(Lost):  # the experiment's description is a nicety: a lost one is counted
            for key, value in experiment_tags(study_name, container).items():
                self.call("study", "set_experiment_tag", self._experiment_id, key, value)
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
                STORAGE_TAG: describe(self.storage), **environment_tags()}
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
        tags.append(_tag(STORAGE_TAG, describe(self.storage)))
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
        self._record_runless_dead_trials(trials.values())

    def _record_runless_dead_trials(self, trials) -> None:
        """A KILLED run with a ``killed_reason`` for each dead trial (FAIL without a ``fail_reason``) whose
        worker died before it made the trial's run: every trial has one. Under a lock of the study's, so
        that two workers ending together make one."""
        dead = [t.number for t in trials
                if t.state == optuna.trial.TrialState.FAIL and "fail_reason" not in t.user_attrs]
        if not dead:
            return
        with exclusive(self.storage, f"runs:{self.study_name}"):
            for number in dead:
                if self._trial_run(number, "study") is not None:
                    continue
                tags = {"optuna.study": str(self.study_name), "optuna.trial_number": str(number),
                        "optuna.trial_state": "FAIL", "mlflow.parentRunId": self.parent,
                        "killed_reason": "the process that ran it was killed before it made the trial's run"}
                run = self.call("study", "create_run", self._experiment_id, tags=tags, run_name=trial_run_name(number))
                self.call("study", "set_terminated", run.info.run_id, "KILLED")

    def on_study_end(self, interrupted: bool, folder: str) -> None:
        """The summary, then ``folder`` (plots/, trials.csv: see ``draw_study_files``) as artifacts."""
        if self.parent is None:
            return
        study = StudySnapshot(self.study_name, open_storage(self.storage))
        metrics, tags, note = study_summary(study, list(self.container["sweep"]["objective"]["metrics"]),
                                            self._child_metrics, self._experiment_id)
        now, step = int(time.time() * 1000), len(study.trials)
        self.call("study", "log_batch", self.parent, metrics=[_metric(k, v, now, step) for k, v in metrics.items()],
                  tags=[_tag(k, v) for k, v in tags.items()] + [_tag("mlflow.note.content", note)])
        with contextlib.suppress(Lost):  # the summary is written; a lost mark is counted, not fatal
            self._mark_best(tags.get("best.run_id"))
        if os.listdir(folder):
            self.call("study", "log_artifacts", self.parent, folder)
        with contextlib.suppress(Lost):  # a worker that died during the study (its trial was retried)
            self._close_stale_children(study)
        self.call("study", "set_terminated", self.parent, "KILLED" if interrupted else "FINISHED")
        self.parent_open = False

    def _mark_best(self, run_id: str | None) -> None:
        """Tag ``best=true`` on the best trial's run (``run_id``; None: no single best) and on no other:
        a resumed study that found a better trial moves the tag."""
        marked = self.call("study", "search_runs", [self._experiment_id],
                           f"tags.`mlflow.parentRunId` = '{self.parent}' and tags.`{BEST_TAG}` = 'true'")
        for run in marked:
            if run.info.run_id != run_id:
                self.call("study", "delete_tag", run.info.run_id, BEST_TAG)
        if run_id is not None and run_id not in {r.info.run_id for r in marked}:
            self.call("study", "set_tag", run_id, BEST_TAG, "true")

    def _child_metrics(self, number: int) -> dict:
        """The final and test metrics of trial ``number``'s run (and its ``run_id``)."""
        if number in self.tests:
            return dict(self.tests[number])
        with contextlib.suppress(Lost):
            run = self._trial_run(number, "study")
            if run is not None:
                data = run.data
                return {**data.metrics, **logged_results(data.metrics, data.params, data.tags),
                        "run_id": run.info.run_id}
        return {}

    # -- trials
    def on_trial_start(self, key, number: int | None, container: dict, pid: int) -> None:
        self.runs.pop(key, None)
        container = masked(container)
        if number is None:  # unique: two runs of one multirun start within a second
            run_name = time.strftime("train-%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6]
            tags = {"mlflow.runName": run_name, **environment_tags()}
        else:
            run_name = trial_run_name(number)
            tags = {"mlflow.runName": run_name, "optuna.study": str(self.study_name),
                    "optuna.trial_number": str(number), "optuna.trial_state": "RUNNING",
                    "host": socket.gethostname(), "pid": str(pid)}
            if self.parent is not None:
                tags["mlflow.parentRunId"] = self.parent
        seed = container.get("train", {}).get("seed")
        if seed is not None:
            tags["seed"] = str(seed)
        run = self._trial_run(number) if self.replaying and number is not None else None
        if run is None:
            run = self.call(key, "create_run", self.experiment_id(key), tags=tags, run_name=run_name)
        if number is None:
            self.train_run = (run.info.run_id, run_name)
        params = [_param(k, v) for k, v in (flatten(container) if container else {}).items()]
        # The params go with the first curve batch (a flush, or the trial's end): one store call
        # less per trial (a batch costs ~5 ms CPU on SQLite, whatever it holds).
        self.runs[key] = _OpenRun(run.info.run_id, run.info.artifact_uri, number, container, params=params)

    def _trial_run(self, number: int, key=None):
        """Trial ``number``'s run under this study's parent, if one was made; ``key``: whose call it is
        (default: the trial's)."""
        key = number if key is None else key
        found = self.call(key, "search_runs", [self.experiment_id(key)],
                          f"tags.`mlflow.parentRunId` = '{self.parent}' and tags.`optuna.trial_number` = '{number}'",
                          max_results=1)
        return found[0] if found else None

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
            if run.number is not None:  # the UI draws KILLED and FAILED alike: the name and a tag tell them apart
                outcome = trial_outcome(state, status)
                tags += [_tag(OUTCOME_TAG, outcome), _tag("mlflow.runName", trial_run_name(run.number, outcome))]
            # final numbers as tags and a param, the objective's value as the one metric: the UI's
            # Model metrics tab then leads with the curves (schema.result_records)
            window = objective_window(run.container)
            metrics, params, results = result_records(
                final, run.epochs[-1][1] if run.epochs else {},
                objective_metrics(run.container) if state == "complete" else [],
                window_means([values for _, values in run.epochs], window) if window > 1 else None)
            self.call(key, "log_batch", run.run_id, tags=tags + [_tag(k, v) for k, v in results.items()],
                      params=run.take_params() + [_param(k, v) for k, v in params.items()],
                      metrics=_epoch_metrics(epochs) + [_metric(k, v, now, step) for k, v in metrics.items()])
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
            raise Lost
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
            with contextlib.suppress(Lost):
                self.call(key, "log_batch", run.run_id, params=run.take_params(), tags=[_tag("killed_reason", why)])
                self.call(key, "set_terminated", run.run_id, "KILLED")
            self.runs.pop(key, None)
        if self.parent_open:
            with contextlib.suppress(Lost):
                self.call("study", "set_terminated", self.parent, "FINISHED" if closed else "KILLED")


def _load_study(study_name: str, storage: str) -> optuna.Study:
    return optuna.load_study(study_name=study_name, storage=open_storage(storage))


def masked(node):
    """``node`` (a config as plain containers) with every URL password masked (storage, tracking URI)."""
    if isinstance(node, dict):
        return {k: masked(v) for k, v in node.items()}
    if isinstance(node, list):
        return [masked(v) for v in node]
    return mask_password(node) if isinstance(node, str) and "://" in node else node


def experiment_tags(study_name: str, container: dict) -> dict[str, str]:
    """The MLflow experiment's tags: ``study``, ``data``, ``objective``, and its description (shown above
    the run list)."""
    objective = container.get("sweep", {}).get("objective", {})
    goal = ", ".join(f"{d} {m}" for m, d in zip(objective.get("metrics", []), objective.get("directions", [])))
    data = str(container.get("data", {}).get("name"))
    note = (f"Optuna study **{study_name}** on the data set `{data}`, objective: {goal}. One parent run named "
            f"`{study_name}` (its description names the best trial and links to it) with one child run per trial; "
            "the best trial's run is tagged `best=true` (search `tags.best = \"true\"`).")
    return {"study": study_name, "data": data, "objective": goal, "mlflow.note.content": note}


def objective_metrics(container: dict) -> list[str]:
    """The metric names of the objective of a run's config (``sweep.objective.metrics``; none without one)."""
    return list(container.get("sweep", {}).get("objective", {}).get("metrics", []))


def _study_params(container: dict) -> dict[str, Any]:
    """The parent run's params: the sweep config (passwords masked) and the study name."""
    params = {f"sweep.{k}": v for k, v in flatten(container["sweep"]).items()}
    params["study_name"] = container.get("study_name")
    params["data.name"] = container.get("data", {}).get("name")
    return params


def _reason_tags(state: str, status: str, reason: str | None):
    """pruned=true, prune_reason / killed_reason (retried) / fail_reason (first line) and the run's
    description with all of it."""
    tags = []
    if state == "pruned":
        tags.append(_tag("pruned", "true"))
    if reason:
        first = reason.splitlines()[0]
        name = {"pruned": "prune_reason", "retried": "killed_reason"}.get(state, "fail_reason")
        tags.append(_tag(name, first[:5000]))
        word = "Pruned" if state == "pruned" else {"KILLED": "Stopped", "FAILED": "Failed"}.get(status, "Ended")
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
