"""Seed robustness: retrain a study's best configurations with other seeds and compare the minima.

:func:`retrain_seeds` takes the top-k COMPLETE trials, reads each one's resolved config from its
``config.yaml`` artifact and trains it again with ``train.seed`` = s₀+1, ..., s₀+S (s₀: the trial's
own seed) through :func:`experiments.trainer.train_config`, the code the trials ran. The seed drives
the initial weights, the mini-batch order and dropout; **the data split stays the trial's** (split
with s₀), so every minimum of a configuration is trained and measured on the same data. Each new
run is logged as a child of the study's parent run, tagged ``kind=seed-robustness``,
``seeds.source_trial``, ``seeds.source_run_id`` and ``seed``, with the artifacts of a trial
(``config.yaml``, ``curves.png``, ``weights/``). With ``reuse`` (the default) a run already logged
for the same trial and seed is read back instead of trained again (training is deterministic).

:func:`compare_seeds` then gives, per configuration, the spread of the cost at its minima (at the
epoch each run's weights are from; :func:`analysis.convergence.final_spread`), the barrier matrix
between all minima of the same architecture and data (:func:`analysis.minima.pairwise_barriers`,
"max_end" variant, on the training set, dropout off) and whether the seeds of one configuration land in
one basin or several (:func:`analysis.minima.basins`); each both on the straight line and modulo permutation
(of each pair, the later run's hidden units aligned to the earlier's by :func:`analysis.alignment.align`).
"""

from __future__ import annotations

import copy
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import yaml
from omegaconf import OmegaConf

import nncore
from experiments.tracking import final_metrics, objective_window, result_records, window_means

from .alignment import aligned_pairwise_barriers
from .convergence import final_spread
from .loading import (
    CURVE_METRICS,
    DEFAULT_TRACKING_URI,
    PARENT_TAG,
    SEED_KIND,
    StudyRecord,
    child_runs,
    client_for,
    find_study,
    load_run,
    load_trials,
    load_weights,
    read_metrics,
    top_trials,
)
from .minima import basins, pairwise_barriers

RUN_COLUMNS = ["trial", "label", "config", "seed", "origin", "state", "group", "run_id", "epoch", "train_cost",
               "val_cost", "val_accuracy", "reason"]
AT_EPOCH = ("epoch", "train_cost", "val_cost", "val_accuracy")  # the columns read from a run's curves
BASIN_TOL = 0.01  # a barrier (in the cost's units) at most this high joins two minima into one basin (on the
# default study the barriers between minima are either 0 or above 0.04: python -m analysis.report)
MAX_PARAMS_PER_BATCH = 100  # MLflow's limit for params in one log_batch
MAX_METRICS_PER_BATCH = 1000


@dataclass
class SeedRuns:
    """The minima of the top-k configurations: the trials' own and their retrained seeds.

    ``runs``: one row per minimum with ``trial`` (a row id 0..n-1, the key of ``curves``),
    ``label`` (``t12`` the trial itself, ``t12/s3`` seed 3 of its configuration), ``config`` (the
    source trial's number), ``seed``, ``origin`` (trial, retrained, reused), ``state`` (COMPLETE,
    or FAIL for a run that diverged), ``group`` (architecture and data: minima of one group can be
    compared), ``run_id``, ``epoch`` (the epoch the minimum's weights are from: with ``train.restore_best``
    the first of lowest ``val_cost``, as the run kept them, else the last) and that epoch's
    ``train_cost``, ``val_cost``, ``val_accuracy``.
    ``curves``: their per-epoch metrics, the long frame of :mod:`analysis.convergence`.
    ``finals`` / ``initials``: label → flat parameters ``(n_params,)`` at the end / at the start.
    ``nets``: group → a network of that architecture; ``data``: group → ``(X, Y, cost)``, its
    training set as the networks take it.
    """

    runs: pd.DataFrame
    curves: pd.DataFrame
    finals: dict = field(default_factory=dict)
    initials: dict = field(default_factory=dict)
    nets: dict = field(default_factory=dict)
    data: dict = field(default_factory=dict)
    study: str = ""


@dataclass
class SeedComparison:
    """What :func:`compare_seeds` found.

    ``spread``: per configuration, the spread of the cost at its minima (``runs``' ``epoch``; ``config``,
    ``metric``, ``mean``, ``std``, ``min``, ``max``, ``range``, ``count``). ``barriers``: group →
    the symmetric barrier matrix (a frame indexed by labels). ``aligned_barriers``: the same modulo
    permutation (for labels i before j, θ_j's hidden units aligned to θ_i's); ``permutations``:
    group → ``{(label_i, label_j): perms}``, one int array ``(n_ℓ,)`` per hidden layer
    (:func:`analysis.alignment.permute`). ``basins``: per configuration ``config``, ``group``,
    ``n_minima``, ``n_basins``, ``basins`` (label → basin), ``max_barrier`` and ``one_basin`` (all its
    minima joined by barriers ≤ ``tol``), then the same four from the aligned barriers (``*_aligned``).
    ``group_basins``: per group, the basins of all its minima together (``group``, ``n_minima``,
    ``n_basins``, ``members``: a list of the labels in each basin; ``n_basins_aligned``,
    ``members_aligned``), across configurations.
    """

    spread: pd.DataFrame
    barriers: dict
    basins: pd.DataFrame
    group_basins: pd.DataFrame
    tol: float
    aligned_barriers: dict = field(default_factory=dict)
    permutations: dict = field(default_factory=dict)


def retrain_seeds(study: str | StudyRecord | None = None, top_k: int = 3, n_seeds: int = 2,
                  tracking_uri: str = DEFAULT_TRACKING_URI, storage: str | None = None,
                  trials: pd.DataFrame | None = None, log: bool = True, reuse: bool = True,
                  on_step: Callable[[str], None] | None = None) -> SeedRuns:
    """Retrain the ``top_k`` best complete trials of ``study`` with ``n_seeds`` other seeds each.

    ``trials``: a :func:`analysis.loading.load_trials` frame (read when None). ``log``: record the
    new runs under the study's parent run; ``reuse``: read back runs logged before for the same
    trial and seed. ``on_step(what)`` is called after each minimum (for a progress bar).
    ``ValueError`` when the study has no complete trial.
    """
    record = find_study(study, tracking_uri, storage)
    trials = load_trials(record) if trials is None else trials
    column = "value" if "value" in trials.columns else "value_0"
    best = top_trials(trials, top_k, record.directions[0], column)
    if best.empty:
        raise ValueError(f"study {record.name!r} has no complete trial to retrain")
    client = client_for(record.tracking_uri) if (log or reuse) else None
    logged = _logged_seed_runs(client, record) if reuse else {}
    rows, curves, out = [], [], SeedRuns(pd.DataFrame(), pd.DataFrame(), study=record.name)
    restoring = set()  # the configurations whose runs end on their epoch of lowest val_cost
    groups: dict[tuple, str] = {}
    for source in best.itertuples(index=False):
        art = load_run(source.run_id, record.tracking_uri, trial=source.trial)
        group = _group_of(art.final, art.cfg, art.data_seed, groups)
        if group not in out.nets:
            out.nets[group] = art.final.copy()
            X, Y = art.xy("train")
            out.data[group] = (X, Y, art.cost)
        base_seed = int(art.cfg.train.seed)
        if art.cfg.train.get("restore_best", False):  # runs made before it ended on their last epoch
            restoring.add(int(source.trial))
        label = f"t{source.trial}"
        rows.append(_row(len(rows), label, source.trial, base_seed, "trial", "COMPLETE", group, source.run_id))
        out.finals[label], out.initials[label] = art.final.params.copy(), art.initial.params.copy()
        curves.append(read_metrics(record.tracking_uri, [source.run_id]).assign(trial=rows[-1]["trial"]))
        _step(on_step, f"trial {source.trial}")
        for seed in range(base_seed + 1, base_seed + 1 + n_seeds):
            label = f"t{source.trial}/s{seed}"
            run_id = logged.get((source.run_id, seed))
            if run_id is not None:
                initial, final = load_weights(run_id, record.tracking_uri)
                frame = read_metrics(record.tracking_uri, [run_id])
                rows.append(_row(len(rows), label, source.trial, seed, "reused", "COMPLETE", group, run_id))
                out.finals[label], out.initials[label] = final.params.copy(), initial.params.copy()
            else:
                cfg = copy.deepcopy(art.cfg)
                cfg.train.seed = seed
                cfg.data.seed = art.data_seed  # the config names its split: it can be replayed alone
                try:
                    result = train_as_trial(cfg, art.data)
                except nncore.DivergenceError as err:
                    rows.append(_row(len(rows), label, source.trial, seed, "retrained", "FAIL", group, None,
                                     str(err).splitlines()[0]))
                    _step(on_step, label)
                    continue
                run_id = _log_seed_run(client, record, cfg, source, art, result) if log else None
                frame = _history_frame(result.history)
                rows.append(_row(len(rows), label, source.trial, seed, "retrained", "COMPLETE", group, run_id))
                out.finals[label], out.initials[label] = result.net.params.copy(), result.initial_params.copy()
            curves.append(frame.assign(trial=rows[-1]["trial"]))
            _step(on_step, label)
    out.curves = _long(curves)
    table = pd.DataFrame(rows, columns=[c for c in RUN_COLUMNS if c not in AT_EPOCH])
    out.runs = at_kept_epochs(table, out.curves, set(table.loc[table["config"].isin(restoring), "trial"]))
    return out


def _step(on_step, what: str) -> None:
    if on_step is not None:
        on_step(what)


def _row(index: int, label: str, config: int, seed: int, origin: str, state: str, group: str, run_id,
         reason: str | None = None) -> dict:
    return {"trial": index, "label": label, "config": int(config), "seed": int(seed), "origin": origin,
            "state": state, "group": group, "run_id": run_id, "reason": reason}


def _group_of(net: nncore.Network, cfg, data_seed: int, groups: dict) -> str:
    """A name for the architecture (and data) of ``net``: ``64-256-10 tanh``; minima compare within one."""
    data = yaml.safe_dump(OmegaConf.to_container(cfg.data, resolve=True), sort_keys=True)
    key = (net.sizes, net.activation, net.output, str(net.dtype), data, int(data_seed))
    if key not in groups:
        name = f"{'-'.join(map(str, net.sizes))} {net.activation}"
        taken = sum(1 for other in groups.values() if other.split(" #")[0] == name)
        groups[key] = name if taken == 0 else f"{name} #{taken + 1}"
    return groups[key]


def train_as_trial(cfg, data):
    """``train_config`` under the trial's thread limit (as the sweep runs it)."""
    from threadpoolctl import threadpool_limits

    from experiments.trainer import train_config

    with threadpool_limits(int(cfg.train.threads)):
        return train_config(cfg, data)


def _history_frame(history: nncore.History) -> pd.DataFrame:
    rows = [(m.epoch, k, float(v)) for m in history.epochs for k, v in m.as_dict().items()
            if k in CURVE_METRICS]
    return pd.DataFrame(rows, columns=["epoch", "metric", "value"])


def _long(parts: list[pd.DataFrame]) -> pd.DataFrame:
    columns = ["trial", "epoch", "metric", "value"]
    if not parts:
        return pd.DataFrame(columns=columns)
    frame = pd.concat([p[[c for c in columns if c in p.columns]] for p in parts], ignore_index=True)
    frame = frame.astype({"trial": np.int64, "epoch": np.int64, "value": np.float64})
    return frame[columns].sort_values(["trial", "metric", "epoch"], kind="stable").reset_index(drop=True)


def at_kept_epochs(runs: pd.DataFrame, curves: pd.DataFrame, restore_best: set) -> pd.DataFrame:
    """``runs`` with the epoch each run's weights are from and its ``train_cost``, ``val_cost``,
    ``val_accuracy`` there. ``restore_best``: the rows (``trial``) whose runs kept their first epoch
    of lowest ``val_cost`` (:class:`experiments.trainer.KeptEpoch`); the others, and runs without a
    val_cost, end on their last."""
    wide = curves.pivot_table(index=["trial", "epoch"], columns="metric", values="value").reset_index()
    kept = {}
    for trial, epochs in wide.groupby("trial"):
        val = epochs["val_cost"] if "val_cost" in epochs.columns else pd.Series(np.nan, index=epochs.index)
        keep_best = trial in restore_best and val.notna().any()
        kept[trial] = epochs.loc[val.idxmin() if keep_best else epochs["epoch"].idxmax()]
    at = pd.DataFrame(kept.values(), index=list(kept)).reindex(columns=list(AT_EPOCH))
    runs = runs.join(at, on="trial")
    return runs.astype({"epoch": "Int64"})[RUN_COLUMNS]


# ---------------------------------------------------------------------------- MLflow
def _logged_seed_runs(client, record: StudyRecord) -> dict[tuple[str, int], str]:
    """(source run id, seed) → run id of the FINISHED seed-robustness runs under the study's parent."""
    _, seeds = child_runs(client, record)
    found = {}
    for run in sorted(seeds, key=lambda r: r.info.start_time or 0):
        tags = run.data.tags
        if run.info.status == "FINISHED" and tags.get("seeds.source_run_id") and str(tags.get("seed")).isdigit():
            found[(tags["seeds.source_run_id"], int(tags["seed"]))] = run.info.run_id
    return found


def _log_seed_run(client, record: StudyRecord, cfg, source, art, result) -> str:
    """Record a retrained seed as a child of the study's parent run; returns its run id."""
    from mlflow.entities import Metric, Param, RunTag

    from experiments.config import flatten
    from experiments.plots import render_curves

    seed = int(cfg.train.seed)
    name = f"seed-{int(source.trial):04d}-s{seed}"
    tags = {"mlflow.runName": name, PARENT_TAG: record.parent_run_id, "optuna.study": record.name,
            "kind": SEED_KIND, "seeds.source_trial": str(source.trial), "seeds.source_run_id": source.run_id,
            "seed": str(seed), "data_seed": str(art.data_seed),
            "mlflow.note.content": f"Trial {source.trial}'s configuration retrained with train.seed={seed} "
                                   f"(same data split, seed {art.data_seed}) by analysis.seeds."}
    run = client.create_run(record.experiment_id, tags=tags, run_name=name)
    run_id = run.info.run_id
    try:
        data = art.data
        final = {**result.evaluate(data.X_test, data.y_test, art.cost, "test"), **final_metrics(result.final)}
        last_epoch = {k: v for k, v in result.history.epochs[-1].as_dict().items() if k in CURVE_METRICS}
        window = objective_window(cfg)
        curves = [{k: v for k, v in m.as_dict().items() if k in CURVE_METRICS} for m in result.history.epochs]
        values, results, result_tags = result_records(final, last_epoch, list(record.objective),  # as a trial's
                                                      window_means(curves, window) if window > 1 else None)
        params = [Param(k, str(v)) for k, v in {**flatten(cfg), **results}.items()]
        for lo in range(0, len(params), MAX_PARAMS_PER_BATCH):
            client.log_batch(run_id, params=params[lo:lo + MAX_PARAMS_PER_BATCH])
        client.log_batch(run_id, tags=[RunTag(k, v) for k, v in result_tags.items()])
        now = int(time.time() * 1000)
        metrics = [Metric(k, float(v), now, m.epoch) for m in result.history.epochs
                   for k, v in m.as_dict().items() if k in CURVE_METRICS]
        metrics += [Metric(k, v, now, int(result.final["epochs_run"])) for k, v in values.items()]
        for lo in range(0, len(metrics), MAX_METRICS_PER_BATCH):
            client.log_batch(run_id, metrics=metrics[lo:lo + MAX_METRICS_PER_BATCH])
        folder = tempfile.mkdtemp(prefix="nnsweep-seed-")
        try:
            os.mkdir(os.path.join(folder, "weights"))
            with open(os.path.join(folder, "config.yaml"), "w") as handle:
                yaml.safe_dump(OmegaConf.to_container(cfg, resolve=True), handle, sort_keys=False)
            result.net.save(os.path.join(folder, "weights", "final.npz"))
            initial = result.net.copy()
            initial.params[...] = result.initial_params
            initial.save(os.path.join(folder, "weights", "initial.npz"))
            epochs = [(m.epoch, m.as_dict()) for m in result.history.epochs]
            last = result.final.get("val_cost", float("nan"))
            render_curves(epochs, os.path.join(folder, "curves.png"),
                          f"trial {source.trial}, seed {seed}: val_cost {last:.4g}")
            client.log_artifacts(run_id, folder)
        finally:
            shutil.rmtree(folder, ignore_errors=True)
    except BaseException:
        client.set_terminated(run_id, "FAILED")
        raise
    client.set_terminated(run_id, "FINISHED")
    return run_id


# ---------------------------------------------------------------------------- comparing
def compare_seeds(runs: SeedRuns, metric: str = "val_cost", n_alphas: int = 21, tol: float = BASIN_TOL,
                  on_step: Callable[[str], None] | None = None) -> SeedComparison:
    """Spread of ``metric`` at the minima (their ``epoch``) per configuration, barriers between the minima of each group
    (``n_alphas`` points on the segment) before and after aligning each pair, basins per configuration with barriers
    ≤ ``tol``, both ways. ``on_step(group)`` is called after each group's barrier matrices."""
    table = runs.runs
    ok = table.loc[table["state"] == "COMPLETE"]
    until = runs.curves["trial"].map(table.set_index("trial")["epoch"])
    at_minima = runs.curves.loc[runs.curves["epoch"] <= until]  # each curve up to the epoch of its weights
    spread = pd.concat([final_spread(at_minima, table, by="config", metric=m, states=("COMPLETE",))
                        .assign(metric=m) for m in dict.fromkeys([metric, "train_cost"])], ignore_index=True)
    spread = spread[["config", "metric", "mean", "std", "min", "max", "range", "count"]]
    matrices, aligned, permutations = {}, {}, {}
    for group, members in ok.groupby("group", sort=False):
        if len(members) < 2:
            continue
        X, Y, cost = runs.data[group]
        labels = list(members["label"])
        thetas = [runs.finals[label] for label in labels]
        matrices[group] = pairwise_barriers(runs.nets[group], thetas, X, Y, cost, n_alphas=n_alphas, labels=labels)
        aligned[group], permutations[group] = aligned_pairwise_barriers(runs.nets[group], thetas, X, Y, cost,
                                                                        n_alphas=n_alphas, labels=labels)
        _step(on_step, f"barriers {group}")
    rows = []
    for config, members in ok.groupby("config", sort=False):
        labels, group = list(members["label"]), members["group"].iloc[0]
        row = {"config": int(config), "group": group, "n_minima": len(labels)}
        for suffix, found in (("", matrices), ("_aligned", aligned)):
            n_basins, labelled, highest = _config_basins(found.get(group), labels, tol)
            row.update({f"n_basins{suffix}": n_basins, f"basins{suffix}": labelled, f"max_barrier{suffix}": highest,
                        f"one_basin{suffix}": n_basins == 1})
        rows.append(row)
    columns = ["config", "group", "n_minima", *(f"{c}{suffix}" for suffix in ("", "_aligned")
                                                for c in ("n_basins", "basins", "max_barrier", "one_basin"))]
    across = []
    for group, matrix in matrices.items():
        row = {"group": group, "n_minima": len(matrix)}
        for suffix, found in (("", matrix), ("_aligned", aligned[group])):
            labels = basins(found.to_numpy(), tol)
            members = [[label for label, b in zip(found.index, labels) if b == k] for k in range(int(labels.max()) + 1)]
            row.update({f"n_basins{suffix}": len(members), f"members{suffix}": members})
        across.append(row)
    group_basins = pd.DataFrame(across, columns=["group", "n_minima", "n_basins", "members", "n_basins_aligned",
                                                 "members_aligned"])
    return SeedComparison(spread, matrices, pd.DataFrame(rows, columns=columns), group_basins, float(tol),
                          aligned, permutations)


def _config_basins(matrix: pd.DataFrame | None, labels: list, tol: float) -> tuple[int, dict, float]:
    """Number of basins, label → basin and the highest barrier among ``labels`` in ``matrix`` (None: one minimum)."""
    if matrix is None:
        return 1, dict.fromkeys(labels, 0), 0.0
    sub = matrix.loc[labels, labels].to_numpy()
    found = basins(sub, tol)
    highest = float(np.nanmax(sub)) if len(labels) > 1 else 0.0
    return int(found.max()) + 1, dict(zip(labels, found.tolist())), highest


def seed_robustness(study: str | StudyRecord | None = None, top_k: int = 3, n_seeds: int = 2,
                    tracking_uri: str = DEFAULT_TRACKING_URI, storage: str | None = None, log: bool = True,
                    **compare) -> tuple[SeedRuns, SeedComparison]:
    """:func:`retrain_seeds` then :func:`compare_seeds` (``compare``: its keyword arguments)."""
    runs = retrain_seeds(study, top_k, n_seeds, tracking_uri, storage, log=log)
    return runs, compare_seeds(runs, **compare)
