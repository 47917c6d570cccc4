"""What the harness draws: a trial's cost curves, and a study's plots and trials table.

``render_curves`` draws one trial's ``curves.png`` with Pillow (in the tracking process, per trial).
``draw_study_files`` writes a finished study's Optuna plots (optimization history, parameter
importances, parallel coordinates, intermediate values: a PNG each and one interactive
``study.html``) and ``trials.csv`` into a folder, which the tracking process then logs on the
study's parent run. run.py calls it as the trials end, while the tracking process still writes the
last trials' records; it draws in processes forked from run.py, which has Optuna and scikit-learn
(fANOVA's forests) loaded already.
"""

from __future__ import annotations

import contextlib
import html
import logging
import math
import multiprocessing
import os
import signal
import sys
from pathlib import Path

import optuna

from .storage import open_storage

DRAW_TIMEOUT = 120.0  # seconds the study's plots may take before they are given up
DRAW_ERROR = ".draw-error"  # the drawing process's one-line reason for failing, read back by the caller
CHILD_ERROR = ".draw-error-child"  # the same, of the drawer's child (the slow PNGs)
SLOW_PLOTS = ("parallel_coordinate", "intermediate_values", "pareto_front")  # drawn in a second process


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
    """``trials.csv`` and, when ``plots``, Optuna's study plots (``plots/``: a PNG each and the
    interactive ``study.html``) of the finished study into ``folder``, drawn by a forked process and
    its child (the slowest half of the PNGs on the other core). Ctrl-C does not reach them; they are
    killed after ``DRAW_TIMEOUT`` seconds or when the caller is interrupted. Returns None when all was
    drawn, else why not (one line)."""
    process = multiprocessing.get_context("fork").Process(
        target=_draw, args=(study_name, storage, metrics, folder, plots), name="study-drawer", daemon=True)
    process.start()
    try:
        process.join(DRAW_TIMEOUT)
    finally:
        if process.is_alive():
            try:
                os.killpg(process.pid, signal.SIGKILL)  # its own process group, with its child: see _draw
            except ProcessLookupError:  # just started, not yet in a group of its own (nor with a child)
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
    os.setpgid(0, 0)  # a group of its own, with the child it forks: one signal ends both
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
    import matplotlib.pyplot  # noqa: F401  (before the fork below: imported once, not once per process)
    import optuna.visualization.matplotlib  # noqa: F401

    out = os.path.join(folder, "plots")
    os.makedirs(out, exist_ok=True)
    plots = study_plots(study, metrics)
    child_error = Path(folder, CHILD_ERROR)
    child = _forked(child_error, write_png_plots, study, plots, out, SLOW_PLOTS)
    failed = []
    for draw, only in ((write_html_plots, None), (write_png_plots, [n for n in plots if n not in SLOW_PLOTS])):
        try:
            draw(study, plots, out, only)
        except PlotError as err:  # the other plots are drawn all the same
            failed.append(str(err))
    if child is not None:
        os.waitpid(child, 0)  # no timeout of its own: the caller ends the whole group after DRAW_TIMEOUT
    if child_error.exists():
        failed.append(child_error.read_text())
        child_error.unlink()
    if failed:
        raise PlotError("not drawn: " + "; ".join(failed))


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


def study_plots(study, metrics: list[str]) -> dict[str, tuple[str, dict]]:
    """{file stem: (optuna.visualization function name, its keyword arguments)} for ``study``:
    optimization history, parameter importances, parallel coordinates, intermediate values
    (and the Pareto front of a multi-objective study, whose other plots show ``metrics[0]``).
    Importances: Optuna's default fANOVA with 16 trees instead of 64 (a quarter of the time),
    computed once for the PNG and the HTML plot."""
    multi = len(study.directions) > 1
    target = {"target": (lambda t: t.values[0]), "target_name": metrics[0]} if multi else {}
    plots = {
        "optimization_history": ("plot_optimization_history", target),
        "param_importances": ("plot_param_importances", {**target, "evaluator": _kept_fanova()}),
        "parallel_coordinate": ("plot_parallel_coordinate", target),
        "intermediate_values": ("plot_intermediate_values", {}),
    }
    if multi:
        plots["pareto_front"] = ("plot_pareto_front", {"target_names": metrics})
    return plots


def _kept_fanova():
    """Optuna's fANOVA evaluator (16 trees, seeded) that computes the importances once."""
    from optuna.importance import FanovaImportanceEvaluator

    class KeptFanova(FanovaImportanceEvaluator):
        def evaluate(self, study, params=None, *, target=None) -> dict[str, float]:
            if not hasattr(self, "_kept"):
                self._kept = super().evaluate(study, params, target=target)
            return self._kept

    return KeptFanova(n_trees=16, seed=0)


def write_png_plots(study, plots: dict, folder: str, only=None) -> list[str]:
    """``plots`` (see :func:`study_plots`; those named in ``only``, default all) as PNGs
    (optuna.visualization.matplotlib, Agg; no browser); the files written. A plot that raises is left
    out and named in the ``PlotError`` raised after the others are written. (Optuna draws a study
    with no complete trial, or one, as an empty or partial plot: that is no error.)"""
    import warnings

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import optuna.visualization.matplotlib as vm

    os.makedirs(folder, exist_ok=True)
    written, failed = [], []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name, (function, kwargs) in plots.items():
            if only is not None and name not in only:
                continue
            with _failure_noted(failed, f"{name}.png"):
                figure = _figure_of(getattr(vm, function)(study, **kwargs))
                try:
                    figure.savefig(os.path.join(folder, f"{name}.png"), dpi=80)
                    written.append(f"{name}.png")
                finally:
                    plt.close(figure)
    if failed:
        raise PlotError("; ".join(failed))
    return written


def write_html_plots(study, plots: dict, folder: str, only=None) -> list[str]:
    """``plots`` (see :func:`study_plots`; those named in ``only``, default all), interactive, in one
    ``study.html`` (see :func:`plots_page`); the files written. Nothing when plotly is not installed.
    A plot that raises is left out of the page and named in the ``PlotError`` raised after it is written."""
    import warnings

    try:
        import optuna.visualization as vp
        import plotly  # noqa: F401
    except ImportError:
        return []
    os.makedirs(folder, exist_ok=True)
    figures, failed = [], []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name, (function, kwargs) in plots.items():
            if only is None or name in only:
                with _failure_noted(failed, f"study.html's {name}"):
                    figures.append(getattr(vp, function)(study, **kwargs))
    if figures:
        Path(folder, "study.html").write_text(plots_page(study.study_name, figures))
    if failed:
        raise PlotError("; ".join(failed))
    return ["study.html"] if figures else []


@contextlib.contextmanager
def _failure_noted(failed: list[str], what: str):
    """Run the block; an exception it raises is appended to ``failed`` as one line naming ``what``."""
    try:
        yield
    except Exception as err:
        failed.append(f"{what} ({_one_line(err)[:200]})")


def plots_page(title: str, figures: list) -> str:
    """One HTML page with plotly ``figures``; plotly.js comes from the plotly CDN when the page opens.

    Why not embedded: plotly.js is 4.8 MB, and the MLflow UI's artifact view shows such a page
    blank (measured with MLflow 3.17); with the CDN the page is ~100 kB and renders in the UI.
    Offline, the PNGs beside it hold the same plots.
    """
    parts = [f.to_html(full_html=False, include_plotlyjs="cdn" if i == 0 else False, default_height="520px")
             for i, f in enumerate(figures)]  # a fixed height: "100%" is 0 px in the artifact view's frame
    return (f"<!DOCTYPE html>\n<html><head><meta charset='utf-8'><title>{html.escape(title)}: Optuna plots</title>"
            "</head><body>\n" + "\n".join(parts) + "\n</body></html>\n")


def _forked(error: Path, function, *args) -> int | None:
    """``function(*args)`` in a forked child; its pid, or None when it ran here because fork failed.
    What it raises is written to ``error`` in one line (in either case).
    The child only reads the study and draws: no lock that another thread may hold is needed there."""
    import warnings

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # Python >= 3.12: fork with threads
            pid = os.fork()
    except OSError:
        _told(error, function, *args)
        return None
    if pid == 0:
        code = 1
        try:
            _told(error, function, *args)
            code = 0
        finally:
            os._exit(code)
    return pid


def _told(error: Path, function, *args) -> None:
    """``function(*args)``; what it raises is written to ``error``, in one line, for the drawer to read."""
    try:
        function(*args)
    except Exception as err:
        error.write_text(_one_line(err))


def _figure_of(axes):
    """The figure behind what an optuna.visualization.matplotlib function returned."""
    import numpy as np
    first = np.asarray(axes, dtype=object).flat[0]
    return first.figure
