"""Read what the sweeps stored into tidy pandas frames: studies, trials, curves, configs, weights.

Where things are read from:

- ``tracking_uri``: the MLflow store (default ``sqlite:///mlflow.db`` of the current directory,
  as ``python run.py`` writes it). A study is its **parent run** (tag ``optuna.study``, no parent
  of its own); its trials are the child runs tagged ``optuna.trial_number``. Child runs tagged
  ``kind=seed-robustness`` (:mod:`analysis.seeds`) are no trials and are left out here.
- ``storage``: the Optuna storage. Default: the one the study's parent run names in its
  ``sweep.storage`` param (a journal file relative to the current directory, or a database
  URL), when it can be found; without it the frames are built from MLflow alone.

Curves come from MLflow's ``metrics`` table, read with one SQL query when the store is SQLite
(0.3 s for 200 trials × 100 epochs × 4 metrics, where one ``get_metric_history`` call per run and
metric takes 4.7 s: ``python benchmarks/bench_analysis.py``), and with
``MlflowClient.get_metric_history`` in a thread pool for other stores (an ``mlflow server``).

Frames
------
``load_trials``: one row per trial, sorted by ``trial``: ``trial``, ``state`` (Optuna's name:
COMPLETE, PRUNED, FAIL, RUNNING), ``value`` (the objective; ``value_0``, ``value_1``, ... for
several), one column per searched hyperparameter named by its config key (``optimizer``,
``optimizer.lr``, ...), any ``config_keys`` asked for, the final metrics (``train_cost``,
``val_cost``, ``train_accuracy``, ``val_accuracy``, ``test_cost``, ``test_accuracy``,
``epochs_run``, ``n_params``, and ``restored_epoch``: with ``train.restore_best`` the result is that
epoch's, not the curves' last; MLflow keeps these as the runs' tags and ``n_params`` param, or as
one-step metrics in runs logged before that layout: both are read), ``seed``, ``duration_s``,
``reason`` (why it was pruned or failed) and ``run_id`` (its MLflow run; missing when tracking lost it).

``load_curves``: the long frame of :mod:`analysis.convergence`: ``trial`` (int), ``epoch`` (int,
1-based), ``metric`` (str), ``value`` (float), one row per (trial, epoch, metric), sorted.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import math
import os
import tempfile
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from omegaconf import DictConfig, OmegaConf

import nncore
from experiments.storage import describe, is_rdb, open_storage
from experiments.tracking import EPOCH_METRICS, PARENT_ATTR, STORAGE_TAG, logged_results, run_result, value_names
from experiments.urls import absolute_uri, mask_password, sqlite_file

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"
CURVE_METRICS = EPOCH_METRICS  # train_cost, val_cost, train_accuracy, val_accuracy, time
FINAL_METRICS = ("train_cost", "val_cost", "train_accuracy", "val_accuracy", "test_cost", "test_accuracy",
                 "epochs_run", "n_params", "restored_epoch")
SEED_KIND = "seed-robustness"  # tag ``kind`` of the runs analysis.seeds adds under a study's parent run
TRIAL_TAG = "optuna.trial_number"
PARENT_TAG = "mlflow.parentRunId"
SQL_CHUNK = 500  # run ids per ``IN (...)`` list: far below SQLite's limit of bound variables


class StudyNotFoundError(LookupError):
    """No such study (or experiment) in the store; the message lists the ones there are."""


class EmptyStudyError(LookupError):
    """The study exists but holds no trial yet."""


class StudyStorageError(LookupError):
    """The study's Optuna storage cannot be found, or holds another study of the same name."""


class ArtifactsNotFoundError(FileNotFoundError):
    """A run's artifact cannot be read: never logged, or its files moved or deleted since."""


NO_STORAGE = "none"  # ``storage=`` value: read MLflow's records alone, without the Optuna storage


@dataclass(frozen=True)
class StudyRecord:
    """Where one study is recorded: its MLflow parent run and its Optuna storage."""

    name: str
    tracking_uri: str          # absolute (a relative sqlite path made absolute)
    experiment: str
    experiment_id: str
    parent_run_id: str
    start_time: pd.Timestamp
    storage: str | None        # the Optuna storage, None when it cannot be found
    objective: tuple[str, ...] = ("val_cost",)
    directions: tuple[str, ...] = ("minimize",)
    searched: tuple[str, ...] = ()  # the searched config keys, in the order of the search space
    storage_problem: str = ""  # why ``storage`` is None when the study names one (not found)
    picked: str = ""  # why this study, when none was named (the most recently active)

    def describe(self) -> str:
        """One line: the study, its experiment, its parent run and where the store is."""
        return (f"study {self.name!r} (MLflow experiment {self.experiment!r}, parent run {self.parent_run_id} in "
                f"{mask_password(self.tracking_uri)}; Optuna storage: "
                f"{describe(self.storage) if self.storage else self.storage_problem or 'not read'})"
                + (f"; picked as {self.picked}" if self.picked else ""))


# ---------------------------------------------------------------------------- the store
def client_for(tracking_uri: str = DEFAULT_TRACKING_URI):
    """An ``MlflowClient`` on ``tracking_uri``; ``StudyNotFoundError`` when a sqlite file does not exist
    (MLflow would create an empty store there)."""
    uri = absolute_uri(str(tracking_uri))
    path = sqlite_file(uri)
    if path is not None and not os.path.isfile(path):
        raise StudyNotFoundError(f"no MLflow store at {path}: run `python run.py` in that directory first, "
                                 "or point tracking_uri at the store that holds the study")
    from mlflow.tracking import MlflowClient

    return MlflowClient(uri)


def _search_all(client, experiment_ids: list[str], filter_string: str = "") -> list:
    """Every active run matching ``filter_string`` (all pages)."""
    runs, token = [], None
    while True:
        page = client.search_runs(experiment_ids, filter_string, max_results=1000, page_token=token)
        runs.extend(page)
        token = page.token
        if not token:
            return runs


def list_studies(tracking_uri: str = DEFAULT_TRACKING_URI, experiment: str | None = None) -> pd.DataFrame:
    """The studies recorded in the store, oldest first: ``study``, ``experiment``, ``experiment_id``,
    ``parent_run_id``, ``status``, ``start_time``, ``last_active`` (when its parent run last started
    or ended: a resumed study is active again), ``storage`` (its Optuna storage as the parent run
    records it: an absolute path or a masked URL; older runs: the ``sweep.storage`` param as given).

    ``experiment``: only that MLflow experiment (``StudyNotFoundError`` listing the experiments
    there are when it does not exist)."""
    client = client_for(tracking_uri)
    experiments = {e.experiment_id: e.name for e in client.search_experiments()}
    if experiment is not None:
        ids = [i for i, name in experiments.items() if name == experiment]
        if not ids:
            raise StudyNotFoundError(f"no MLflow experiment {experiment!r} in {mask_password(client.tracking_uri)}; "
                                     f"experiments there: {', '.join(sorted(experiments.values())) or 'none'}")
    else:
        ids = list(experiments)
    runs = _search_all(client, ids, f"tags.`{PARENT_TAG}` IS NULL") if ids else []
    rows = [{"study": r.data.tags["optuna.study"], "experiment": experiments.get(r.info.experiment_id),
             "experiment_id": r.info.experiment_id, "parent_run_id": r.info.run_id, "status": r.info.status,
             "start_time": pd.Timestamp(r.info.start_time, unit="ms"),
             "last_active": pd.Timestamp(max(r.info.start_time or 0, r.info.end_time or 0), unit="ms"),
             "storage": r.data.tags.get(STORAGE_TAG) or r.data.params.get("sweep.storage")}
            for r in runs if "optuna.study" in r.data.tags]
    columns = ["study", "experiment", "experiment_id", "parent_run_id", "status", "start_time", "last_active",
               "storage"]
    frame = pd.DataFrame(rows, columns=columns)
    return frame.sort_values("start_time", kind="stable").reset_index(drop=True)


def find_study(study: str | StudyRecord | None = None, tracking_uri: str = DEFAULT_TRACKING_URI,
               storage: str | None = None, experiment: str | None = None) -> StudyRecord:
    """The record of study ``study`` (a name; None: the most recently active study, see ``picked``).

    ``storage``: the Optuna storage (default: the one the parent run records, looked for beside a
    SQLite store, then in the current directory; ``"none"``: MLflow's records alone). A storage
    whose study of that name was made for another parent run raises ``StudyStorageError`` naming
    both; one that cannot be found leaves ``storage`` None with the reason in ``storage_problem``.
    ``StudyNotFoundError`` names the studies (and experiments) that exist when there is no such
    study. A ``StudyRecord`` is returned as it is.
    """
    if isinstance(study, StudyRecord):
        return study
    studies = list_studies(tracking_uri, experiment)
    where = mask_password(absolute_uri(str(tracking_uri)))
    picked = ""
    if study is None:
        if studies.empty:
            raise StudyNotFoundError(f"no study is recorded in {where}: run `python run.py` first")
        row = studies.sort_values("last_active", kind="stable").iloc[-1]
        if len(studies) > 1:
            picked = (f"the most recently active of {len(studies)} studies in {where} (last active "
                      f"{row['last_active']:%Y-%m-%d %H:%M:%S}); name another with --study")
    else:
        matches = studies.loc[studies["study"] == study]
        if matches.empty:
            raise StudyNotFoundError(f"no study {study!r} in {where}" + (f" (experiment {experiment!r})"
                                     if experiment else "") + "; " + _listing(studies, storage, tracking_uri))
        row = matches.iloc[-1]
        if len(matches) > 1:  # the study's parent run may have been made again: Optuna knows which is its own
            own = _optuna_parent(str(study), _resolve_storage(storage, row["storage"], tracking_uri)[0])
            if own in set(matches["parent_run_id"]):
                row = matches.loc[matches["parent_run_id"] == own].iloc[-1]
    found, problem = _resolve_storage(storage, row["storage"], tracking_uri)
    if found is not None:
        _check_owner(str(row["study"]), found, str(row["parent_run_id"]), where)
    client = client_for(tracking_uri)
    params = client.get_run(row["parent_run_id"]).data.params
    searched = tuple(k[len("sweep.params."):] for k in params if k.startswith("sweep.params."))
    return StudyRecord(
        name=str(row["study"]), tracking_uri=absolute_uri(str(tracking_uri)), experiment=str(row["experiment"]),
        experiment_id=str(row["experiment_id"]), parent_run_id=str(row["parent_run_id"]),
        start_time=row["start_time"], storage=found,
        objective=tuple(_parse_list(params.get("sweep.objective.metrics"), ["val_cost"])),
        directions=tuple(_parse_list(params.get("sweep.objective.directions"), ["minimize"])),
        searched=searched, storage_problem=problem, picked=picked)


def _resolve_storage(given: str | None, recorded, tracking_uri: str) -> tuple[str | None, str]:
    """(the storage to read, or None; why it is None when a storage was named but not found)."""
    if given is not None and str(given).lower() == NO_STORAGE:
        return None, ""
    if given is not None:
        found = _usable_storage(given)
        return found, "" if found else f"the Optuna storage {describe(str(given))} does not exist"
    found = _usable_storage(recorded, tracking_uri)
    if found is not None or recorded is None or (isinstance(recorded, float) and math.isnan(recorded)):
        return found, ""
    return None, (f"its parent run records the Optuna storage {mask_password(str(recorded))}, which is not there"
                  + ("" if is_rdb(str(recorded)) else " (looked beside the MLflow store and in the current directory)"))


def _check_owner(name: str, storage: str, parent_run_id: str, where: str) -> None:
    """``StudyStorageError`` unless ``storage`` holds study ``name`` made for the parent run ``parent_run_id``."""
    study = _load_optuna(name, storage)
    if study is None:
        raise StudyStorageError(f"the Optuna storage {describe(storage)} holds no study {name!r}, recorded in "
                                f"{where} (parent run {parent_run_id}); pass the study's own storage (--storage)")
    own = study.user_attrs.get(PARENT_ATTR)
    if own != parent_run_id:
        raise StudyStorageError(f"the Optuna storage {describe(storage)} holds a study {name!r} made for parent run "
                                f"{own}, not for parent run {parent_run_id} in {where}: another study of the same "
                                "name; pass the study's own storage (--storage)")


def storage_or_raise(record: StudyRecord) -> str | None:
    """``record.storage``; ``StudyStorageError`` when the study names a storage that was not found."""
    if record.storage is None and record.storage_problem:
        raise StudyStorageError(f"study {record.name!r}: {record.storage_problem}; pass its storage (--storage PATH),"
                                f" or --storage {NO_STORAGE} to read MLflow's records alone")
    return record.storage


def _listing(studies: pd.DataFrame, storage: str | None, tracking_uri: str) -> str:
    """'studies recorded there: a (experiment x, started ...), ...' plus the Optuna storage's studies."""
    if studies.empty:
        text = "no study is recorded there"
    else:
        text = "studies recorded there: " + ", ".join(
            f"{r.study} (experiment {r.experiment}, started {r.start_time:%Y-%m-%d %H:%M})"
            for r in studies.itertuples())
    candidates = [storage] if storage else [*studies["storage"].dropna().unique(), "optuna.journal"]
    for candidate in dict.fromkeys(c for c in (_usable_storage(c, tracking_uri) for c in candidates) if c):
        names = _optuna_names(candidate)
        if names:
            text += f"; Optuna storage {describe(candidate)} holds: {', '.join(names)}"
    return text


def _usable_storage(storage, tracking_uri: str | None = None) -> str | None:
    """``storage`` when it can be opened without creating anything: a database URL with no masked
    password, or a journal file that exists, as an absolute path. With ``tracking_uri`` a relative
    journal path is looked for beside a SQLite MLflow store first (``python run.py`` writes both in
    the directory it runs in), then in the current directory. None otherwise."""
    if storage is None or (isinstance(storage, float) and math.isnan(storage)):
        return None
    storage = str(storage)
    if is_rdb(storage):
        return None if "***" in storage else storage
    path = Path(os.path.expanduser(storage))
    candidates = [path]
    store = sqlite_file(absolute_uri(str(tracking_uri))) if tracking_uri else None
    if not path.is_absolute() and store is not None:
        candidates.insert(0, Path(store).parent / path)
    found = next((c for c in candidates if c.is_file()), None)
    return str(found.resolve()) if found is not None else None


def _optuna_names(storage: str | None) -> list[str]:
    if storage is None:
        return []
    import optuna

    with contextlib.suppress(Exception):
        return sorted(optuna.get_all_study_names(open_storage(storage)))
    return []


def _optuna_parent(name: str, storage: str | None) -> str | None:
    study = _load_optuna(name, storage)
    return None if study is None else study.user_attrs.get(PARENT_ATTR)


def _load_optuna(name: str, storage: str | None):
    if storage is None:
        return None
    import optuna

    try:
        return optuna.load_study(study_name=name, storage=open_storage(storage))
    except KeyError:
        return None


def load_optuna_study(study: str | StudyRecord | None = None, tracking_uri: str = DEFAULT_TRACKING_URI,
                      storage: str | None = None, experiment: str | None = None):
    """The ``optuna.Study`` of a recorded study; None with ``storage="none"``. ``StudyStorageError`` when
    the storage it names cannot be found or holds another study of its name."""
    record = find_study(study, tracking_uri, storage, experiment)
    return _load_optuna(record.name, storage_or_raise(record))


# ---------------------------------------------------------------------------- trials
def _parse_value(text):
    """An MLflow param (always a string) as the value it was: int, float, bool, None, list or str."""
    if not isinstance(text, str):
        return text
    for kind in (int, float):
        with contextlib.suppress(ValueError):
            return kind(text)
    with contextlib.suppress(yaml.YAMLError):
        value = yaml.safe_load(text)
        if value is None or isinstance(value, (bool, list)):
            return value
    return text


def _parse_list(text, default: list) -> list:
    value = _parse_value(text) if text is not None else None
    return [str(v) for v in value] if isinstance(value, list) and value else default


def child_runs(client, record: StudyRecord) -> tuple[list, list]:
    """(trial runs, seed-robustness runs) under the study's parent run."""
    runs = _search_all(client, [record.experiment_id], f"tags.`{PARENT_TAG}` = '{record.parent_run_id}'")
    seeds = [r for r in runs if r.data.tags.get("kind") == SEED_KIND]
    trials = [r for r in runs if TRIAL_TAG in r.data.tags and r.data.tags.get("kind") != SEED_KIND
              and r.data.tags[TRIAL_TAG].isdigit()]
    return trials, seeds


def _config_value(params: dict, key: str):
    """A config key's value among a run's flat params; a config group (``optimizer``) is its ``.name``."""
    if key in params:
        return _parse_value(params[key])
    return _parse_value(params.get(f"{key}.name"))


def _mlflow_trials(runs: list, record: StudyRecord, keys: list[str]) -> pd.DataFrame:
    rows, names = [], value_names(len(record.objective))
    for run in runs:
        tags, metrics = run.data.tags, _results(run.data)
        row = {"trial": int(tags[TRIAL_TAG]), "state": tags.get("optuna.trial_state"), "run_id": run.info.run_id,
               "_start": run.info.start_time or 0}
        complete = row["state"] == "COMPLETE"  # only a complete trial has an objective value
        logged = [run.data.metrics.get(name) for name in names]  # the objective as Optuna was told it
        if None in logged:  # runs logged before the value metric: the objective's metrics themselves
            logged = [metrics.get(m) for m in record.objective]
        row.update({name: v if complete else None for name, v in zip(names, logged)})
        row.update({k: _config_value(run.data.params, k) for k in keys})
        row.update({m: metrics[m] for m in FINAL_METRICS if m in metrics})
        row["seed"] = _parse_value(tags.get("seed"))
        if run.info.end_time and run.info.start_time:
            row["duration_s"] = (run.info.end_time - run.info.start_time) / 1000
        row["reason"] = tags.get("prune_reason") or tags.get("fail_reason")
        rows.append(row)
    frame = pd.DataFrame(rows)
    if frame.empty:
        return frame
    # a trial recorded twice (a parent run made again): its latest run
    frame = frame.sort_values("_start", kind="stable").drop_duplicates("trial", keep="last")
    return frame.drop(columns="_start")


def _results(data) -> dict[str, float]:
    """A trial run's latest metrics and final numbers (``data``: its ``RunData``), the kept epoch's values
    (``restored_<name>``, ``train.restore_best``) in place of the curves' last points. The final numbers
    are params and tags, or one-step metrics in runs logged before (``logged_results`` reads both)."""
    return run_result(logged_results(data.metrics, data.params, data.tags), data.metrics)


def _optuna_trials(study, keys: list[str]) -> pd.DataFrame:
    rows = []
    for t in study.get_trials(deepcopy=False):
        row = {"trial": t.number, "state": t.state.name}
        values = t.values or [None] * len(study.directions)
        if len(values) == 1:
            row["value"] = values[0]
        else:
            row.update({f"value_{i}": v for i, v in enumerate(values)})
        row.update({k: t.params[k] for k in keys if k in t.params})
        row.update({m: t.user_attrs[m] for m in FINAL_METRICS if m in t.user_attrs})
        row["seed"] = t.user_attrs.get("seed")
        if t.duration is not None:
            row["duration_s"] = t.duration.total_seconds()
        row["reason"] = t.user_attrs.get("prune_reason") or t.user_attrs.get("fail_reason")
        rows.append(row)
    return pd.DataFrame(rows)


def load_trials(study: str | StudyRecord | None = None, tracking_uri: str = DEFAULT_TRACKING_URI,
                storage: str | None = None, experiment: str | None = None, config_keys=()) -> pd.DataFrame:
    """One row per trial of ``study`` (see the module's docstring for the columns).

    Optuna's record (state, objective, sampled values, its user attrs) wins over MLflow's where
    both have a value; MLflow adds the run id, the test metrics and the values of ``config_keys``
    (config keys that were not searched, e.g. ``"model.activation"``; a config group such as
    ``"optimizer"`` reads its ``.name``). ``EmptyStudyError`` when the study has no trial.
    """
    record = find_study(study, tracking_uri, storage, experiment)
    client = client_for(record.tracking_uri)
    optuna_study = _load_optuna(record.name, storage_or_raise(record))
    searched = list(record.searched)
    if optuna_study is not None:
        for t in optuna_study.get_trials(deepcopy=False):
            searched += [k for k in t.params if k not in searched]
    keys = searched + [k for k in config_keys if k not in searched]
    runs, _ = child_runs(client, record)
    from_mlflow = _mlflow_trials(runs, record, keys)
    from_optuna = _optuna_trials(optuna_study, searched) if optuna_study is not None else pd.DataFrame()
    if from_mlflow.empty and from_optuna.empty:
        raise EmptyStudyError(f"study {record.name!r} is empty: it has no trial yet (parent run "
                              f"{record.parent_run_id} in {mask_password(record.tracking_uri)}); run "
                              f"`python run.py study_name={record.name}` to add trials")
    if from_optuna.empty:
        frame = from_mlflow
    elif from_mlflow.empty:
        frame = from_optuna
    else:
        frame = from_optuna.set_index("trial").combine_first(from_mlflow.set_index("trial")).reset_index()
    values = [c for c in frame.columns if c == "value" or c.startswith("value_")]
    order = ["trial", "state", *values, *keys, *FINAL_METRICS, "seed", "duration_s", "reason", "run_id"]
    for column in order:
        if column not in frame.columns:
            frame[column] = None if column in ("reason", "run_id") else np.nan
    frame = frame[order].sort_values("trial", kind="stable").reset_index(drop=True)
    frame["trial"] = frame["trial"].astype(np.int64)
    return frame.astype({m: np.float64 for m in FINAL_METRICS})


def top_trials(trials: pd.DataFrame, k: int, direction: str = "minimize", column: str = "value") -> pd.DataFrame:
    """The ``k`` best COMPLETE trials of a :func:`load_trials` frame by ``column``, best first."""
    complete = trials.loc[(trials["state"] == "COMPLETE") & trials[column].notna()]
    ordered = complete.sort_values([column, "trial"], ascending=[direction == "minimize", True], kind="stable")
    return ordered.head(k).reset_index(drop=True)


# ---------------------------------------------------------------------------- curves
def trial_runs(study: str | StudyRecord | None = None, tracking_uri: str = DEFAULT_TRACKING_URI,
               experiment: str | None = None) -> pd.DataFrame:
    """``run_id``, ``trial`` of every trial run of the study (seed-robustness runs left out)."""
    record = find_study(study, tracking_uri, None, experiment)
    path = sqlite_file(record.tracking_uri)
    if path is not None:
        rows = _sql(path, f"""
            SELECT r.run_uuid, t.value, r.start_time FROM runs r
            JOIN tags p ON p.run_uuid = r.run_uuid AND p.key = '{PARENT_TAG}' AND p.value = :parent
            JOIN tags t ON t.run_uuid = r.run_uuid AND t.key = '{TRIAL_TAG}'
            LEFT JOIN tags k ON k.run_uuid = r.run_uuid AND k.key = 'kind'
            WHERE r.lifecycle_stage = 'active' AND (k.value IS NULL OR k.value != '{SEED_KIND}')""",
                    parent=record.parent_run_id)
        rows = [(run, int(trial), start or 0) for run, trial, start in rows if str(trial).isdigit()]
    else:
        runs, _ = child_runs(client_for(record.tracking_uri), record)
        rows = [(r.info.run_id, int(r.data.tags[TRIAL_TAG]), r.info.start_time or 0) for r in runs]
    frame = pd.DataFrame(rows, columns=["run_id", "trial", "start"])
    frame = frame.sort_values("start", kind="stable").drop_duplicates("trial", keep="last")
    return frame[["run_id", "trial"]].sort_values("trial").reset_index(drop=True)


def load_curves(study: str | StudyRecord | None = None, tracking_uri: str = DEFAULT_TRACKING_URI,
                experiment: str | None = None, metrics=CURVE_METRICS) -> pd.DataFrame:
    """Every trial's per-epoch ``metrics`` as the long frame ``trial, epoch, metric, value``.

    Exactly the values logged (a NaN logged as NaN). A value logged twice for one step keeps the
    later one. ``EmptyStudyError`` when the study has no trial run.
    """
    record = find_study(study, tracking_uri, None, experiment)
    runs = trial_runs(record)
    if runs.empty:
        raise EmptyStudyError(f"study {record.name!r} is empty: no trial run under its parent run "
                              f"{record.parent_run_id} in {mask_password(record.tracking_uri)}")
    frame = read_metrics(record.tracking_uri, runs["run_id"].tolist(), metrics)
    trial_of = dict(zip(runs["run_id"], runs["trial"]))
    frame.insert(0, "trial", frame.pop("run_id").map(trial_of).astype(np.int64))
    return frame.sort_values(["trial", "metric", "epoch"], kind="stable").reset_index(drop=True)


def read_metrics(tracking_uri: str, run_ids: list[str], metrics=CURVE_METRICS) -> pd.DataFrame:
    """The logged history of ``metrics`` of the runs ``run_ids``: ``run_id, epoch, metric, value``
    (``epoch`` = the MLflow step; for each (run, metric, step) the latest value)."""
    uri = absolute_uri(str(tracking_uri))
    metrics = [str(m) for m in metrics]
    path = sqlite_file(uri)
    if path is not None:
        rows = []
        keys = ", ".join(f"'{m}'" for m in metrics)  # metric names are ours, not user input
        for lo in range(0, len(run_ids), SQL_CHUNK):
            chunk = run_ids[lo:lo + SQL_CHUNK]
            marks = ", ".join(f":r{i}" for i in range(len(chunk)))
            rows += _sql(path, f"SELECT run_uuid, step, key, value, is_nan, timestamp FROM metrics "
                               f"WHERE key IN ({keys}) AND run_uuid IN ({marks})",
                         **{f"r{i}": r for i, r in enumerate(chunk)})
        columns = ["run_id", "epoch", "metric", "value", "is_nan", "timestamp"]
        frame = pd.DataFrame(rows, columns=columns)
        frame["value"] = np.where(frame["is_nan"].astype(bool), np.nan, frame["value"].astype(np.float64))
    else:
        frame = metric_histories(uri, run_ids, metrics)
    frame = frame.sort_values("timestamp", kind="stable").drop_duplicates(["run_id", "metric", "epoch"], keep="last")
    frame = frame.astype({"epoch": np.int64, "value": np.float64, "metric": str})
    return frame[["run_id", "epoch", "metric", "value"]].reset_index(drop=True)


def metric_histories(uri: str, run_ids: list[str], metrics: list[str], workers: int = 8) -> pd.DataFrame:
    """``MlflowClient.get_metric_history`` for every (run, metric), ``workers`` calls at a time."""
    client = client_for(uri)
    pairs = [(r, m) for r in run_ids for m in metrics]

    def history(pair):
        return [(pair[0], h.step, h.key, h.value, h.timestamp) for h in client.get_metric_history(*pair)]

    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        rows = [row for part in pool.map(history, pairs) for row in part]
    return pd.DataFrame(rows, columns=["run_id", "epoch", "metric", "value", "timestamp"])


def _sql(path: str, query: str, **params) -> list[tuple]:
    """Rows of a read-only query on the SQLite file ``path`` (SQLAlchemy, no MLflow import)."""
    import sqlalchemy

    engine = sqlalchemy.create_engine(f"sqlite:///{path}", poolclass=sqlalchemy.pool.NullPool)
    try:
        with engine.connect() as connection:
            return [tuple(row) for row in connection.execute(sqlalchemy.text(query), params)]
    finally:
        engine.dispose()


# ---------------------------------------------------------------------------- artifacts
@contextlib.contextmanager
def _downloaded(run_id: str, path: str, tracking_uri: str):
    """The local path of a run's artifact ``path`` (a file or folder), valid inside the block."""
    import mlflow.artifacts
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    uri = absolute_uri(str(tracking_uri))
    with tempfile.TemporaryDirectory(prefix="nnsweep-artifacts-") as folder:
        try:
            with _no_progress_bar():
                local = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=path, dst_path=folder,
                                                            tracking_uri=uri)
        except (MlflowException, OSError):
            where = MlflowClient(uri).get_run(run_id).info.artifact_uri
            raise ArtifactsNotFoundError(f"run {run_id}: no artifact {path} in {where} (were its files moved or "
                                         "deleted? the run records where they were written)") from None
        yield Path(local)


@contextlib.contextmanager
def _no_progress_bar():
    """MLflow draws a download progress bar on stderr unless this variable says no."""
    name = "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"
    old = os.environ.get(name)
    os.environ[name] = "false"
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = old


def load_config(run_id: str, tracking_uri: str = DEFAULT_TRACKING_URI) -> DictConfig:
    """The resolved config a run was trained with (its ``config.yaml`` artifact)."""
    with _downloaded(run_id, "config.yaml", tracking_uri) as path:
        return OmegaConf.create(yaml.safe_load(path.read_text()))


def load_weights(run_id: str, tracking_uri: str = DEFAULT_TRACKING_URI) -> tuple[nncore.Network, nncore.Network]:
    """(initial, final) networks of a run, from its ``weights/initial.npz`` and ``weights/final.npz``."""
    try:
        with _downloaded(run_id, "weights", tracking_uri) as folder:
            return nncore.Network.load(folder / "initial.npz"), nncore.Network.load(folder / "final.npz")
    except ArtifactsNotFoundError as err:
        raise ArtifactsNotFoundError(f"{err}; or was it run with tracking.log_weights=false?") from None
    except OSError as err:  # a weights/ folder without both files
        raise ArtifactsNotFoundError(f"run {run_id}: weights/ lacks a file: {err}") from None


@dataclass
class TrialArtifacts:
    """What one run left behind, ready for :mod:`analysis.minima`: its config, its initial and final
    networks, the data it was trained on (same split and scaling) and its cost function."""

    trial: int
    run_id: str
    cfg: DictConfig
    initial: nncore.Network
    final: nncore.Network
    data_seed: int

    @cached_property
    def data(self):
        """The run's data set (``experiments.data.Dataset``), split with its seed."""
        from experiments.data import load_dataset

        return load_dataset(self.cfg.data, self.data_seed)

    @property
    def cost(self) -> str:
        """The cost function's name (``cross_entropy``, ``squared_error``)."""
        from experiments.trainer import output_and_cost

        return output_and_cost(self.cfg, self.data.task)[1]

    def xy(self, split: str = "train") -> tuple[np.ndarray, np.ndarray]:
        """``X`` ``(N, n_in)`` and targets ``Y`` ``(N, n_out)`` of ``split`` (train, val, test) for the net."""
        X, y = getattr(self.data, f"X_{split}"), getattr(self.data, f"y_{split}")
        return nncore.check_inputs(self.final, X, y)

    def evaluate(self, split: str = "val", which: str = "final") -> dict:
        """``{split}_cost`` (and ``{split}_accuracy``) of the ``which`` (final, initial) network, dropout off."""
        net = getattr(self, which)
        X, Y = self.xy(split)
        value, outputs = net.evaluate(X, Y, self.cost)
        metrics = {f"{split}_cost": float(value)}
        y = getattr(self.data, f"y_{split}")
        if self.data.task == "classification":
            metrics[f"{split}_accuracy"] = nncore.accuracy(outputs, y)
        return metrics


def load_trial(study: str | StudyRecord | None, trial: int, tracking_uri: str = DEFAULT_TRACKING_URI,
               experiment: str | None = None) -> TrialArtifacts:
    """Trial ``trial``'s config and networks (:class:`TrialArtifacts`); ``KeyError`` listing the
    trials that have a run when it has none."""
    record = find_study(study, tracking_uri, None, experiment)
    runs = trial_runs(record)
    match = runs.loc[runs["trial"] == int(trial), "run_id"]
    if match.empty:
        raise KeyError(f"study {record.name!r} has no run for trial {trial}; trials with a run: "
                       f"{', '.join(map(str, runs['trial'])) or 'none'}")
    return load_run(match.iloc[0], record.tracking_uri, trial=int(trial))


def load_run(run_id: str, tracking_uri: str = DEFAULT_TRACKING_URI, trial: int = -1,
             data_seed: int | None = None) -> TrialArtifacts:
    """A run's :class:`TrialArtifacts`; ``data_seed``: the seed of its data split (default the seed
    the run split its data with: ``data.seed``, or ``train.seed`` when that is null)."""
    from experiments.config import split_seed

    cfg = load_config(run_id, tracking_uri)
    initial, final = load_weights(run_id, tracking_uri)
    seed = split_seed(cfg) if data_seed is None else int(data_seed)
    return TrialArtifacts(int(trial), run_id, cfg, initial, final, seed)
