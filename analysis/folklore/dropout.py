"""Findings of ``experiment=dropout``: the gap between training and validation cost of a network
big enough to overfit, as the dropout rate rises."""

from dataclasses import replace

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from ..stats import DOES_NOT_HOLD, HOLDS, against_baseline, trend
from .common import SEED, Findings, StudyData, curves_figure, per_seed, summarise_runs, verdict_list

CLAIM = ("Dropout reduces overfitting: randomly dropping hidden units while training narrows the gap "
         "between the training and the validation cost.")
BY = ["model.dropout"]
UNDERFIT_SHARE = 0.25  # a narrowing is (in part) underfitting when the training cost's rise is this much of it


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
    parts = judge(runs)
    table = table.merge(split_table(parts), on=BY, how="left")
    n_seeds = int(runs[SEED].nunique())
    return Findings("dropout", CLAIM, verdict(table, parts, n_seeds), table, figures, notes=[
        f"Hidden layers {list(study.cfg.model.hidden)} ({int(runs['n_params'].iloc[0]):,} weights) on "
        f"{study.cfg.data.name}, {study.cfg.optimizer.name} lr {study.cfg.optimizer.lr:g}, batch "
        f"{study.cfg.train.batch_size}, {study.cfg.train.epochs} epochs, {study.cfg.findings.seeds} seeds per rate.",
        "gap: final validation cost − final training cost (both on the whole set, dropout off); accuracy_gap: "
        "training − validation accuracy; best_epoch: "
        "median epoch of the lowest validation cost (where early stopping would stop).",
        "Trends: Spearman's ρ of the rate with the run's final value over all runs, with its Fisher-z 95 % "
        "interval; the p-value is Page's test over the seeds (each seed a block) when every seed ran every rate "
        "(analysis.stats.trend). gap_change, val_change, train_change: the mean change from no dropout, paired "
        "by seed, with its 95 % t interval (unadjusted) and the paired t-test's p Holm-corrected over the rates "
        "(analysis.stats.against_baseline); gap_change = val_change − train_change. train_share: train_change "
        "over the narrowing −gap_change (the part of it that is the network fitting its training set less well); "
        f"a narrowing counts as underfitting where the training cost is detectably higher and train_share ≥ "
        f"{UNDERFIT_SHARE:.0%}.",
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


def judge(runs: pd.DataFrame) -> dict:
    """The gap and its two parts over the dropout rate, from one row per run (``model.dropout``,
    ``train.seed``, final ``train_cost`` and ``val_cost``): ``{"trend": {"gap", "val_cost",
    "train_cost"}: Verdict}`` (Spearman over the runs, Page over the seeds when complete; claims: the
    gap and the validation cost fall, the training cost rises), and per rate against no dropout,
    paired by seed and Holm-corrected over the rates: ``"gap"`` (claim: lower), ``"val"`` (lower),
    ``"train"`` (higher: underfitting) ``{rate: Verdict}``."""
    runs = runs.assign(gap=runs["val_cost"] - runs["train_cost"])
    trends = {value: trend(runs, BY[0], value, claim, SEED, label=label)
              for value, claim, label in (("gap", "decreasing", "gap (final validation − training cost)"),
                                          ("val_cost", "decreasing", "its validation part"),
                                          ("train_cost", "increasing", "its training part (claim: rises)"))}
    baseline = float(runs[BY[0]].min())
    parts = {"trend": trends}
    for key, value, claim in (("gap", "gap", "lower"), ("val", "val_cost", "lower"), ("train", "train_cost", "higher")):
        values = per_seed(runs, BY[0], value)
        found = against_baseline({k: values[k] for k in sorted(values)}, baseline, claim)
        parts[key] = {float(k): replace(v, label=f"p = {k:g}") for k, v in found.items()}
    return parts


def underfitting(parts: dict, share: float = UNDERFIT_SHARE) -> list:
    """The rates whose training cost is detectably above no dropout's (Holm) and whose rise is at
    least ``share`` of the gap's narrowing there: where a narrower gap is, in good part, the network
    fitting its training set less well."""
    split = split_table(parts).set_index(BY[0])
    return [rate for rate, v in parts["train"].items()
            if v.verdict == HOLDS and split.loc[rate, "train_share"] >= share]


def split_table(parts: dict) -> pd.DataFrame:
    """One row per rate but the baseline: the gap's change from no dropout and its validation and
    training parts (``gap_change = val_change − train_change``), each with its 95 % t interval and
    Holm p-value, and ``train_share``: the part of the narrowing that is the training cost rising."""
    rows = []
    for rate in parts["gap"]:
        row = {BY[0]: rate}
        for key in ("gap", "val", "train"):
            v = parts[key][rate]
            row.update({f"{key}_change": v.estimate, f"{key}_change_low": v.low, f"{key}_change_high": v.high,
                        f"{key}_change_p_holm": v.p_value})
        narrowing = -row["gap_change"]
        row["train_share"] = row["train_change"] / narrowing if narrowing > 0 else np.nan
        rows.append(row)
    return pd.DataFrame(rows)


def verdict(table, parts: dict, n_seeds: int) -> str:
    """The trend of the gap over the rates, its split into the validation and training parts, and
    where the narrowing is underfitting."""
    if len(table) < 2 or not parts["gap"]:
        return "Too few dropout rates completed to compare."
    gap, val, train = (parts["trend"][k] for k in ("gap", "val_cost", "train_cost"))
    under = underfitting(parts)
    less = [rate for rate, v in parts["val"].items() if v.verdict == HOLDS]
    split = split_table(parts).set_index(BY[0])
    shares = ", ".join(f"{split.loc[r, 'train_share']:.0%} of the narrowing at p = {r:g}" for r in under)
    rates = lambda found: ", ".join(f"{r:g}" for r in found) or "none"  # noqa: E731
    if gap.verdict == HOLDS and not under and val.verdict == HOLDS:
        lead = "**The claim holds here:** the gap narrows as dropout rises, and the validation cost falls with it"
    elif gap.verdict == HOLDS:
        lead = ("**The claim holds only in part:** the gap narrows as dropout rises, but "
                + (f"at p = {rates(under)} a good part of it is the training cost rising (underfitting: "
                   f"{shares})" if under else
                   "the validation cost does not detectably fall with it"))
    elif gap.verdict == DOES_NOT_HOLD:
        lead = "**The claim does not hold here:** the gap widens as dropout rises"
    else:
        lead = "**No detectable difference at this sample size:** the gap shows no detectable trend over the rates"
    top = split.index.max()
    row = split.loc[top]
    share = (f"; {row['train_share']:.0%} of that narrowing is the training cost rising"
             if np.isfinite(row["train_share"]) else "")
    cost_best = table.loc[table["val_cost"].idxmin()]
    none = table.iloc[0]
    return (f"{lead}. Trend over p = {', '.join(f'{r:g}' for r in table[BY[0]])} ({n_seeds} seeds per rate): "
            f"{gap.sentence()}; {val.sentence()}; {train.sentence()}. Against no dropout, paired by seed, Holm over "
            f"{len(split)} rates: the gap {verdict_list(parts['gap'].values(), '{:.2g}')}; the validation cost "
            f"{verdict_list(parts['val'].values(), '{:.2g}')}; the training cost (claim: higher) "
            f"{verdict_list(parts['train'].values(), '{:.2g}')}. At p = {top:g} the gap changes by "
            f"{row['gap_change']:+.4f} = validation {row['val_change']:+.4f} − training {row['train_change']:+.4f}"
            f"{share}. The narrowing is in good part underfitting (the training cost detectably above no dropout's "
            f"and its rise ≥ {UNDERFIT_SHARE:.0%} of the narrowing) at p = {rates(under)}, and less overfitting (the "
            f"validation cost detectably below) at p = {rates(less)}. "
            f"The final validation cost is lowest at p = {cost_best[BY[0]]:g} ({cost_best['val_cost']:.4f}, against "
            f"{none['val_cost']:.4f} without); the training cost rises from {none['train_cost']:.2g} to "
            f"{table['train_cost'].iloc[-1]:.2g} at p = {table[BY[0]].iloc[-1]:g}.").replace(
        "-0.", "−0.")
