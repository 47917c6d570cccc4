"""Findings of ``experiment=dropout``: the gap between training and validation cost of a network
big enough to overfit, as the dropout rate rises."""

import numpy as np
from matplotlib.figure import Figure

from .common import Findings, StudyData, curves_figure, summarise_runs

CLAIM = ("Dropout reduces overfitting: randomly dropping hidden units while training narrows the gap "
         "between the training and the validation cost.")
BY = ["model.dropout"]


def findings(study: StudyData) -> Findings:
    """Per dropout rate, over seeds: final training and validation cost, their gap, the best
    validation cost and the epoch it came at."""
    tau = float(study.cfg.findings.threshold)
    runs = study.complete.merge(best_epochs(study.curves), on="trial", how="left")
    table = summarise_runs(study.curves, runs, BY, tau)
    table.insert(table.columns.get_loc("val_cost") + 1, "gap", table["val_cost"] - table["train_cost"])
    accuracy = runs.groupby(BY)["train_accuracy"].mean().reindex(table[BY[0]]).to_numpy()
    table.insert(table.columns.get_loc("val_accuracy") + 1, "accuracy_gap", accuracy - table["val_accuracy"])
    table.insert(table.columns.get_loc("best_val_cost") + 1, "best_epoch",
                 runs.groupby(BY)["best_epoch"].median().reindex(table[BY[0]]).to_numpy())
    figures = {"gap": gap_figure(table),
               "val_cost": curves_figure(study.curves, runs, BY, "val_cost", "val cost per dropout rate")}
    return Findings("dropout", CLAIM, verdict(table), table, figures, notes=[
        f"Hidden layers {list(study.cfg.model.hidden)} ({int(runs['n_params'].iloc[0]):,} weights) on "
        f"{study.cfg.data.name}, {study.cfg.optimizer.name} lr {study.cfg.optimizer.lr:g}, batch "
        f"{study.cfg.train.batch_size}, {study.cfg.train.epochs} epochs, {study.cfg.findings.seeds} seeds per rate.",
        "gap: final validation cost − final training cost (both on the whole set, dropout off); accuracy_gap: "
        "training − validation accuracy; best_epoch: "
        "median epoch of the lowest validation cost (where early stopping would stop).",
    ])


def best_epochs(curves):
    """Per trial, ``best_epoch``: the epoch of its lowest validation cost."""
    val = curves.loc[curves["metric"] == "val_cost"]
    rows = val.loc[val.groupby("trial")["value"].idxmin(), ["trial", "epoch"]]
    return rows.rename(columns={"epoch": "best_epoch"})


def gap_figure(table) -> Figure:
    """Final training cost, validation cost and best validation cost against the dropout rate."""
    fig = Figure(figsize=(6, 4), layout="constrained")
    ax = fig.add_subplot()
    for column, style in (("train_cost", "o-"), ("val_cost", "s-"), ("best_val_cost", "^--")):
        ax.plot(table[BY[0]], table[column], style, label=column)
    ax.set(yscale="log", xlabel="dropout rate", ylabel="cost (mean over seeds)", title="overfitting against dropout")
    ax.legend()
    return fig


def verdict(table) -> str:
    """Whether the gap shrinks as dropout rises, and what happens to validation cost and accuracy."""
    if len(table) < 2:
        return "Too few dropout rates completed to compare."
    rate = table[BY[0]].to_numpy()
    gap = table["gap"].to_numpy()
    none, rest = table.iloc[0], table.iloc[1:]
    narrowest = rest.loc[rest["gap"].idxmin()]
    if np.all(np.diff(gap) < 0):
        head = "**The claim holds here:** the validation–training gap shrinks with every rise in dropout"
    elif narrowest["gap"] < none["gap"]:
        head = (f"**The claim holds only in part:** the gap is narrowest at p = {narrowest[BY[0]]:g}, "
                "but it does not shrink steadily as dropout rises")
    else:
        head = "**The claim does not hold here:** no dropout rate narrowed the gap between validation and training cost"
    cost_best = table.loc[table["val_cost"].idxmin()]
    acc_best = table.loc[table["val_accuracy"].idxmax()]
    gaps = ", ".join(f"{g:.3f} at p = {r:g}" for r, g in zip(rate[1:], gap[1:]))
    return (f"{head} ({gap[0]:.3f} without dropout; {gaps}). "
            f"The final validation cost is lowest at p = {cost_best[BY[0]]:g} ({cost_best['val_cost']:.3f}, against "
            f"{none['val_cost']:.3f} without); the validation accuracy is highest at p = {acc_best[BY[0]]:g} "
            f"({acc_best['val_accuracy']:.1%}, against {none['val_accuracy']:.1%} without). Every rate still drives "
            f"the training cost to {table['train_cost'].max():.1g} or below: at this size the network memorises the "
            "training set with or without dropout.")
