"""``python -m analysis.report``: an HTML report on how a study's trials converged and the minima they reached.

The report (``reports/<study>/report.html`` and its PNG figures in ``figures/``) holds:

1. the study: where it is recorded, trials by state, the best trial, the 10 best trials;
2. convergence: epochs to a validation-cost threshold τ (censored runs kept; Kaplan–Meier
   median), decay rate and mean height of the curve, per optimizer, batch size and activation,
   each beside the median/IQR curves of its groups;
3. parameter importances (:func:`experiments.importance.study_importances`: fANOVA over 5 seeded forests
   with their spread, PED-ANOVA beside it; the numbers of the parent run's ``plots/param_importances.csv``);
4. the minima of the top-k trials: loss along the straight line from the initial to the final
   weights, the barrier on it, the sharpness (λ_max, raw and filter-normalised);
5. seed robustness: the top-k configurations retrained with other seeds
   (:mod:`analysis.seeds`), the spread of their final costs, the barrier heat map between all
   minima of one architecture before and after aligning their hidden units (weight matching,
   :mod:`analysis.alignment`), and whether the seeds of one configuration share a basin, both ways;
6. the best trial's loss landscape along filter-normalised random directions, in 1-D and 2-D.

The folder is logged to the study's parent MLflow run as the artifact folder ``report/`` (and
the retrained seeds as its child runs, ``kind=seed-robustness``) unless ``--no-log``. The
functions below compute each part as pandas frames; the notebooks in ``analysis/notebooks``
call them too.
"""

from __future__ import annotations

import argparse
import datetime
import html
import os
import re
import shutil
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from experiments.importance import FANOVA_SEEDS, FANOVA_TREES, Importances, study_importances
from experiments.importance import plot_importances as draw_importance_bars
from experiments.storage import describe
from experiments.urls import mask_password

from .convergence import (
    area_under_curve,
    convergence_rate,
    epochs_to_threshold,
    final_values,
    grouped_curves,
    plot_grouped_curves,
    threshold_summary,
)
from .loading import (
    DEFAULT_TRACKING_URI,
    ArtifactsNotFoundError,
    EmptyStudyError,
    StudyNotFoundError,
    StudyRecord,
    StudyStorageError,
    client_for,
    find_study,
    load_curves,
    load_optuna_study,
    load_trials,
)
from .minima import (
    barrier,
    filter_normalized_direction,
    filter_normalized_sharpness,
    interpolate,
    landscape_1d,
    landscape_2d,
    plot_barrier_heatmap,
    plot_interpolation,
    plot_landscape_1d,
    plot_landscape_2d,
    sharpness,
)
from .seeds import BASIN_TOL, SeedComparison, SeedRuns, compare_seeds, retrain_seeds

GROUPS = {"optimizer": "optimizer", "batch size": "train.batch_size", "activation": "model.activation"}
TOP_TRIALS_SHOWN = 10
FIGURE_DPI = 150  # a 6-inch figure is 900 px: shown at up to 900 px wide, full size on a click


@dataclass
class ReportOptions:
    """What the report computes: ``top_k`` best trials, ``seeds`` new seeds per configuration, a
    ``grid`` × ``grid`` 2-D landscape, ``n_alphas`` points per barrier path, ``threshold`` τ
    (None: :func:`default_threshold`), ``basin_tol`` (see :func:`analysis.seeds.compare_seeds`),
    ``log``: record the seeds and the report in MLflow."""

    top_k: int = 5
    seeds: int = 3
    grid: int = 25
    n_alphas: int = 21
    threshold: float | None = None
    basin_tol: float = BASIN_TOL
    log: bool = True


# ---------------------------------------------------------------------------- the parts
def default_threshold(trials: pd.DataFrame, metric: str = "val_cost") -> float:
    """τ: the median final ``metric`` of the COMPLETE trials (of all trials when none completed)."""
    complete = trials.loc[trials["state"] == "COMPLETE", metric].dropna()
    values = complete if len(complete) else trials[metric].dropna()
    return float(values.median()) if len(values) else float("nan")


def tied_best(trials: pd.DataFrame, direction: str = "minimize", column: str = "value") -> list[int]:
    """The trial numbers of the COMPLETE trials whose ``column`` equals the best; more than one: a tie."""
    complete = trials.loc[(trials["state"] == "COMPLETE") & trials[column].notna()]
    if complete.empty:
        return []
    best = complete[column].min() if direction == "minimize" else complete[column].max()
    return [int(t) for t in complete.loc[complete[column] == best, "trial"]]


def convergence_table(curves: pd.DataFrame, trials: pd.DataFrame, by=None, threshold: float | None = None,
                      metric: str = "val_cost") -> pd.DataFrame:
    """Per group of ``by`` (None: all trials): :func:`analysis.convergence.threshold_summary` of the
    epochs to ``threshold`` plus the medians of the final ``metric``, of the decay rate
    (:func:`convergence_rate`) and of the curve's mean height (:func:`area_under_curve`)."""
    threshold = default_threshold(trials, metric) if threshold is None else threshold
    per_trial = epochs_to_threshold(curves, threshold, metric)
    summary = threshold_summary(per_trial, by, trials)
    extra = (final_values(curves, metric)[["trial", "value"]].rename(columns={"value": "final"})
             .merge(convergence_rate(curves, metric)[["trial", "rate"]], on="trial", how="outer")
             .merge(area_under_curve(curves, metric)[["trial", "auc"]], on="trial", how="outer"))
    keys = [] if by is None else ([by] if isinstance(by, str) else list(by))
    if keys:
        extra = extra.merge(trials[["trial", *keys]], on="trial", how="inner")
        medians = extra.groupby(keys, dropna=False, sort=True)[["final", "rate", "auc"]].median().reset_index()
        summary = summary.merge(medians, on=keys, how="left")
    else:
        for column in ("final", "rate", "auc"):
            summary[column] = extra[column].median()
    return summary.rename(columns={"final": f"median_final_{metric}", "rate": "median_rate",
                                   "auc": "median_auc"})


def param_importances(study) -> pd.DataFrame:
    """The importances of an ``optuna.Study``'s parameters, most important first, computed as the parent
    run's artifact computes them (:func:`experiments.importance.study_importances`, fixed seeds: the same
    numbers as its ``plots/param_importances.csv``): ``param``, ``fanova`` (mean over the seeded forests),
    ``fanova_sd``, ``fanova_min``, ``fanova_max``, ``rank_min``, ``rank_max``, ``ped_anova``. ``attrs``:
    ``n_complete``, ``target``, ``uncertainty`` (one sentence), ``problem`` (why it is empty)."""
    found = study_importances(study)
    frame = found.frame()
    frame.attrs.update(n_complete=found.n_complete, target=found.target, uncertainty=found.uncertainty(),
                       problem=found.problem)
    return frame


def minima_summary(runs: SeedRuns, on_step: Callable[[str], None] | None = None) -> tuple[pd.DataFrame, dict]:
    """Per trial of ``runs`` (its own minimum, not the retrained seeds): the training loss at the
    initial and final weights, the loss along the line between them (α ∈ [-0.5, 1.5]), its
    barrier ("max_end" variant on α ∈ [0, 1]; 0 when the loss never rises above the ends), whether it
    falls monotonically from α = 0 to 1, and the sharpness (λ_max of the Hessian, full training set:
    ``sharpness`` raw, ``sharpness_filter`` filter-normalised, the one to compare across trials).
    Returns the table and ``{label: interpolation frame}``."""
    rows, paths = [], {}
    originals = runs.runs.loc[runs.runs["origin"] == "trial"]
    for row in originals.itertuples(index=False):
        net = runs.nets[row.group].copy()
        net.params[...] = runs.finals[row.label]
        X, Y, cost = runs.data[row.group]
        path = interpolate(net, runs.initials[row.label], runs.finals[row.label], X, Y, cost)
        inside = path.loc[(path["alpha"] >= 0) & (path["alpha"] <= 1), "loss"].to_numpy()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            top = sharpness(net, X, Y, cost, n_trace=0, lambda_min=False)
            normalized = filter_normalized_sharpness(net, X, Y, cost, n_trace=0, lambda_min=False)
        paths[row.label] = path
        rows.append({"trial": row.config, "group": row.group, "val_cost": row.val_cost,
                     "loss_initial": float(inside[0]), "loss_final": float(inside[-1]),
                     "barrier_initial_final": barrier(path), "monotone": bool(np.all(np.diff(inside) <= 1e-12)),
                     "sharpness": top.lambda_max, "sharpness_filter": normalized.lambda_max,
                     "lanczos_hvps": top.n_hvp_max,
                     "note": "; ".join(str(w.message) for w in caught) or None})
        _step(on_step, f"minimum t{row.config}")
    return pd.DataFrame(rows), paths


def barrier_summary(comparison: SeedComparison) -> pd.DataFrame:
    """Per group of ``comparison``: ``n_pairs`` of minima, the ``mean`` and ``max`` barrier over them on the straight
    line and after aligning (``*_aligned``), and ``lower_aligned``, the fraction of pairs whose barrier alignment
    lowered."""
    rows = []
    for group, matrix in comparison.barriers.items():
        pairs = np.triu_indices(len(matrix), 1)
        plain, aligned = matrix.to_numpy()[pairs], comparison.aligned_barriers[group].to_numpy()[pairs]
        rows.append({"group": group, "n_pairs": len(plain), "mean": plain.mean(), "mean_aligned": aligned.mean(),
                     "max": plain.max(), "max_aligned": aligned.max(),
                     "lower_aligned": float(np.mean(aligned < plain))})
    return pd.DataFrame(rows, columns=["group", "n_pairs", "mean", "mean_aligned", "max", "max_aligned",
                                       "lower_aligned"])


def plot_barrier_heatmaps(plain: pd.DataFrame, aligned: pd.DataFrame, title: str = ""):
    """Two barrier heat maps side by side on one colour scale (one colour bar): on the straight line (left) and
    after weight matching (right). Returns the figure."""
    size = max(4.0, 0.35 * len(plain) + 2)
    width = 2 * size + 1
    # margins by hand (inches: tick labels, axis label): a layout engine would triple the time of the figure
    margin = 0.65 + 0.075 * max((len(str(label)) for label in plain.index), default=1)
    figure = Figure(figsize=(width, size))
    figure.subplots_adjust(left=margin / width, right=1 - 0.1 / width, bottom=margin / size, top=1 - 0.4 / size,
                           wspace=1.5 * margin / (width - margin))
    axes = figure.subplots(1, 2)
    top = max(float(np.nanmax(plain.to_numpy())), float(np.nanmax(aligned.to_numpy())), 1e-12)
    for ax, matrix, what in zip(axes, (plain, aligned), ("straight line", "after weight matching")):
        plot_barrier_heatmap(matrix, ax=ax)
        ax.images[0].set_clim(0.0, top)
        for text, value in zip(ax.texts, matrix.to_numpy().ravel()):  # light on dark cells of the shared scale
            text.set_color("k" if value > top / 2 else "w")
        ax.tick_params(axis="x", labelrotation=90)
        ax.set_title(f"{title}: {what}" if title else what)
    axes[0].images[0].colorbar.remove()  # the right one serves both, and the left's axis label
    axes[1].set_ylabel("")
    return figure


def best_landscapes(runs: SeedRuns, grid: int = 25, seed: int = 0,
                    on_step: Callable[[str], None] | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The 1-D (41 points) and 2-D (``grid`` × ``grid``) training-loss landscapes of the best trial in
    ``runs`` (its first row) along filter-normalised directions drawn with seeds ``seed``, ``seed + 1``."""
    row = runs.runs.iloc[0]
    net = runs.nets[row["group"]].copy()
    net.params[...] = runs.finals[row["label"]]
    X, Y, cost = runs.data[row["group"]]
    d1, d2 = filter_normalized_direction(net, seed), filter_normalized_direction(net, seed + 1)
    one = landscape_1d(net, X, Y, cost, d1)
    _step(on_step, "landscape 1-D")
    two = landscape_2d(net, X, Y, cost, d1, d2, n=grid)
    _step(on_step, "landscape 2-D")
    return one, two


def _step(on_step, what: str) -> None:
    if on_step is not None:
        on_step(what)


# ---------------------------------------------------------------------------- figures
def plot_importances(importances: pd.DataFrame):
    """Bars of :func:`param_importances` (fANOVA with its min–max over the forests, PED-ANOVA beside it),
    the figure of the parent run's ``plots/param_importances.png``. Returns the figure."""
    return draw_importance_bars(Importances(rows=importances.to_dict("records"),
                                            n_complete=int(importances.attrs.get("n_complete", 0)),
                                            target=str(importances.attrs.get("target", "the objective"))))


def plot_interpolations(paths: dict):
    """Every ``{label: interpolate() frame}`` on one axes (log loss). Returns the figure."""
    ax = Figure(figsize=(6, 4), layout="constrained").add_subplot()
    for label, frame in paths.items():
        plot_interpolation(frame, ax=ax, label=label)
    ax.set_yscale("log")
    ax.set_title("training loss from the initial (α=0) to the final (α=1) weights")
    return ax.figure


def plot_final_spread(runs: SeedRuns, metric: str = "val_cost"):
    """``metric`` at each minimum (the epoch of its weights), one column of points per configuration
    (the trial's own minimum as a star). Returns the figure."""
    ax = Figure(figsize=(6, 3.5), layout="constrained").add_subplot()
    table = runs.runs.loc[runs.runs["state"] == "COMPLETE"]
    configs = list(dict.fromkeys(table["config"]))
    for x, config in enumerate(configs):
        group = table.loc[table["config"] == config]
        own = group["origin"] == "trial"
        ax.scatter(np.full(int((~own).sum()), x), group.loc[~own, metric], color="tab:blue", alpha=0.7)
        ax.scatter(np.full(int(own.sum()), x), group.loc[own, metric], color="tab:red", marker="*", s=120)
    ax.set_xticks(range(len(configs)), [f"t{c}" for c in configs])
    ax.set_xlabel("configuration (its trial)")
    ax.set_ylabel(f"{metric} at the minimum")
    return ax.figure


# ---------------------------------------------------------------------------- the page
@dataclass
class _Page:
    folder: Path
    parts: list = field(default_factory=list)
    figures: list = field(default_factory=list)

    def heading(self, text: str, level: int = 2) -> None:
        self.parts.append(f"<h{level}>{html.escape(text)}</h{level}>")

    def text(self, text: str) -> None:
        self.parts.append(f"<p>{text}</p>")

    def table(self, frame: pd.DataFrame, max_rows: int | None = None) -> None:
        shown = frame if max_rows is None else frame.head(max_rows)
        table = shown.to_html(index=False, na_rep="", float_format=format_value, border=0, classes="t")
        self.parts.append(f"<div class='w'>{table}</div>")

    def figure(self, figure, name: str, caption: str) -> None:
        path = self.folder / "figures" / f"{name}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        figure.savefig(path, dpi=FIGURE_DPI, bbox_inches="tight")
        self.figures.append(path)
        self.parts.append(f"<figure><a href='figures/{path.name}' target='_blank' title='open full size'>"
                          f"<img src='figures/{path.name}' alt='{html.escape(caption)}'></a>"
                          f"<figcaption>{html.escape(caption)}</figcaption></figure>")

    def render(self, title: str) -> str:
        return ("<!DOCTYPE html>\n<html><head><meta charset='utf-8'>"
                f"<title>{html.escape(title)}</title><style>{CSS}</style></head><body>\n"
                + "\n".join(self.parts) + "\n</body></html>\n")


CSS = ("body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}"
       "table.t{border-collapse:collapse;font-size:13px;margin:.5em 0 1em}"
       "table.t th,table.t td{padding:3px 8px;border-bottom:1px solid #ddd;text-align:right}"
       "figure{display:block;margin:1em 0}figure img{width:900px;max-width:100%;height:auto;cursor:zoom-in}"
       "figcaption{font-size:13px;color:#555;max-width:900px}code{background:#f3f3f3}"
       "div.w{overflow-x:auto}")


def format_value(value) -> str:
    """4 significant digits; a whole number as one (19210, not 1.921e+04)."""
    if np.isfinite(value) and float(value).is_integer() and abs(value) < 1e15:
        return str(int(value))
    return f"{value:.4g}"


def _safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", str(text)).strip("_") or "study"


def write_report(study: str | StudyRecord | None = None, out: str | Path | None = None,
                 options: ReportOptions | None = None, tracking_uri: str = DEFAULT_TRACKING_URI,
                 storage: str | None = None, experiment: str | None = None, progress: bool = True) -> Path:
    """Compute every part of the report on ``study`` and write it to ``out`` (default
    ``reports/<study>``); returns the path of ``report.html``. ``progress``: a tqdm bar on stderr.
    The report is made in a hidden folder inside ``out`` and its files moved into place once all
    are made: a report that fails halfway leaves ``out`` as it was (and makes no folder)."""
    options = options or ReportOptions()
    record = find_study(study, tracking_uri, storage, experiment)
    folder = Path(out) if out is not None else Path("reports") / _safe_name(record.name)
    made = [path for path in (folder, *folder.parents) if not path.exists()]  # innermost first
    folder.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".report-partial-", dir=folder))
    try:
        _make_report(_Page(staging), record, options, progress)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        for path in made:
            if not any(path.iterdir()):
                path.rmdir()
        raise
    _move_files(staging, folder)
    if options.log:
        client_for(record.tracking_uri).log_artifacts(record.parent_run_id, str(folder), artifact_path="report")
    return folder / "report.html"


def _move_files(staging: Path, folder: Path) -> None:
    """The report's files from ``staging`` into ``folder`` (the last report's figures removed first;
    ``report.html`` last), then ``staging`` removed. Other files in ``folder`` stay."""
    for old in (folder / "figures").glob("*.png"):
        old.unlink()
    files = sorted((p for p in staging.rglob("*") if p.is_file()), key=lambda p: p.name == "report.html")
    for path in files:
        target = folder / path.relative_to(staging)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(path, target)
    shutil.rmtree(staging)


def _make_report(page: _Page, record: StudyRecord, options: ReportOptions, progress: bool) -> None:
    """Every section of the report, its figures and tables written into ``page.folder``."""
    from threadpoolctl import threadpool_limits
    from tqdm import tqdm

    started, timings = time.perf_counter(), {}
    steps = 3 + len(GROUPS) + options.top_k * (2 + options.seeds) + 3  # made exact once the seeds are in
    bar = tqdm(total=steps, desc=f"report {record.name}", unit="step", file=sys.stderr, disable=not progress,
               leave=False)

    def step(what: str) -> None:
        bar.set_postfix_str(what, refresh=False)
        bar.update(1)

    # one BLAS thread: the nets are small, and two threads on two busy cores spin more than they compute
    with bar, threadpool_limits(1):
        tick = time.perf_counter()
        trials = load_trials(record, config_keys=tuple(GROUPS.values()))
        step("trials")
        curves = load_curves(record)
        step("curves")
        optuna_study = load_optuna_study(record)
        timings["loading"] = time.perf_counter() - tick
        _study_section(page, record, trials)

        tick = time.perf_counter()
        _convergence_section(page, trials, curves, options, step)
        timings["convergence"] = time.perf_counter() - tick

        tick = time.perf_counter()
        importances = param_importances(optuna_study) if optuna_study is not None else pd.DataFrame()
        step("importances")
        _importance_section(page, importances, optuna_study is not None)
        timings["importances"] = time.perf_counter() - tick

        if (trials["state"] == "COMPLETE").any():
            tick = time.perf_counter()
            runs = retrain_seeds(record, options.top_k, options.seeds, trials=trials, log=options.log, on_step=step)
            timings["seeds (train or load)"] = time.perf_counter() - tick
            ok = runs.runs.loc[runs.runs["state"] == "COMPLETE"]
            bar.total = bar.n + int((ok["origin"] == "trial").sum()) + int((ok["group"].value_counts() > 1).sum()) + 2
            tick = time.perf_counter()
            summary, paths = minima_summary(runs, step)
            comparison = compare_seeds(runs, n_alphas=options.n_alphas, tol=options.basin_tol, on_step=step)
            timings["minima and barriers"] = time.perf_counter() - tick
            _minima_section(page, runs, summary, paths, options)
            _seeds_section(page, runs, comparison, options)
            tick = time.perf_counter()
            one, two = best_landscapes(runs, options.grid, on_step=step)
            timings["landscapes"] = time.perf_counter() - tick
            _landscape_section(page, runs, summary, one, two, options)
        else:
            page.heading("Minima")
            page.text("No trial completed: there are no minima to compare yet.")
    timings["total"] = time.perf_counter() - started
    _footer(page, record, options, timings)
    (page.folder / "report.html").write_text(page.render(f"Study {record.name}: convergence and minima"))


def _study_section(page: _Page, record: StudyRecord, trials: pd.DataFrame) -> None:
    page.parts.append(f"<h1>Study <code>{html.escape(record.name)}</code>: convergence and minima</h1>")
    counts = trials["state"].value_counts().to_dict()
    states = ", ".join(f"{n} {s.lower()}" for s, n in counts.items())
    storage = html.escape(describe(record.storage)) if record.storage else "not found"
    lines = [f"MLflow experiment <code>{html.escape(record.experiment)}</code>, parent run "
             f"<code>{record.parent_run_id}</code> in <code>{html.escape(mask_password(record.tracking_uri))}</code>; "
             f"Optuna storage <code>{storage}</code>.", f"{len(trials)} trials: {states}.",
             f"Objective: {', '.join(f'{d} {m}' for m, d in zip(record.objective, record.directions))}."]
    if record.picked:
        lines.append(f"Picked as {html.escape(record.picked)}.")
    column = "value" if "value" in trials.columns else "value_0"
    complete = trials.loc[trials["state"] == "COMPLETE"].sort_values(
        column, ascending=record.directions[0] == "minimize")
    ties = tied_best(trials, record.directions[0]) if len(record.directions) == 1 else []
    if len(ties) > 1:
        lines.append(f"<b>The best value ({complete[column].iloc[0]:.4g}) is tied among {len(ties)} trials</b> "
                     f"({', '.join(map(str, ties[:20]))}{', ...' if len(ties) > 20 else ''}): the study cannot tell "
                     "them apart, and the first of them is no better than the others.")
    page.text("<br>".join(lines))
    page.heading("Best trials")
    complete.to_csv(page.folder / "best_trials.csv", index=False)
    objective = [c for c in complete.columns if c == "value" or c.startswith("value_")]
    shown = complete[["trial", *objective, *[k for k in record.searched if k in complete.columns]]]
    page.text(f"The {min(TOP_TRIALS_SHOWN, len(complete))} best of the {len(complete)} complete trials: the "
              f"objective (<i>value</i>: {html.escape(', '.join(record.objective))}) and the searched "
              "hyperparameters. Every column of every complete trial (final and test metrics, epochs, seed, run id): "
              "<a href='best_trials.csv'>best_trials.csv</a>.")
    page.table(shown, TOP_TRIALS_SHOWN)


def _convergence_section(page: _Page, trials, curves, options: ReportOptions, step) -> None:
    threshold = default_threshold(trials) if options.threshold is None else options.threshold
    page.heading("Convergence")
    ties = tied_best(trials, column="val_cost")
    if len(ties) > 1 and threshold == trials.loc[trials["trial"].isin(ties), "val_cost"].iloc[0]:
        page.text(f"<b>τ equals the best val_cost, tied among {len(ties)} trials</b>: epochs to τ measure when each "
                  "run first reached that floor; pass --threshold for another τ.")
    page.text(f"τ = {threshold:.4g}: {'the median final val_cost of the complete trials' if options.threshold is None else 'given'}. "  # noqa: E501
              "<i>n_reached</i>: runs whose val_cost reached τ; runs that stopped before (pruned or out of epochs) "
              "are censored, not dropped: <i>km_median</i> is the Kaplan–Meier median epoch to τ with them "
              f"accounted for (\"{KM_UNDEFINED}\": fewer than half the runs reached τ, so it is undefined), "
              "<i>median_epochs</i>/<i>median_seconds</i> count only the runs that reached τ. "
              "<i>median_rate</i>: decay rate per epoch of an exponential fit of val_cost; <i>median_auc</i>: "
              "the mean height of the val_cost curve.")
    page.table(km_explained(convergence_table(curves, trials, None, threshold)))
    for title, key in GROUPS.items():
        if key not in trials.columns or trials[key].isna().all():
            continue
        page.heading(f"By {title}", 3)
        page.table(km_explained(convergence_table(curves, trials, key, threshold)))
        figure = plot_grouped_curves(grouped_curves(curves, trials, key), logy=True)
        figure.axes[0].set_title(f"val_cost by {title}: median and interquartile band")
        page.figure(figure, f"curves_by_{_safe_name(title)}", f"Validation cost per epoch by {title}: median line, "
                    "25–75% band; later epochs are over the runs still going (see the counts in the table).")
        step(f"curves by {title}")


KM_UNDEFINED = "< half reached τ"  # a km_median cell without a value: fewer than half the runs reached τ


def km_explained(table: pd.DataFrame) -> pd.DataFrame:
    """``table`` with each missing ``km_median`` said in place: the Kaplan–Meier curve never falls to one
    half when fewer than half of the runs reached τ, so the median epoch is undefined, not zero."""
    if "km_median" not in table.columns:
        return table
    return table.assign(km_median=[KM_UNDEFINED if pd.isna(v) else format_value(v) for v in table["km_median"]])


def _importance_section(page: _Page, importances: pd.DataFrame, have_study: bool) -> None:
    page.heading("Parameter importances")
    if importances.empty:
        why = importances.attrs.get("problem") or "too few complete trials"
        page.text("Not available: " + (f"{html.escape(why)}." if have_study else
                                       "the Optuna storage was not found (pass --storage)."))
        return
    page.text("<i>fanova</i>: the share of the objective's variance each hyperparameter explains (fANOVA, Optuna's "
              f"default evaluator), the mean over {len(FANOVA_SEEDS)} random forests of {FANOVA_TREES} trees, seeds "
              f"{FANOVA_SEEDS[0]}–{FANOVA_SEEDS[-1]}: <i>fanova_sd</i>, <i>fanova_min</i>–<i>fanova_max</i> and "
              "<i>rank_min</i>–<i>rank_max</i> say how far the forests disagree, i.e. how uncertain the number is. "
              "<i>ped_anova</i>: PED-ANOVA (what optuna-dashboard shows), which parameters matter to reach the best "
              "10% of trials. The same numbers, computed the same way, as the parent run's "
              "<code>plots/param_importances.csv</code> (here: <a href='param_importances.csv'>param_importances.csv"
              f"</a>). <b>{html.escape(importances.attrs.get('uncertainty', ''))}</b>")
    importances.to_csv(page.folder / "param_importances.csv", index=False)
    page.table(importances)
    page.figure(plot_importances(importances), "param_importances", "Parameter importances: fANOVA (mean of the "
                "seeded forests, whisker their min–max) and PED-ANOVA, the numbers of the table above.")


def _minima_section(page: _Page, runs: SeedRuns, summary: pd.DataFrame, paths: dict, options) -> None:
    page.heading(f"Minima of the {len(summary)} best trials")
    page.text("Losses are the mean cost on the training set with dropout off. <i>barrier_initial_final</i>: "
              "max over α∈[0,1] of L((1-α)θ₀ + αθ) minus the larger end (0: the straight line from the initial "
              "weights θ₀ never rises above them); <i>monotone</i>: the loss falls all along it; <i>sharpness</i>: "
              "λ_max, the largest eigenvalue of the Hessian at θ, by Lanczos on Hessian-vector products (relative "
              "accuracy 1e-6; <i>lanczos_hvps</i> products); <i>sharpness_filter</i>: λ_max of D H D, D the "
              "filter norms (curvature along filter-normalised directions), unchanged by rescaling a ReLU layer by "
              "c and the next by 1/c, so comparable across trials where the raw λ_max is not (Dinh et al. 2017).")
    page.table(summary.drop(columns="note") if summary["note"].isna().all() else summary)
    page.figure(plot_interpolations(paths), "interpolation", "Training loss along (1-α)θ₀ + αθ for each of the "
                "best trials: α = 0 the initial weights, α = 1 the trained ones (Goodfellow et al. 2015).")


def _seeds_section(page: _Page, runs: SeedRuns, comparison: SeedComparison, options) -> None:
    page.heading("Seed robustness")
    retrained = runs.runs.loc[runs.runs["origin"] != "trial"]
    page.text(f"Each of the {runs.runs['config'].nunique()} best configurations trained again with "
              f"{options.seeds} other seeds (<code>train.seed</code> s₀+1…s₀+{options.seeds}; same data split) by "
              f"<code>experiments.trainer.train_config</code>: {int((retrained['origin'] == 'retrained').sum())} "
              f"trained now, {int((retrained['origin'] == 'reused').sum())} read back from earlier runs "
              "(MLflow child runs tagged <code>kind=seed-robustness</code>).")
    if options.seeds == 0:
        page.text("No seeds asked for (--seeds 0).")
    page.table(runs.runs.drop(columns=["trial", "reason"] if runs.runs["reason"].isna().all() else ["trial"]))
    page.heading("Spread of the cost at the minima per configuration", 3)
    page.table(comparison.spread)
    page.figure(plot_final_spread(runs), "final_spread", "val_cost of every minimum per configuration, at the "
                "epoch its weights are from (star: the trial itself, dots: other seeds).")
    page.heading("Barriers between the minima", 3)
    page.text(f"Barrier between two minima θa, θb: max over α∈[0,1] of L((1-α)θa + αθb) minus max(L(θa), L(θb)) "
              "(the \"max_end\" variant, the most conservative: Frankle et al. 2020 subtract the mean of the ends, "
              f"Entezari et al. 2022 their linear interpolation; training loss, {options.n_alphas} points), for every "
              "pair of minima of one architecture, on the straight line and modulo permutation: permuting a hidden "
              "layer's units leaves the function unchanged, so of each pair the later minimum's units are first "
              "aligned to the earlier's by weight matching (Ainsworth et al. 2023, <code>analysis.align</code>; "
              "<i>*_aligned</i>). Minima "
              f"joined by barriers ≤ {comparison.tol:g} form one basin.")
    if comparison.barriers:
        page.table(barrier_summary(comparison))
    basins = comparison.basins.assign(**{c: comparison.basins[c].map(
        lambda d: ", ".join(f"{k}:{v}" for k, v in d.items())) for c in ("basins", "basins_aligned")})
    page.table(basins)
    if not comparison.group_basins.empty:
        page.text("All the minima of one architecture together, across configurations:")
        page.table(comparison.group_basins.assign(**{c: comparison.group_basins[c].map(
            lambda basins: " | ".join(", ".join(b) for b in basins)) for c in ("members", "members_aligned")}))
    for group, matrix in comparison.barriers.items():
        figure = plot_barrier_heatmaps(matrix, comparison.aligned_barriers[group], f"barriers, {group}")
        page.figure(figure, f"barriers_{_safe_name(group)}", f"Barrier heat maps between the minima of {group}, on "
                    "the straight line (left) and after aligning each pair by weight matching (right), one scale.")


def _landscape_section(page: _Page, runs: SeedRuns, summary, one, two, options) -> None:
    row = runs.runs.iloc[0]
    best = summary.iloc[0]
    page.heading(f"Loss landscape of the best trial (trial {row['config']})")
    page.text(f"Training loss at θ* + α d₁ (+ β d₂), d₁ and d₂ random filter-normalised directions (Li et al. "
              f"2018): each neuron's incoming weights rescaled to the norm of θ*'s, biases not moved. Sharpness "
              f"λ_max {best['sharpness']:.4g} ({best['lanczos_hvps']} Lanczos steps), filter-normalised "
              f"{best['sharpness_filter']:.4g}.")
    figure = plot_landscape_1d(one)
    figure.axes[0].set_title(f"trial {row['config']}: 1-D, 41 points")
    page.figure(figure, "landscape_1d", "Training loss along one filter-normalised direction.")
    figure = plot_landscape_2d(two, log=bool((two["loss"] > 0).all()))
    figure.axes[0].set_title(f"trial {row['config']}: 2-D, {options.grid}×{options.grid}")
    page.figure(figure, "landscape_2d", "Training loss over a plane of two filter-normalised directions. "
                + landscape_caption(two))


def landscape_caption(two: pd.DataFrame) -> str:
    """Where the 2-D landscape's star is, and why the lowest point of the grid may be elsewhere."""
    centre = two.loc[(two["alpha"].abs() < 1e-12) & (two["beta"].abs() < 1e-12), "loss"]
    low = two.loc[two["loss"].idxmin()]
    words = "★: the trained weights θ*, at α = β = 0, the centre of the plane."
    if centre.empty or low["loss"] >= centre.iloc[0]:
        return words + " It is the lowest point of the grid."
    return (words + f" The lowest grid point is at α = {low['alpha']:.2g}, β = {low['beta']:.2g} (loss "
            f"{low['loss']:.4g}, against {centre.iloc[0]:.4g} at θ*): θ* is where training stopped and the epoch "
            "with the lowest validation cost, not a minimum of the training loss, whose gradient there is not zero, "
            "so the plane slopes down from it in some direction.")


def _footer(page: _Page, record: StudyRecord, options: ReportOptions, timings: dict) -> None:
    page.heading("How this was made")
    page.text(f"<code>python -m analysis.report --study {html.escape(record.name)} --top-k {options.top_k} "
              f"--seeds {options.seeds} --grid {options.grid}</code>, "
              f"{datetime.datetime.now():%Y-%m-%d %H:%M:%S}. Seconds per part: "
              + ", ".join(f"{k} {v:.1f}" for k, v in timings.items()) + ".")


# ---------------------------------------------------------------------------- the command
def parse_args(argv=None) -> argparse.Namespace:
    defaults = ReportOptions()
    parser = argparse.ArgumentParser(prog="python -m analysis.report", description=__doc__.splitlines()[0])
    parser.add_argument("--study", help="the study's name (default: the most recently active study, said on stderr)")
    parser.add_argument("--experiment", help="the MLflow experiment that holds it (default: any)")
    parser.add_argument("--tracking-uri", default=DEFAULT_TRACKING_URI, help="the MLflow store (default: %(default)s)")
    parser.add_argument("--storage", help="the Optuna storage (default: the study's sweep.storage)")
    parser.add_argument("--out", help="the report's folder (default: reports/<study>)")
    parser.add_argument("--top-k", type=int, default=defaults.top_k, help="best trials to compare (%(default)s)")
    parser.add_argument("--seeds", type=int, default=defaults.seeds,
                        help="other seeds per best configuration (%(default)s; 0: none)")
    parser.add_argument("--grid", type=int, default=defaults.grid, help="points per side of the 2-D landscape "
                        "(%(default)s)")
    parser.add_argument("--threshold", type=float, help="τ for epochs to threshold (default: the median final "
                        "val_cost of the complete trials)")
    parser.add_argument("--basin-tol", type=float, default=defaults.basin_tol,
                        help="barrier at most this joins two minima in one basin (%(default)s)")
    parser.add_argument("--no-log", action="store_true", help="record nothing in MLflow (no seed runs, no artifact)")
    args = parser.parse_args(argv)
    for name in ("top_k", "grid"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.seeds < 0:
        parser.error("--seeds must be at least 0")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    options = ReportOptions(top_k=args.top_k, seeds=args.seeds, grid=args.grid, threshold=args.threshold,
                            basin_tol=args.basin_tol, log=not args.no_log)
    try:
        record = find_study(args.study, args.tracking_uri, args.storage, args.experiment)
        if record.picked:
            print(f"study {record.name!r}: {record.picked}", file=sys.stderr)
        path = write_report(record, args.out, options, progress=True)
    except (StudyNotFoundError, EmptyStudyError, StudyStorageError, ArtifactsNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
