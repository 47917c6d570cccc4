"""Findings of ``experiment=activations``: sigmoid, tanh and ReLU hidden units, each with its own
tuned learning rate, on the same networks: epochs to a cost threshold and final cost over seeds."""

import pandas as pd

from ..stats import DOES_NOT_HOLD, HOLDS, against_baseline
from .common import (
    SEED,
    Findings,
    StudyData,
    curves_figure,
    edge_caveat,
    edge_rates,
    n_train,
    per_seed,
    seed_range,
    split_seeds,
    steps_per_epoch,
    steps_to_reach,
    summarise_runs,
    thresholds,
    tuned,
    verdict_list,
)

CLAIM = "Sigmoid was a popular early choice, but is a slow learner; ReLU has become much more common."
BY = ["model.depth", "model.activation"]


def findings(study: StudyData) -> Findings:
    """Per depth and activation, each at its tuned rate (chosen on the tuning seeds): optimizer steps
    to training cost ≤ τ and the costs on the held-out seeds; tanh and ReLU against sigmoid, paired by
    seed, Holm over the two at each depth."""
    tau, train_tau = thresholds(study.cfg)
    n, batch = n_train(study), int(study.cfg.train.batch_size)
    speed = steps_to_reach(study.curves, study.trials, train_tau, n, batch_size=batch)
    runs = study.trials.merge(speed.drop(columns=["last_epoch"]), on="trial", how="left")
    tune_seeds, held_out = split_seeds(runs[SEED])
    chosen_rates = tuned(runs.loc[runs[SEED].isin(tune_seeds)], BY)[[*BY, "optimizer.lr"]].drop_duplicates()
    chosen = runs.loc[runs[SEED].isin(held_out)].merge(chosen_rates, on=[*BY, "optimizer.lr"])
    chosen = chosen.loc[chosen["state"] == "COMPLETE"].reset_index(drop=True)
    table = summarise_runs(study.curves, chosen, BY, tau, train_tau)
    steps = chosen.groupby(BY)[["steps_or_budget", "samples_or_budget"]].mean().reset_index()
    table = table.merge(steps.rename(columns={"steps_or_budget": "train_steps_to_tau",
                                              "samples_or_budget": "train_samples_to_tau"}), on=BY, how="left")
    parts = judge(chosen)
    diffs = pd.DataFrame([{"model.depth": d, "model.activation": a, "steps_vs_sigmoid": v.estimate,
                           "steps_vs_sigmoid_low": v.low, "steps_vs_sigmoid_high": v.high,
                           "steps_vs_sigmoid_p_holm": v.p_value}
                          for d, found in parts.items() for a, v in found.items()],
                         columns=[*BY, "steps_vs_sigmoid", "steps_vs_sigmoid_low", "steps_vs_sigmoid_high",
                                  "steps_vs_sigmoid_p_holm"])
    table = table.merge(diffs, on=BY, how="left")
    figures = {"train_cost": curves_figure(study.curves, chosen, "model.activation", "train_cost", "tuned lr,",
                                           panels="model.depth"),
               "val_cost": curves_figure(study.curves, chosen, "model.activation", "val_cost", "tuned lr,",
                                         panels="model.depth")}
    lrs = ", ".join(f"{v:g}" for v in sorted(study.trials["optimizer.lr"].dropna().unique()))
    edges = [f"{a} at depth {d}" for d, a in edge_rates(study.trials, chosen, BY)]
    text = verdict(table, parts, train_tau, (tune_seeds, held_out)) + edge_caveat(edges, "learning rates")
    per_epoch = steps_per_epoch(n, batch)
    return Findings("activations", CLAIM, text, table, figures, notes=[
        f"Plain SGD, batch {batch} ({per_epoch} steps per epoch of {n} training samples), {study.cfg.train.epochs} "
        f"epochs, hidden layers of {study.cfg.model.width}, cross-entropy; each activation's learning rate is the one "
        f"of the grid {lrs} with the lowest mean best validation cost over the tuning seeds "
        f"{seed_range(tune_seeds)}; every column comes from the held-out seeds {seed_range(held_out)}. Glorot "
        "initial weights for sigmoid and tanh, He for ReLU.",
        f"train_steps_to_tau, train_samples_to_tau: mean optimizer steps and samples seen to training cost ≤ "
        f"{train_tau:g}, the epoch interpolated linearly in log(cost) between the epoch-end costs (a run below τ "
        "after its first epoch counts as 1 epoch; one that never got there counts at its whole budget, a lower "
        f"bound); steps = epoch × {per_epoch}, samples = epoch × {n}. steps_vs_sigmoid: the activation's steps "
        "minus sigmoid's, paired by seed, mean with its 95 % t interval and the paired t-test's p, Holm over "
        "the two comparisons at each depth (analysis.stats.against_baseline).",
        f"val_epochs_to_tau, train_epochs_to_tau: Kaplan–Meier median of the first epoch with validation cost ≤ "
        f"{tau:g}, training cost ≤ {train_tau:g} (whole epochs; runs that never reach it are censored; NaN: fewer "
        "than half did); val_reached: the fraction of runs whose validation cost did.",
    ])


def judge(chosen: pd.DataFrame) -> dict:
    """``{depth: {activation: Verdict}}``: its steps to τ minus sigmoid's (claim: fewer), paired by
    seed, Holm over the activations at that depth."""
    found = {}
    for depth, rows in chosen.groupby("model.depth"):
        values = per_seed(rows, "model.activation", "steps_or_budget")
        if "sigmoid" in values and len(values) > 1:
            found[int(depth)] = against_baseline(values, "sigmoid", "lower")
    return found


def verdict(table, parts: dict, tau: float, seeds) -> str:
    """Whether tanh and ReLU learn the training set in fewer steps than sigmoid at every depth."""
    if not parts:
        return "Too few runs completed to compare sigmoid with ReLU."
    kinds = [v.verdict for found in parts.values() for v in found.values()]
    if all(k == HOLDS for k in kinds):
        head = "**The claim holds here:** sigmoid needs more steps than tanh and ReLU at every depth tried"
    elif HOLDS in kinds:
        head = (f"**The claim holds only in part:** sigmoid needs detectably more steps in {kinds.count(HOLDS)} of "
                f"{len(kinds)} comparisons")
    elif DOES_NOT_HOLD in kinds:
        head = "**The claim does not hold here:** with its own tuned learning rate, sigmoid is not the slower learner"
    else:
        head = "**No detectable difference at this sample size:** sigmoid is not detectably slower"
    rows = table.set_index(BY)
    text = []
    for depth, found in parts.items():
        mean = ", ".join(f"{a} {rows.loc[(depth, a), 'train_steps_to_tau']:.0f}" for a in rows.loc[depth].index)
        best = ", ".join(f"{a} {rows.loc[(depth, a), 'best_val_cost']:.3f}" for a in rows.loc[depth].index)
        text.append(f"with {depth} hidden layer{'s' if depth > 1 else ''}: mean steps to training cost ≤ {tau:g} "
                    f"{mean}; minus sigmoid's: {verdict_list(found.values(), '{:.0f}')}; best validation cost {best}")
    tune, held = seeds
    return (f"{head}. Each at its tuned rate (chosen on seeds {seed_range(tune)}), on the {len(held)} held-out seeds "
            f"{seed_range(held)}, paired by seed, mean difference (95 % t interval, p Holm over the two at each "
            f"depth): " + "; ".join(text) + ".")
