"""Findings of ``experiment=activations``: sigmoid, tanh and ReLU hidden units, each with its own
tuned learning rate, on the same networks: epochs to a cost threshold and final cost over seeds."""

import numpy as np

from .common import Findings, StudyData, curves_figure, edge_caveat, edge_rates, summarise_runs, thresholds, tuned

CLAIM = "Sigmoid was a popular early choice, but is a slow learner; ReLU has become much more common."
BY = ["model.depth", "model.activation"]


def findings(study: StudyData) -> Findings:
    """Per depth and activation, at its tuned rate: epochs to τ on the training and validation
    cost, best and final validation cost over the seeds."""
    tau, train_tau = thresholds(study.cfg)
    chosen = tuned(study.trials, BY)
    table = summarise_runs(study.curves, chosen, BY, tau, train_tau)
    figures = {"train_cost": curves_figure(study.curves, chosen, "model.activation", "train_cost", "tuned lr,",
                                           panels="model.depth"),
               "val_cost": curves_figure(study.curves, chosen, "model.activation", "val_cost", "tuned lr,",
                                         panels="model.depth")}
    lrs = ", ".join(f"{v:g}" for v in sorted(study.trials["optimizer.lr"].dropna().unique()))
    edges = [f"{a} at depth {d}" for d, a in edge_rates(study.trials, chosen, BY)]
    text = verdict(table, train_tau) + edge_caveat(edges, "learning rates")
    return Findings("activations", CLAIM, text, table, figures, notes=[
        f"Plain SGD, batch {study.cfg.train.batch_size}, {study.cfg.train.epochs} epochs, hidden layers of "
        f"{study.cfg.model.width}, cross-entropy; each activation's learning rate is the one of the grid {lrs} "
        f"with the lowest mean best validation cost over {study.cfg.findings.seeds} seeds; Glorot initial weights "
        "for sigmoid and tanh, He for ReLU.",
        f"val_epochs_to_tau, train_epochs_to_tau: Kaplan–Meier median of the first epoch with validation cost ≤ "
        f"{tau:g}, training cost ≤ {train_tau:g} (runs that never reach it are censored; NaN: fewer than half did); "
        "val_reached: the fraction of runs whose validation cost did.",
    ])


def verdict(table, tau: float) -> str:
    """Whether sigmoid learns the training set slowest at every depth, and how it generalises."""
    parts, slowest = [], []
    for depth, rows in table.groupby("model.depth"):
        rows = rows.set_index("model.activation")
        if not {"sigmoid", "relu"} <= set(rows.index):
            continue
        speed = rows["train_epochs_to_tau"].fillna(np.inf)
        slowest.append(bool(speed["sigmoid"] >= speed.max() and speed["sigmoid"] > speed["relu"]))
        parts.append(f"with {int(depth)} hidden layer{'s' if depth > 1 else ''}, the training cost fell below "
                     f"{tau:g} after {_epochs(rows, 'sigmoid')} for sigmoid, {_epochs(rows, 'tanh')} for tanh and "
                     f"{_epochs(rows, 'relu')} for ReLU; best validation cost "
                     + ", ".join(f"{a} {rows.loc[a, 'best_val_cost']:.3f}" for a in rows.index))
    if not slowest:
        return "Too few runs completed to compare sigmoid with ReLU."
    if all(slowest):
        head = "**The claim holds here:** sigmoid is the slowest learner at every depth tried"
    elif any(slowest):
        head = "**The claim holds only in part:** sigmoid is the slowest learner at some depths, not at all"
    else:
        head = "**The claim does not hold here:** with its own tuned learning rate, sigmoid is not the slowest learner"
    return head + "; " + "; ".join(parts) + "."


def _epochs(rows, activation: str) -> str:
    if activation not in rows.index:
        return "n/a"
    value = rows.loc[activation, "train_epochs_to_tau"]
    return f"{value:.0f} epochs" if np.isfinite(value) else "more epochs than the runs had"
