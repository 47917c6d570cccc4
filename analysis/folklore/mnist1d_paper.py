"""Findings of ``experiment=mnist1d_paper``: the MNIST-1D paper's logistic-regression and MLP rows (test
accuracy, Greydanus & Kobak, ICML 2024, table 1) against ours, mean and 95 % t interval over seeds."""

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from ..stats import mean_interval
from .common import Findings, StudyData

CLAIM = ("The MNIST-1D paper's table: on its 4000 training and 1000 test rows, logistic regression reaches 32 % "
         "test accuracy and an MLP 40-100-100-10 ReLU (Adam 1e-2, batch 100, 6000 steps) 68 %.")
BY = "model.depth"
PAPER = {0: ("logistic regression", 32.0), 2: ("MLP 40-100-100-10", 68.0)}  # model.depth -> row, test accuracy %
CONFIDENCE = 0.95
TOLERANCE = 2.0  # points: reproduced when the paper's figure is in our interval or this close to our mean


def findings(study: StudyData) -> Findings:
    """One row per model: the paper's test accuracy, ours over the seeds (mean, 95 % t interval, std,
    range), the training accuracy, seconds per run and whether the paper's figure is reproduced."""
    runs = study.complete
    table = pd.DataFrame([summary(depth, group) for depth, group in runs.groupby(BY)])
    cfg = study.cfg
    return Findings("mnist1d_paper", CLAIM, verdict(table), table, {"test_accuracy": accuracy_figure(table)}, notes=[
        f"{cfg.data.name}: {rows_trained(cfg.data.val_fraction)}, the 1000 test rows test; {cfg.optimizer.name} lr "
        f"{cfg.optimizer.lr:g}, batch {cfg.train.batch_size}, {cfg.train.epochs} epochs, cross-entropy, the last "
        f"epoch's network, seeds {seed_range(runs)}.",
        f"ci_low, ci_high: the {CONFIDENCE:.0%} Student t interval of the mean over the seeds (scipy.stats.t); "
        f"reproduced: the paper's figure lies in it or within {TOLERANCE:g} points of our mean.",
        "The paper's MLP adds a residual connection on its second layer; ours is a plain stack of dense layers.",
    ])


def summary(depth: int, runs: pd.DataFrame) -> dict:
    """The table row of one model (``runs``: its COMPLETE trials, one per seed); accuracies in %."""
    name, paper = PAPER.get(int(depth), (f"depth {int(depth)}", np.nan))
    test = 100 * runs["test_accuracy"].to_numpy(dtype=np.float64)
    mean, (low, high) = float(test.mean()), interval(test)
    return {"model": name, "hidden_layers": int(depth), "n_params": int(runs["n_params"].iloc[0]),
            "paper_pct": paper, "runs": len(test), "test_pct": mean, "ci_low_pct": low, "ci_high_pct": high,
            "std_pct": float(test.std(ddof=1)) if len(test) > 1 else np.nan,
            "min_pct": float(test.min()), "max_pct": float(test.max()),
            "train_pct": float(100 * runs["train_accuracy"].mean()),
            "s_per_run": float(runs["duration_s"].mean()),
            "reproduced": reproduced(paper, mean, low, high)}


def interval(values: np.ndarray) -> tuple[float, float]:
    """The ``CONFIDENCE`` t interval of the mean of ``values`` (n,); NaNs for fewer than 2 values."""
    _, low, high, _ = mean_interval(values, CONFIDENCE)
    return low, high


def reproduced(paper: float, mean: float, low: float, high: float) -> bool:
    """The paper's figure in [low, high] (when known) or within ``TOLERANCE`` points of ``mean``."""
    return bool(abs(paper - mean) <= TOLERANCE or (low <= paper <= high))


def rows_trained(val_fraction: float) -> str:
    if val_fraction == 0:
        return "all 4000 training rows train (data.val_fraction=0)"
    return f"the 4000 training rows less a validation split of {val_fraction:g} train"


def seed_range(runs: pd.DataFrame) -> str:
    seeds = sorted(int(s) for s in runs["seed"].dropna().unique())
    return f"{seeds[0]}-{seeds[-1]} ({len(seeds)})" if seeds else "unknown"


def verdict(table: pd.DataFrame) -> str:
    """Which rows are reproduced, with the figures that decide it."""
    if table.empty:
        return "No run completed: nothing to compare with the paper."
    parts = []
    for row in table.itertuples():
        spread = (f"95 % interval [{row.ci_low_pct:.1f}, {row.ci_high_pct:.1f}] over {row.runs} seeds"
                  if np.isfinite(row.ci_low_pct) else "one seed: no interval")
        parts.append(f"{row.model}: {row.test_pct:.1f} % ({spread}) against the paper's "
                     f"{row.paper_pct:.0f} %{'' if row.reproduced else ' (not reproduced)'}")
    ok = table["reproduced"].all()
    missing = [row for row in PAPER.values() if row[0] not in set(table["model"])]
    head = ("**Reproduced:** every row of the paper we ran" if ok else
            f"**Not reproduced:** {', '.join(table.loc[~table['reproduced'], 'model'])}")
    tail = f" ({', '.join(m for m, _ in missing)} did not complete)" if missing else ""
    return f"{head}{tail}. " + "; ".join(parts) + "."


def accuracy_figure(table: pd.DataFrame) -> Figure:
    """Our test accuracy per model (mean, 95 % interval, each seed's range) beside the paper's."""
    fig = Figure(figsize=(5, 3.6), layout="constrained")
    ax = fig.add_subplot()
    x = np.arange(len(table))
    low = (table["test_pct"] - table["ci_low_pct"]).fillna(0).to_numpy()
    high = (table["ci_high_pct"] - table["test_pct"]).fillna(0).to_numpy()
    ax.errorbar(x, table["test_pct"], yerr=[low, high], fmt="o", capsize=6, label="ours (mean, 95 % interval)")
    ax.vlines(x, table["min_pct"], table["max_pct"], colors="C0", alpha=0.3, linewidth=6, label="ours (range)")
    ax.plot(x, table["paper_pct"], "s", color="C3", label="paper")
    ax.set(xticks=x, xticklabels=table["model"], ylabel="test accuracy (%)", title="MNIST-1D: paper against ours")
    ax.margins(x=0.3)
    ax.legend(loc="center")
    return fig
