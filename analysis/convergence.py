"""Convergence statistics of a sweep's learning curves, as tidy pandas frames.

Inputs
------
``curves``: a long frame, one row per trial, epoch and metric, with columns ``trial`` (int),
``epoch`` (int, 1-based), ``metric`` (str: ``"val_cost"``, ``"train_cost"``, ``"time"``, ...)
and ``value`` (float). Costs are the cost on the whole set at the end of each epoch (dropout
off), as :func:`nncore.fit` reports them, never a running mean of mini-batch costs; ``time``
is each epoch's own wall time in seconds. One value per (trial, epoch, metric).

``trials``: one row per trial with ``trial``, the hyperparameter columns (``"optimizer"``,
``"train.batch_size"``, ...) and ``state``. Group keys may be NaN (a parameter that only some
trials have): such trials form their own group rather than being dropped.

Censoring: a run that stops (pruned, early-stopped or out of epochs) before its cost reaches
τ is *censored at its last epoch*; it is kept and counted, never dropped. The Kaplan–Meier
median treats censoring as uninformative, which pruning is not (the pruner stops the slow
runs): for a pruned study it is optimistic.
"""

from fractions import Fraction

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

GROUPED_VALUE_COLUMNS = ("epoch", "median", "q25", "q75", "count")


def _as_list(by) -> list:
    """Group columns as a list: ``None`` → ``[]``, ``"a"`` → ``["a"]``."""
    if by is None:
        return []
    return [by] if isinstance(by, str) else list(by)


def metric_rows(curves: pd.DataFrame, metric: str) -> pd.DataFrame:
    """The ``trial, epoch, value`` rows of one metric, sorted by trial then epoch.

    ``ValueError`` if a (trial, epoch) appears twice: a loader bug, not something to average.
    """
    rows = curves.loc[curves["metric"] == metric, ["trial", "epoch", "value"]]
    if rows.duplicated(["trial", "epoch"]).any():
        dup = rows.loc[rows.duplicated(["trial", "epoch"]), ["trial", "epoch"]].iloc[0]
        raise ValueError(f"metric {metric!r} has two values for trial {dup['trial']} epoch {dup['epoch']}")
    rows = rows.astype({"value": np.float64})
    return rows.sort_values(["trial", "epoch"], kind="stable").reset_index(drop=True)


def _with_trials(frame: pd.DataFrame, trials: pd.DataFrame, by: list) -> pd.DataFrame:
    """``frame`` joined to the ``by`` columns of ``trials`` on ``trial`` (trials in both only)."""
    missing = [c for c in by if c not in trials.columns]
    if missing:
        raise KeyError(f"trials has no column(s) {missing}; it has {list(trials.columns)}")
    return frame.merge(trials[["trial", *by]], on="trial", how="inner")


# ---------------------------------------------------------------- epochs to a threshold


def epochs_to_threshold(curves: pd.DataFrame, threshold: float, metric: str = "val_cost",
                        time_metric: str = "time") -> pd.DataFrame:
    """Per trial, when ``metric`` first reached ``value ≤ threshold``.

    Returns one row per trial that has ``metric`` rows, sorted by trial, with columns
    ``trial``; ``reached`` (bool); ``epoch`` (float: the first epoch with value ≤ τ, NaN if
    never); ``seconds`` (float: the sum of ``time_metric`` over epochs 1..``epoch``, NaN if
    never reached or if any of those epochs has no time); ``censored_at`` (float: the last
    epoch with a ``metric`` value for runs that never reached τ, NaN for those that did).
    """
    rows = metric_rows(curves, metric)
    last = rows.groupby("trial")["epoch"].max()
    first_hit = rows.loc[rows["value"] <= threshold].groupby("trial")["epoch"].min()
    out = pd.DataFrame({"trial": last.index.to_numpy()})
    out["epoch"] = first_hit.reindex(last.index).to_numpy(np.float64)
    out["reached"] = out["epoch"].notna()
    out["censored_at"] = np.where(out["reached"], np.nan, last.to_numpy(np.float64))
    out["seconds"] = _seconds_to_epoch(curves, out, time_metric)
    return out[["trial", "reached", "epoch", "seconds", "censored_at"]]


def _seconds_to_epoch(curves: pd.DataFrame, per_trial: pd.DataFrame, time_metric: str) -> np.ndarray:
    """Cumulative ``time_metric`` up to each trial's ``epoch`` ``(n_trials,)``; NaN when the
    epoch is NaN or some epoch in 1..epoch has no time value."""
    times = metric_rows(curves, time_metric)
    joined = times.merge(per_trial[["trial", "epoch"]], on="trial", suffixes=("", "_hit"))
    upto = joined.loc[joined["epoch"] <= joined["epoch_hit"]].groupby("trial")["value"]
    total, count = upto.sum(), upto.count()
    seconds = total.reindex(per_trial["trial"]).to_numpy(np.float64)
    complete = count.reindex(per_trial["trial"]).to_numpy(np.float64) == per_trial["epoch"].to_numpy()
    return np.where(complete, seconds, np.nan)


def kaplan_meier(times, events) -> pd.DataFrame:
    """Kaplan–Meier estimate of the probability of *not yet* having reached τ.

    times ``(n,)``: the epoch of the event (reached τ) or of censoring (last epoch run);
    events ``(n,)`` bool: True where τ was reached. At each distinct event time t,
    ``S(t) = S(t⁻) · (1 - d_t / n_t)`` with ``d_t`` events at t and ``n_t`` runs still at risk
    (time ≥ t; a run censored at t counts as at risk at t). The product is taken in exact
    fractions of these integer counts, then rounded once (so S = 1/2 is exactly 0.5). Returns
    columns ``time``, ``at_risk``, ``events``, ``survival`` for the event times, ascending.
    """
    event_times, at_risk, n_events, survival = _km_steps(times, events)
    return pd.DataFrame({"time": event_times, "at_risk": at_risk, "events": n_events,
                         "survival": np.array([float(s) for s in survival], np.float64)})


def _km_steps(times, events):
    """Event times ``(k,)``, runs at risk and events there ``(k,)`` (int64) and the Kaplan–Meier
    survival after each, as a list of exact :class:`fractions.Fraction`."""
    times = np.asarray(times, np.float64)
    events = np.asarray(events, bool)
    event_times = np.unique(times[events])
    at_risk = np.array([(times >= t).sum() for t in event_times], np.int64)
    n_events = np.array([(events & (times == t)).sum() for t in event_times], np.int64)
    survival, s = [], Fraction(1)
    for n, d in zip(at_risk.tolist(), n_events.tolist()):
        s *= Fraction(n - d, n)
        survival.append(s)
    return event_times, at_risk, n_events, survival


def km_median(times, events) -> float:
    """The median of the Kaplan–Meier curve: the first event time with ``S(t) ≤ 1/2``, compared
    exactly (with n runs all reaching τ at distinct epochs it is the n/2-th for even n); NaN
    if the curve stays above 1/2 (too many runs censored before half of them reached τ).

    Censoring is taken as uninformative. A pruner stops the runs that look slow, so in a pruned
    study the censored runs are the slow ones and the KM median is optimistic (too early).
    """
    event_times, _, _, survival = _km_steps(times, events)
    below = [t for t, s in zip(event_times, survival) if s <= Fraction(1, 2)]
    return float(below[0]) if below else float("nan")


def threshold_summary(per_trial: pd.DataFrame, by=None, trials: pd.DataFrame | None = None) -> pd.DataFrame:
    """Summarise :func:`epochs_to_threshold` overall (``by=None``) or per hyperparameter group.

    ``by``: a column name or list of names, in ``per_trial`` or in ``trials`` (then joined on
    ``trial``). One row per group with the ``by`` columns and ``n_runs`` (censored runs
    included), ``n_reached``, ``frac_reached``, ``median_epochs`` and ``median_seconds`` (over
    the runs that reached τ only; NaN if none) and ``km_median`` (the Kaplan–Meier median of
    the epoch to τ with the censored runs accounted for, see :func:`km_median`; optimistic for a
    pruned study, whose pruner censors the slow runs).
    """
    by = _as_list(by)
    frame = per_trial
    if trials is not None:
        frame = _with_trials(per_trial, trials, [c for c in by if c not in per_trial.columns])
    groups = frame.groupby(by, dropna=False, sort=True) if by else [((), frame)]
    rows = []
    for key, group in groups:
        reached = group.loc[group["reached"].astype(bool)]
        times = np.where(group["reached"], group["epoch"], group["censored_at"])
        rows.append({
            **dict(zip(by, key)),
            "n_runs": len(group),
            "n_reached": len(reached),
            "frac_reached": len(reached) / len(group) if len(group) else np.nan,
            "median_epochs": reached["epoch"].median(),
            "median_seconds": reached["seconds"].median(),
            "km_median": km_median(times, group["reached"].to_numpy(bool)),
        })
    return pd.DataFrame(rows)


# ---------------------------------------------------------------- spread, rates, areas


def final_values(curves: pd.DataFrame, metric: str = "val_cost") -> pd.DataFrame:
    """Per trial, the ``metric`` value at its last epoch: columns ``trial``, ``epoch``, ``value``."""
    return metric_rows(curves, metric).groupby("trial").tail(1).reset_index(drop=True)


def final_spread(curves: pd.DataFrame, trials: pd.DataFrame, by, metric: str = "val_cost",
                 states=None) -> pd.DataFrame:
    """Spread of the final ``metric`` across the runs (seeds) of each configuration.

    ``by``: the hyperparameter columns of ``trials`` that define a configuration. ``states``:
    if given (e.g. ``("COMPLETE",)``), only trials whose ``state`` is in it; pruned runs stop
    early and their last value is no final cost. Columns: the ``by`` columns, ``mean``,
    ``std`` (ddof=1, NaN for one run), ``min``, ``max``, ``range`` (max - min) and ``count``
    (runs with a non-NaN final value).
    """
    by = _as_list(by)
    if states is not None:
        trials = trials.loc[trials["state"].isin(list(states))]
    final = _with_trials(final_values(curves, metric), trials, by)
    values = final.groupby(by, dropna=False, sort=True)["value"]
    out = pd.DataFrame({
        "mean": values.mean(), "std": values.std(ddof=1), "min": values.min(), "max": values.max(),
    })
    out["range"] = out["max"] - out["min"]
    out["count"] = values.count()
    return out.reset_index()


def convergence_rate(curves: pd.DataFrame, metric: str = "val_cost", floor: float = 0.0) -> pd.DataFrame:
    """Per trial, an exponential-decay rate of ``metric`` towards ``floor``.

    Fitted by least squares: ``log(value_e - floor) ≈ c + slope · e`` over the trial's epochs
    ``e`` after its first (the first epoch is a transient), using only the epochs with a finite
    ``value_e > floor``. For ``value_e = floor + A·exp(-k e)`` the fit gives ``slope = -k``
    exactly. ``floor=0`` suits costs whose infimum is 0; pass a known plateau otherwise (with
    floor 0 a curve levelling off at c > 0 shows a rate that falls towards 0).
    Columns: ``trial``, ``slope``, ``rate`` (= -slope, per epoch, > 0 for a decaying curve),
    ``n_fitted``; slope and rate are NaN with fewer than 2 points to fit.
    """
    rows = []
    for trial, group in metric_rows(curves, metric).groupby("trial", sort=True):
        epochs = group["epoch"].to_numpy(np.float64)[1:]
        gap = group["value"].to_numpy(np.float64)[1:] - floor
        ok = np.isfinite(gap) & (gap > 0)
        slope = np.polyfit(epochs[ok], np.log(gap[ok]), 1)[0] if ok.sum() >= 2 else np.nan
        rows.append({"trial": trial, "slope": slope, "rate": -slope, "n_fitted": int(ok.sum())})
    return pd.DataFrame(rows, columns=["trial", "slope", "rate", "n_fitted"])


def area_under_curve(curves: pd.DataFrame, metric: str = "val_cost") -> pd.DataFrame:
    """Per trial, the trapezoid area under ``metric`` over its epochs, divided by the epoch
    span (last - first epoch, i.e. the number of epoch intervals): the mean height of the
    piecewise-linear curve, so runs of different length compare and a constant curve c gives
    c. A one-epoch run gives its value. NaN values propagate. Columns: ``trial``, ``auc``,
    ``n_epochs``."""
    rows = []
    for trial, group in metric_rows(curves, metric).groupby("trial", sort=True):
        e = group["epoch"].to_numpy(np.float64)
        v = group["value"].to_numpy(np.float64)
        span = e[-1] - e[0]
        auc = float(np.sum((v[1:] + v[:-1]) * np.diff(e)) / 2 / span) if span > 0 else float(v[0])
        rows.append({"trial": trial, "auc": auc, "n_epochs": len(e)})
    return pd.DataFrame(rows, columns=["trial", "auc", "n_epochs"])


# ---------------------------------------------------------------- curves per group


def grouped_curves(curves: pd.DataFrame, trials: pd.DataFrame, by, metric: str = "val_cost") -> pd.DataFrame:
    """Per group (the ``by`` columns of ``trials``) and epoch: ``median``, ``q25``, ``q75``
    (linear-interpolated quantiles) and ``count`` of ``metric`` over the runs. Runs that
    stopped early leave later epochs: watch ``count``, the later medians are over survivors."""
    by = _as_list(by)
    rows = _with_trials(metric_rows(curves, metric), trials, by)
    values = rows.groupby([*by, "epoch"], dropna=False, sort=True)["value"]
    out = pd.DataFrame({
        "median": values.median(), "q25": values.quantile(0.25), "q75": values.quantile(0.75),
        "count": values.count(),
    })
    return out.reset_index()


def plot_grouped_curves(grouped: pd.DataFrame, ax=None, ylabel: str = "val_cost", logy: bool = False):
    """Median line and shaded interquartile band per group of :func:`grouped_curves`; every
    column other than ``epoch, median, q25, q75, count`` is a group key. Returns the figure."""
    if ax is None:
        ax = Figure(figsize=(6, 4), layout="constrained").add_subplot()
    keys = [c for c in grouped.columns if c not in GROUPED_VALUE_COLUMNS]
    groups = grouped.groupby(keys, dropna=False, sort=True) if keys else [((), grouped)]
    for key, group in groups:
        label = ", ".join(f"{k}={v}" for k, v in zip(keys, key)) or None
        group = group.sort_values("epoch")
        (line,) = ax.plot(group["epoch"], group["median"], label=label)
        ax.fill_between(group["epoch"], group["q25"], group["q75"], color=line.get_color(), alpha=0.25,
                        linewidth=0)
    ax.set_xlabel("epoch")
    ax.set_ylabel(ylabel)
    if logy:
        ax.set_yscale("log")
    if keys:
        ax.legend(fontsize="small")
    return ax.figure
