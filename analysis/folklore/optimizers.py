"""Findings of ``experiment=optimizers``: the 7 optimizers, each at the learning rate the sweep
found best for it, compared on their convergence curves and final cost over seeds."""

import numpy as np

from .common import Findings, StudyData, curves_figure, edge_caveat, edge_rates, summarise_runs, thresholds, tuned

CLAIM = ("Adaptive optimizers (RMSprop, Adam and kin) converge faster than plain SGD and need less tuning; "
         "which optimizer to use is a key hyperparameter.")
BY = ["optimizer"]


def findings(study: StudyData) -> Findings:
    """Per optimizer at its tuned rate: epochs to τ, best and final validation cost; plus how
    sensitive each is to its learning rate (the spread of mean best cost over the rate grid)."""
    tau, train_tau = thresholds(study.cfg)
    chosen = tuned(study.trials, BY)
    table = summarise_runs(study.curves, chosen, BY, tau, train_tau)
    table = table.merge(sensitivity(study.trials), on=BY, how="left")
    table = table.sort_values(["train_epochs_to_tau", "best_val_cost"], na_position="last", kind="stable")
    figures = {"val_cost": curves_figure(study.curves, chosen, BY, "val_cost", "val cost at each optimizer's tuned lr"),
               "lr_sensitivity": sensitivity_figure(study.trials)}
    lrs = ", ".join(f"{v:g}" for v in sorted(study.trials["optimizer.lr"].dropna().unique()))
    text = verdict(table.reset_index(drop=True), train_tau) + edge_caveat(edge_rates(study.trials, chosen, "optimizer"),
                                                                         "learning rates")
    return Findings("optimizers", CLAIM, text, table.reset_index(drop=True),
                    figures, notes=[
        f"Hidden layer of {list(study.cfg.model.hidden)}, ReLU, batch {study.cfg.train.batch_size}, "
        f"{study.cfg.train.epochs} epochs; learning rates {lrs}; each optimizer's other hyperparameters at "
        "their defaults (PyTorch's: SGD without momentum); tuned = lowest mean best validation cost over "
        f"{study.cfg.findings.seeds} seeds.",
        "lrs_within_25pct: how many rates of the grid reach a mean best validation cost within 25 % of the "
        "optimizer's best (more = less tuning needed).",
        f"train_epochs_to_tau, val_epochs_to_tau: Kaplan–Meier median epoch of training cost ≤ {train_tau:g} (how "
        f"fast the optimizer learns the data it sees) and of validation cost ≤ {tau:g} (NaN: fewer than half the "
        "runs got there).",
    ])


def sensitivity(trials):
    """Per optimizer: ``lrs_within_25pct``, the number of rates whose mean best validation cost over
    seeds is within 25 % of its best rate's (failed runs count as +inf)."""
    scored = trials.assign(_s=np.where(trials["state"] == "COMPLETE", trials["best_val_cost"], np.inf))
    means = scored.groupby(["optimizer", "optimizer.lr"])["_s"].mean().reset_index()
    best = means.groupby("optimizer")["_s"].transform("min")
    means["_near"] = means["_s"] <= 1.25 * best
    return means.groupby("optimizer")["_near"].sum().astype(int).rename("lrs_within_25pct").reset_index()


def sensitivity_figure(trials):
    """Mean best validation cost against the learning rate, one line per optimizer (log-log)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6, 4), layout="constrained")
    ax = fig.add_subplot()
    complete = trials.loc[trials["state"] == "COMPLETE"]
    for name, rows in complete.groupby("optimizer"):
        mean = rows.groupby("optimizer.lr")["best_val_cost"].mean()
        ax.plot(mean.index, mean.to_numpy(), marker="o", label=name)
    ax.set(xscale="log", yscale="log", xlabel="learning rate", ylabel="best val cost (mean over seeds)",
           title="sensitivity to the learning rate")
    ax.legend(fontsize=8)
    return fig


def verdict(table, tau: float) -> str:
    """Whether the adaptive optimizers beat plain SGD on speed (epochs to training cost ≤ τ) and on
    their best validation cost, and how many learning rates each tolerates."""
    rows = table.set_index("optimizer")
    if "sgd" not in rows.index or len(rows) < 2:
        return "Too few optimizers completed to compare."
    speed = rows["train_epochs_to_tau"].fillna(np.inf)
    adaptive = rows.drop(index="sgd")
    faster = [n for n in adaptive.index if speed[n] < speed["sgd"]]
    tied = [n for n in adaptive.index if speed[n] == speed["sgd"]]
    better = [n for n in adaptive.index if rows.loc[n, "best_val_cost"] < rows.loc["sgd", "best_val_cost"]]
    n = len(adaptive)
    if len(faster) == n:
        head = "**The claim holds here:** every adaptive optimizer learned the training set faster than plain SGD"
    elif faster:
        head = (f"**The claim holds only in part:** {len(faster)} of {n} adaptive optimizers learned the training "
                f"set faster than plain SGD, {len(tied)} as fast")
    else:
        head = (f"**The claim does not hold here:** with its learning rate tuned, no adaptive optimizer learned the "
                f"training set faster than plain SGD ({len(tied)} of {n} as fast)")
    epochs = ", ".join(f"{name} {'never' if not np.isfinite(e) else f'{e:.0f}'}" for name, e in speed.items())
    text = (f"{head}. Epochs to training cost ≤ {tau:g} at the tuned rate: {epochs}. {len(better)} of {n} reached a "
            f"lower best validation cost than SGD's {rows.loc['sgd', 'best_val_cost']:.3f} (lowest: "
            f"{rows['best_val_cost'].idxmin()}, {rows['best_val_cost'].min():.3f}). ")
    if "lrs_within_25pct" in rows:
        wide = rows["lrs_within_25pct"]
        text += (f"Learning rates within 25 % of the best: SGD {wide['sgd']}, the adaptive ones "
                 f"{int(adaptive['lrs_within_25pct'].min())}–{int(adaptive['lrs_within_25pct'].max())}.")
    return text
