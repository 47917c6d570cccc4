"""What the harness draws: a trial's cost curves, and a study's plots and trials table.

``render_curves`` draws one trial's ``curves.png`` with Pillow (in the tracking process, per trial).
``draw_study_files`` writes a finished study's plots (optimization history, parameter
importances, parallel coordinates, intermediate values: a PNG each, drawn with one shared style,
``PLOT_STYLE``), its importances as a table (``param_importances.csv`` and ``.json``, the numbers of
the PNG: experiments.importance) and ``trials.csv`` into a folder, which the tracking process then
logs on the study's parent run. No interactive page: the PNGs work offline and in MLflow's artifact
view; optuna-dashboard on the study's storage is the interactive view (README). run.py calls it as
the trials end, while the tracking process still writes the last trials' records; it draws in a
process forked from run.py, which has Optuna and scikit-learn (fANOVA's forests) loaded already.
"""

from __future__ import annotations

import contextlib
import logging
import math
import multiprocessing
import os
import signal
import sys
from pathlib import Path

import optuna

from .importance import CSV_NAME, JSON_NAME, plot_importances, study_importances
from .storage import open_storage

DRAW_TIMEOUT = 120.0  # seconds the study's plots may take before they are given up
DRAW_ERROR = ".draw-error"  # the drawing process's one-line reason for failing, read back by the caller
PLOT_DPI = 100
PLOT_STYLE = {  # every study plot: readable fonts, room for the labels (saved with bbox_inches="tight")
    "figure.figsize": (9.0, 5.5), "font.size": 11, "axes.titlesize": 13, "axes.labelsize": 11,
    "xtick.labelsize": 10, "ytick.labelsize": 10, "legend.fontsize": 10, "savefig.bbox": "tight",
    "savefig.pad_inches": 0.15, "figure.dpi": PLOT_DPI,
}


# ---------------------------------------------------------------------------- a trial's curves
CURVE_COLORS = {"train_cost": (31, 119, 180), "val_cost": (255, 127, 14)}


def render_curves(epochs: list, path: str, title: str, size: tuple[int, int] = (400, 250)) -> None:
    """``epochs`` = [(epoch, {metric: value})] → a small PNG of train_cost and val_cost at ``path``.

    Drawn with Pillow (matplotlib's own image library): about 4 ms of CPU against 30-40 ms for
    the same chart in matplotlib Agg, which counts when a study has hundreds of trials.
    """
    from PIL import Image, ImageDraw, ImageFont

    width, height = size
    left, right, top, bottom = 54, width - 10, 24, height - 32
    image = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default(size=11)
    series = {name: [(step, m[name]) for step, m in epochs if math.isfinite(m.get(name, math.nan))]
              for name in CURVE_COLORS}
    values = [v for points in series.values() for _, v in points]
    low, high = (min(values), max(values)) if values else (0.0, 1.0)
    pad = 0.05 * (high - low) or 0.5
    low, high = low - pad, high + pad
    first, last = (epochs[0][0], epochs[-1][0]) if epochs else (0, 1)
    if last == first:
        first, last = first - 1, last + 1

    def x(step: float) -> float:
        return left + (step - first) / (last - first) * (right - left)

    def y(value: float) -> float:
        return bottom - (value - low) / (high - low) * (bottom - top)

    for value in nice_ticks(low, high, 6):
        draw.line([(left, y(value)), (right, y(value))], fill=(225, 225, 225))
        draw.text((left - 4, y(value)), f"{value:.3g}", fill="black", font=font, anchor="rm")
    for step in nice_ticks(first, last, 6, integer=True):
        draw.line([(x(step), bottom), (x(step), bottom + 3)], fill="black")
        draw.text((x(step), bottom + 5), str(int(step)), fill="black", font=font, anchor="mt")
    draw.rectangle([left, top, right, bottom], outline="black")
    for name, points in series.items():
        xy = [(x(step), y(value)) for step, value in points]
        if len(xy) > 1:
            draw.line(xy, fill=CURVE_COLORS[name], width=2)
        for px, py in xy if len(xy) < 12 else ():
            draw.ellipse([px - 2, py - 2, px + 2, py + 2], fill=CURVE_COLORS[name])
    draw.text((left, 6), title, fill="black", font=font)
    draw.text(((left + right) / 2, height - 3), "epoch", fill="black", font=font, anchor="mb")
    for i, name in enumerate(CURVE_COLORS):
        ly = top + 10 + 14 * i
        draw.line([(right - 84, ly), (right - 68, ly)], fill=CURVE_COLORS[name], width=2)
        draw.text((right - 64, ly), name, fill="black", font=font, anchor="lm")
    image.save(path, compress_level=1)


def nice_ticks(low: float, high: float, count: int, integer: bool = False) -> list[float]:
    """About ``count`` round tick values (steps of 1, 2, 2.5 or 5 × 10^k) within [low, high]."""
    raw = (high - low) / max(1, count - 1)
    if raw <= 0:
        return [low]
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    if integer:
        step = max(1, round(step))
    start = math.ceil(low / step) * step
    return [start + i * step for i in range(int((high - start) / step + 1e-9) + 1)]


# ---------------------------------------------------------------------------- a study's files
def draw_study_files(study_name: str, storage: str, metrics: list[str], folder: str, plots: bool) -> str | None:
    """``trials.csv`` and, when ``plots``, the study's plots (``plots/``: a PNG each, and the importances
    as ``param_importances.csv``/``.json``) of the finished study into ``folder``, drawn by a forked process
    (that a plot which hangs cannot hold up the study's end). Ctrl-C does not reach it; it is
    killed after ``DRAW_TIMEOUT`` seconds or when the caller is interrupted. Returns None when all was
    drawn, else why not (one line)."""
    process = multiprocessing.get_context("fork").Process(
        target=_draw, args=(study_name, storage, metrics, folder, plots), name="study-drawer", daemon=True)
    process.start()
    try:
        process.join(DRAW_TIMEOUT)
    finally:
        if process.is_alive():
            process.kill()
        process.join()
    error = Path(folder, DRAW_ERROR)
    if error.exists():
        reason = error.read_text()
        error.unlink()
        return reason
    if process.exitcode == -signal.SIGKILL:
        return f"not done after {DRAW_TIMEOUT:.0f} s"
    return None if process.exitcode == 0 else f"the drawing process ended with code {process.exitcode}"


def _draw(study_name: str, storage: str, metrics: list[str], folder: str, plots: bool) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C goes to the caller, which stops the drawing
    optuna.logging.set_verbosity(optuna.logging.ERROR)  # "no complete trials" while plotting a young study
    logging.getLogger("matplotlib").setLevel(logging.WARNING)  # a new machine's "generated new fontManager"
    try:
        _draw_files(study_name, storage, metrics, folder, plots)
    except Exception as err:  # told by the caller, in one line
        Path(folder, DRAW_ERROR).write_text(_one_line(err))
        sys.exit(1)


def _draw_files(study_name: str, storage: str, metrics: list[str], folder: str, plots: bool) -> None:
    study = StudySnapshot(study_name, open_storage(storage))  # afresh: no database connection crosses a fork
    study.trials_dataframe().to_csv(os.path.join(folder, "trials.csv"), index=False)
    if not plots:
        return
    import matplotlib
    matplotlib.use("Agg")
    import optuna.visualization.matplotlib  # noqa: F401

    try:
        write_png_plots(study, study_plots(study, metrics), os.path.join(folder, "plots"))
    except PlotError as err:  # the other plots were drawn all the same
        raise PlotError(f"not drawn: {err}") from None


class PlotError(RuntimeError):
    """Plots that raised, each named with its error: ``parallel_coordinate.png (ValueError: ...)``."""


def _one_line(err: Exception) -> str:
    """Why the drawing failed, in one line: a ``PlotError``'s own words, else the exception's type and first line."""
    reason = str(err) if isinstance(err, PlotError) else f"{type(err).__name__}: {err}"
    return reason.splitlines()[0][:300]


class StudySnapshot(optuna.Study):
    """The study with its trials read once: Optuna's plots read them a dozen times, deep-copied
    each time (a third of their cost). For reading only, after the trials are over."""

    def get_trials(self, deepcopy: bool = True, states=None) -> list:
        if not hasattr(self, "_snapshot"):
            self._snapshot = super().get_trials(deepcopy=False)
        return [t for t in self._snapshot if states is None or t.state in states]


def study_plots(study, metrics: list[str]) -> dict[str, tuple]:
    """{file stem: (how to draw it, its keyword arguments)} for ``study``: optimization history,
    parameter importances, parallel coordinates, intermediate values (and the Pareto front of a
    multi-objective study, whose other plots show ``metrics[0]``). "How" is the name of an
    optuna.visualization.matplotlib function, or a function of ours (``study, **kwargs`` → figure).
    Importances: :func:`experiments.importance.study_importances`, the numbers the report shows too,
    drawn with their spread (and written as ``param_importances.csv``/``.json``)."""
    multi = len(study.directions) > 1
    target = {"target": (lambda t: t.values[0]), "target_name": metrics[0]} if multi else {}
    name = metrics[0]
    plots = {
        "optimization_history": ("plot_optimization_history", {**target, "cost": _is_cost(name),
                                                                "objective_name": name}),
        "param_importances": (draw_importances, {}),
        "parallel_coordinate": ("plot_parallel_coordinate", {**target, "objective_name": name}),
        "intermediate_values": (plot_intermediate_values, {"metric": name}),
    }
    if multi:
        plots["pareto_front"] = ("plot_pareto_front", {"target_names": metrics})
    return plots


def _is_cost(metric: str) -> bool:
    """A metric drawn on a log axis: a cost (``val_cost``, ``train_cost``, ...), positive, spanning decades."""
    return metric.endswith("cost")


def draw_importances(study, folder: str | None = None):
    """:func:`experiments.importance.study_importances` of ``study`` as a figure; with ``folder``, the
    same numbers written there as ``param_importances.csv`` and ``param_importances.json``."""
    importances = study_importances(study)
    if folder is not None:
        importances.frame().to_csv(os.path.join(folder, CSV_NAME), index=False)
        Path(folder, JSON_NAME).write_text(importances.to_json())
    if not importances.rows:
        from matplotlib.figure import Figure
        figure = Figure(figsize=(8, 2.5), layout="constrained")
        ax = figure.add_subplot()
        ax.axis("off")
        ax.text(0.5, 0.5, f"No importances: {importances.problem}.", ha="center", va="center")
        return figure
    return plot_importances(importances)


def plot_intermediate_values(study, metric: str = "val_cost", clip: float = 30.0):
    """Every trial's reported value per epoch (``metric`` of the epoch the trial would keep, what the
    pruner compares), coloured by how the trial ended: pruned ones end with a ×, where the pruner
    stopped them; the best trial is drawn thick. A cost is drawn on a log axis, and values more than
    ``clip`` times the trials' median first value are drawn as ▲ on the axis' top edge, so that one
    diverging trial does not squash the others. Returns the figure."""
    import numpy as np
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    S = optuna.trial.TrialState
    everything = study.get_trials(deepcopy=False)
    trials = [t for t in everything if t.intermediate_values]
    figure = Figure(layout="constrained")
    ax = figure.add_subplot()
    ax.set_title("Intermediate values: each trial's value per epoch")
    ax.set_xlabel("epoch")
    ax.set_ylabel(f"{metric} (of the epoch kept so far)")
    series = {t.number: sorted((s, v) for s, v in t.intermediate_values.items() if np.isfinite(v)) for t in trials}
    values = np.array([v for points in series.values() for _, v in points])
    if values.size == 0:
        ax.text(0.5, 0.5, "No trial reported a value.", ha="center", va="center", transform=ax.transAxes)
        return figure
    log = _is_cost(metric) and bool((values > 0).all())
    if log:
        ax.set_yscale("log")
        top = float(np.median([points[0][1] for points in series.values() if points])) * clip
    else:
        q1, q3 = np.percentile(values, [25, 75])
        top = float(q3 + 3 * (q3 - q1)) if q3 > q1 else None
    if top is not None and values.max() <= top:
        top = None
    single = len(study.directions) == 1
    best = study.best_trial.number if single and any(t.state == S.COMPLETE for t in everything) else None
    colors = {S.COMPLETE: "tab:blue", S.PRUNED: "tab:orange", S.FAIL: "tab:red", S.RUNNING: "tab:gray"}
    clipped = 0
    for t in trials:
        points = series[t.number]
        if not points:
            continue
        steps = np.array([s for s, _ in points], dtype=float)
        ys = np.array([v for _, v in points])
        over = ys > top if top is not None else np.zeros(len(ys), bool)
        clipped += int(over.sum())
        shown = np.where(over, top, ys)
        color = colors.get(t.state, "tab:gray")
        thick = t.number == best
        ax.plot(steps, shown, color="tab:green" if thick else color, lw=2.8 if thick else 1.1,
                alpha=1.0 if thick else 0.6, zorder=3 if thick else 2)
        if over.any():
            ax.plot(steps[over], shown[over], "^", color=color, ms=7, zorder=4)
        if t.state == S.PRUNED:
            ax.plot(steps[-1], shown[-1], "x", color="black", ms=7, mew=1.6, zorder=4)
        elif t.state == S.FAIL:
            ax.plot(steps[-1], shown[-1], "o", color="tab:red", ms=5, zorder=4)
    if top is not None:
        low = float(values.min() / 1.3) if log else float(values.min())
        ax.set_ylim(low, top * (1.5 if log else 1.05))
    counts = {state: sum(1 for t in everything if t.state == state) for state in colors}
    unseen = sum(1 for t in everything if t.state == S.FAIL and not series.get(t.number))
    handles = [Line2D([], [], color=colors[S.COMPLETE], label=f"complete ({counts[S.COMPLETE]})"),
               Line2D([], [], color=colors[S.PRUNED], marker="x", mec="black",
                      label=f"pruned ({counts[S.PRUNED]}): × where stopped"),
               Line2D([], [], color=colors[S.FAIL], marker="o", label=f"failed ({counts[S.FAIL]}"
                      + (f"; {unseen} without a finite value" if unseen else "") + ")")]
    if best is not None:
        handles.insert(0, Line2D([], [], color="tab:green", lw=2.8, label=f"best: trial {best}"))
    if clipped:
        handles.append(Line2D([], [], ls="", marker="^", color="tab:gray",
                              label=f"{clipped} value{'s' if clipped > 1 else ''} above the axis\n"
                                    f"(largest {values.max():.3g})"))
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.grid(alpha=0.3)
    return figure


def write_png_plots(study, plots: dict, folder: str, only=None) -> list[str]:
    """``plots`` (see :func:`study_plots`; those named in ``only``, default all) as PNGs in the shared
    ``PLOT_STYLE`` (matplotlib Agg; no browser); the files written. A plot that raises is left out and
    named in the ``PlotError`` raised after the others are written. (Optuna draws a study with no
    complete trial, or one, as an empty or partial plot: that is no error.)"""
    import warnings

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import optuna.visualization.matplotlib as vm

    os.makedirs(folder, exist_ok=True)
    written, failed = [], []
    with warnings.catch_warnings(), matplotlib.rc_context(PLOT_STYLE):
        warnings.simplefilter("ignore")
        for name, (function, kwargs) in plots.items():
            if only is not None and name not in only:
                continue
            with _failure_noted(failed, f"{name}.png"):
                if function is draw_importances:
                    figure = draw_importances(study, folder, **kwargs)
                elif callable(function):
                    figure = function(study, **kwargs)
                else:
                    figure = _optuna_figure(getattr(vm, function), study, kwargs)
                try:
                    figure.savefig(os.path.join(folder, f"{name}.png"), dpi=PLOT_DPI, bbox_inches="tight")
                    written.append(f"{name}.png")
                finally:
                    plt.close(figure)
    if failed:
        raise PlotError("; ".join(failed))
    return written


def _optuna_figure(function, study, kwargs: dict):
    """An optuna.visualization.matplotlib plot made legible: our style over its ggplot one, a log axis
    for a cost (``cost``), the parallel coordinates' axis names on two lines and spaced out."""
    import matplotlib.pyplot as plt

    kwargs = dict(kwargs)
    cost = kwargs.pop("cost", False)
    objective = kwargs.pop("objective_name", None)
    kind = getattr(function, "__name__", "")
    from unittest import mock

    with mock.patch.object(plt.style, "use", lambda *args, **kwargs: None):  # Optuna's ggplot: our style instead
        figure = _figure_of(function(study, **kwargs))
    axes = figure.axes
    if kind == "plot_optimization_history" and cost and axes:
        values = [v for t in study.get_trials(deepcopy=False) for v in (t.values or [])]
        if values and min(values) > 0:
            axes[0].set_yscale("log")
        if objective:
            axes[0].set_ylabel(objective)
    if kind == "plot_parallel_coordinate" and axes:
        ax = axes[0]
        names = [label.get_text() for label in ax.get_xticklabels()]
        names = [objective if (objective and n == "Objective Value") else n for n in names]
        ax.set_xticks(ax.get_xticks(), [n.replace(".", ".\n", 1) for n in names], rotation=0, ha="center")
        figure.set_size_inches(max(9.0, 2.0 * len(names) + 2), 6.0)
        if objective and len(axes) > 1:
            axes[1].set_ylabel(objective)  # the colour bar
    return figure


@contextlib.contextmanager
def _failure_noted(failed: list[str], what: str):
    """Run the block; an exception it raises is appended to ``failed`` as one line naming ``what``."""
    try:
        yield
    except Exception as err:
        failed.append(f"{what} ({_one_line(err)[:200]})")


def _figure_of(axes):
    """The figure behind what an optuna.visualization.matplotlib function returned."""
    import numpy as np
    first = np.asarray(axes, dtype=object).flat[0]
    return first.figure
