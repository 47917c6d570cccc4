"""Findings of ``experiment=optimizers``: the 7 optimizers over a grid of learning rates and seeds,
each part of the claim judged on its own against plain SGD, paired by seed, Holm-corrected over the
6 adaptive optimizers (:mod:`analysis.stats`).

The seeds are cut in two halves: the first half chooses each optimizer's rates (its *tuned* rate,
the lowest mean best validation cost; its *fastest* rate, the fewest mean steps to training cost
≤ τ), the second half reports on them, so the reported values carry no winner's curse.

- **Faster** at the tuned rate and at the fastest rate: optimizer steps (and samples seen) to
  training cost ≤ τ, interpolated between epochs (:func:`.common.steps_to_reach`).
- **Less tuning**: the width, in decades, of the band of learning rates around the optimum whose mean
  best validation cost is within ``WITHIN`` of the optimum's, with a bootstrap over seeds.
- **A key hyperparameter**: the best validation cost at the tuned rate on the held-out seeds.
"""

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from ..stats import DOES_NOT_HOLD, HOLDS, NO_DIFFERENCE, against_baseline
from .common import (
    SEED,
    Findings,
    FindingsError,
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
    thresholds,
    tuned,
    verdict_list,
)

CLAIM = ("Adaptive optimizers (RMSprop, Adam and kin) converge faster than plain SGD and need less tuning; "
         "which optimizer to use is a key hyperparameter.")
BY = ["optimizer"]
LR = "optimizer.lr"
BASELINE = "sgd"
WITHIN = 0.25  # "near the optimum": mean best validation cost ≤ (1 + WITHIN) × the optimum's
N_BOOT = 2000  # bootstrap resamples of the seeds for the tuning width


def findings(study: StudyData) -> Findings:
    """Per optimizer: its tuned and fastest rates (from the tuning seeds), steps to τ at each and the
    best validation cost at the tuned rate (on the held-out seeds), the width of its near-optimal
    learning-rate band; each against SGD."""
    tau, train_tau = thresholds(study.cfg)
    trials = study.trials
    if BASELINE not in set(study.complete["optimizer"]):
        raise FindingsError("plain SGD has no complete run: nothing to compare the adaptive optimizers with")
    n = n_train(study)
    batch = int(study.cfg.train.batch_size)
    speed = steps_to_reach(study.curves, trials, train_tau, n, batch_size=batch)
    runs = trials.merge(speed.drop(columns=["last_epoch"]), on="trial", how="left")
    tune_seeds, held_out = split_seeds(runs[SEED])
    tuning, report = runs.loc[runs[SEED].isin(tune_seeds)], runs.loc[runs[SEED].isin(held_out)]
    tuned_rate = rates(tuned(tuning, BY))
    fastest_rate = rates(tuned(tuning, BY, metric="steps_or_budget"))
    at_tuned = at_rate(report, tuned_rate)
    at_fastest = at_rate(report, fastest_rate)
    parts = {
        "tuned": against_baseline(per_seed(at_tuned, "optimizer", "steps_or_budget"), BASELINE, "lower"),
        "fastest": against_baseline(per_seed(at_fastest, "optimizer", "steps_or_budget"), BASELINE, "lower"),
        "best": against_baseline(per_seed(at_tuned, "optimizer", "best_val_cost"), BASELINE, "lower"),
        "width": width_verdicts(runs),
    }
    table = summary_table(runs, tuning, at_tuned, at_fastest, tuned_rate, fastest_rate, parts)
    chosen = runs.merge(pd.DataFrame({"optimizer": list(tuned_rate), LR: list(tuned_rate.values())}))
    figures = {"val_cost": curves_figure(study.curves, chosen.loc[chosen["state"] == "COMPLETE"], BY, "val_cost",
                                         "val cost at each optimizer's tuned lr"),
               "lr_sensitivity": sensitivity_figure(runs),
               "steps": steps_figure(runs, train_tau)}
    edges = edge_rates(trials, tuned(tuning, BY), "optimizer")
    per_epoch = steps_per_epoch(n, batch)
    text = verdict(parts, table, train_tau, len(held_out), (tune_seeds, held_out))
    text += edge_caveat(edges, "learning rates")
    lrs = ", ".join(f"{v:g}" for v in sorted(trials[LR].dropna().unique()))
    return Findings("optimizers", CLAIM, text, table, figures, notes=[
        f"Hidden layer of {list(study.cfg.model.hidden)}, ReLU, batch {batch} ({per_epoch} steps per epoch of "
        f"{n} training samples), {study.cfg.train.epochs} epochs; learning rates {lrs}; each optimizer's other "
        "hyperparameters at their defaults (PyTorch's: SGD without momentum).",
        f"Seeds {seed_range(tune_seeds)} tune, seeds {seed_range(held_out)} report: tuned_lr is the rate with the "
        "lowest mean best validation cost over the tuning seeds, fastest_lr the one with the fewest mean steps to "
        f"training cost ≤ {train_tau:g} (a diverged run counts as +inf for both); every other column but "
        "best_val_cost_tuning and the width comes from the held-out seeds. best_val_cost_tuning − best_val_cost is "
        "the winner's curse the split removes.",
        f"Steps to training cost ≤ {train_tau:g}: the curves are per epoch, so the epoch is interpolated linearly "
        f"in log(cost) between the last epoch above τ and the first below it, then steps = epoch × {per_epoch} and "
        f"samples = epoch × {n}; a run below τ after its first epoch counts as 1 epoch (an upper bound). A run "
        "that never got there counts as its whole budget (a lower bound: it favours the slow optimizer); "
        "*_reached is the fraction that did.",
        f"Tuning width: the learning-rate band around the optimum whose best validation cost is within "
        f"{WITHIN:.0%} of the optimum's, in decades of the rate: contiguous on the grid, its edges interpolated "
        "linearly in log cost against log rate to where the curve crosses the limit (at the last rate within when "
        "the next one diverged; a band that reaches the end of the grid stops there, a lower bound). "
        f"width_decades: the mean over all {runs[SEED].nunique()} seeds of each seed's own band (its curve, its "
        "optimum), compared with SGD's paired by seed (t interval, paired t, Holm over 6); mean_curve_width: the "
        f"band of the curve of means over the seeds, with a percentile bootstrap interval over the seeds ({N_BOOT} "
        "resamples, the optimum re-chosen in each; descriptive only: as a test it rejected a true null 8–10 % of "
        "the time on synthetic studies).",
        "Comparisons: paired by seed (the same seed gives the same initial weights and data order), mean "
        "difference optimizer − SGD with its t interval and a paired t-test, Holm-corrected over the 6 adaptive "
        "optimizers (analysis.stats.against_baseline); intervals in the table (*_diff_low, *_diff_high) are "
        "unadjusted.",
    ])


def rates(chosen: pd.DataFrame) -> dict:
    """``{optimizer: its rate}`` of a :func:`tuned` pick."""
    return chosen.groupby("optimizer")[LR].first().to_dict()


def at_rate(runs: pd.DataFrame, chosen: dict) -> pd.DataFrame:
    """The runs of each optimizer at its rate in ``chosen`` (all states: a diverged run is NaN)."""
    keep = runs["optimizer"].map(chosen) == runs[LR]
    chosen = runs.loc[keep].copy()
    failed = chosen["state"] != "COMPLETE"
    chosen.loc[failed, ["steps_or_budget", "samples_or_budget", "best_val_cost"]] = np.nan
    return chosen


# ---------------------------------------------------------------------------- tuning width
def score_cube(runs: pd.DataFrame, metric: str = "best_val_cost"):
    """``(optimizers, rates, seeds, cube)``: ``cube[o, r, s]`` the metric of optimizer o at rate r
    with seed s, +inf where the run failed or is missing."""
    names = sorted(runs["optimizer"].dropna().unique())
    grid = sorted(runs[LR].dropna().unique())
    seeds = sorted(runs[SEED].dropna().unique())
    cube = np.full((len(names), len(grid), len(seeds)), np.inf)
    ok = runs.loc[(runs["state"] == "COMPLETE") & np.isfinite(runs[metric].astype(np.float64))]
    o = pd.Index(names).get_indexer(ok["optimizer"])
    r = pd.Index(grid).get_indexer(ok[LR])
    s = pd.Index(seeds).get_indexer(ok[SEED])
    cube[o, r, s] = ok[metric].to_numpy(np.float64)
    return names, np.asarray(grid, np.float64), seeds, cube


def band_width(means: np.ndarray, grid: np.ndarray, within: float = WITHIN) -> np.ndarray:
    """Width in decades of the learning-rate band around the optimum whose mean score is at most
    ``(1 + within) × optimum``: from the optimum outwards along the grid while the rates stay within,
    then to where the line through the last rate within and the first one outside (log score
    against log10 rate) crosses the limit; a diverged neighbour (+inf) puts the edge at the last rate
    within, and a band that reaches the end of the grid stops there (a lower bound). ``means``:
    ``(..., n_rates)`` mean scores (+inf: failed), ``grid``: ``(n_rates,)`` ascending. Returns
    ``(...)``, rounded to 1e-9 decades; NaN where every rate failed."""
    means = np.asarray(means, np.float64)
    flat = means.reshape(-1, means.shape[-1])
    log_grid = np.log10(grid)
    out = np.full(flat.shape[0], np.nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        for i, row in enumerate(flat):
            if not np.isfinite(row).any():
                continue
            best = int(np.argmin(row))
            limit = np.log((1 + within) * row[best]) if row[best] > 0 else -np.inf
            edges = []
            for step in (-1, 1):
                j = best
                while 0 <= j + step < len(row) and row[j + step] <= (1 + within) * row[best]:
                    j += step
                edge = log_grid[j]
                k = j + step
                if 0 <= k < len(row) and np.isfinite(row[k]) and row[j] > 0:
                    frac = (limit - np.log(row[j])) / (np.log(row[k]) - np.log(row[j]))
                    edge += float(np.clip(frac, 0.0, 1.0)) * (log_grid[k] - log_grid[j])
                edges.append(edge)
            out[i] = round(edges[1] - edges[0], 9)
    return out.reshape(means.shape[:-1])


def widths(runs: pd.DataFrame, n_boot: int = N_BOOT, rng=0):
    """``(optimizers, width (n_opt,), bootstrap widths (n_boot, n_opt), n_seeds)``: the tuning width of
    each optimizer over all seeds, and resampled over the seeds (the same resample for every
    optimizer: the seeds pair them)."""
    names, grid, seeds, cube = score_cube(runs)
    width = band_width(cube.mean(axis=2), grid)
    draws = np.random.default_rng(rng).integers(0, len(seeds), (n_boot, len(seeds)))
    boot = np.stack([band_width(cube[:, :, d].mean(axis=2), grid) for d in draws])
    return names, width, boot, len(seeds)


def seed_widths(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per optimizer and seed: ``width``, the :func:`band_width` of that seed's own curve of
    best validation cost over the rates (how far from its best rate one run can be and stay within
    ``WITHIN`` of its best)."""
    names, grid, seeds, cube = score_cube(runs)
    per_seed = band_width(np.moveaxis(cube, 2, 1), grid)  # (n_opt, n_seeds)
    return pd.DataFrame([{"optimizer": name, SEED: seed, "width": per_seed[i, j]}
                         for i, name in enumerate(names) for j, seed in enumerate(seeds)])


def width_verdicts(runs: pd.DataFrame) -> dict:
    """``{optimizer: Verdict}``: its per-seed tuning width (:func:`seed_widths`) minus SGD's, paired by
    seed (claim: wider), t interval and paired t-test, Holm over the adaptive optimizers. (A percentile
    bootstrap of the width of the mean curve rejected a true null ~8–10 % of the time at 8–20 seeds on
    synthetic studies; this test keeps its 5 %.)"""
    frame = seed_widths(runs)
    if BASELINE not in set(frame["optimizer"]):
        return {}
    return against_baseline(per_seed(frame, "optimizer", "width"), BASELINE, "higher")


# ---------------------------------------------------------------------------- table and verdict
def summary_table(runs, tuning, at_tuned, at_fastest, tuned_rate, fastest_rate, parts) -> pd.DataFrame:
    """One row per optimizer: its rates, held-out means at them and the differences from SGD."""
    names, width, boot, _ = widths(runs)
    seeds_width = seed_widths(runs).groupby("optimizer")["width"].mean().to_dict()
    rows = []
    for i, name in enumerate(names):
        tuned_runs = at_tuned.loc[at_tuned["optimizer"] == name]
        fast_runs = at_fastest.loc[at_fastest["optimizer"] == name]
        tuning_runs = tuning.loc[(tuning["optimizer"] == name) & (tuning[LR] == tuned_rate.get(name))]
        row = {"optimizer": name, "tuned_lr": tuned_rate.get(name, np.nan),
               "fastest_lr": fastest_rate.get(name, np.nan), "seeds": int(tuned_runs[SEED].nunique()),
               "steps_tuned": tuned_runs["steps_or_budget"].mean(),
               "samples_tuned": tuned_runs["samples_or_budget"].mean(),
               "tuned_reached": tuned_runs["reached"].fillna(False).astype(bool).mean(),
               "steps_fastest": fast_runs["steps_or_budget"].mean(),
               "fastest_reached": fast_runs["reached"].fillna(False).astype(bool).mean(),
               "best_val_cost": tuned_runs["best_val_cost"].mean(),
               "best_val_cost_tuning": tuning_runs["best_val_cost"].mean(),
               "width_decades": seeds_width.get(name, np.nan),
               "mean_curve_width": width[i], "mean_curve_width_low": np.nanpercentile(boot[:, i], 2.5),
               "mean_curve_width_high": np.nanpercentile(boot[:, i], 97.5)}
        for part, prefix in (("tuned", "steps_tuned"), ("fastest", "steps_fastest"), ("best", "best_val_cost"),
                             ("width", "width")):
            v = parts[part].get(name)
            row[f"{prefix}_diff"] = np.nan if v is None else v.estimate
            row[f"{prefix}_diff_low"] = np.nan if v is None else v.low
            row[f"{prefix}_diff_high"] = np.nan if v is None else v.high
            row[f"{prefix}_p_holm"] = np.nan if v is None else v.p_value
        rows.append(row)
    table = pd.DataFrame(rows)
    order = (table["optimizer"] != BASELINE).astype(int)
    return table.assign(_o=order).sort_values(["_o", "steps_tuned"], kind="stable").drop(columns="_o").reset_index(
        drop=True)


def part_status(verdicts) -> str:
    """``holds`` (every comparison holds), ``none`` (none holds), else ``part``."""
    kinds = [v.verdict for v in verdicts]
    if kinds and all(k == HOLDS for k in kinds):
        return "holds"
    return "part" if HOLDS in kinds else "none"


def verdict(parts: dict, table: pd.DataFrame, tau: float, n_seeds: int, seeds) -> str:
    """One paragraph: a lead from the parts, then each part with its intervals."""
    if not parts["tuned"]:
        return "Too few optimizers completed to compare."
    claimed = [parts["tuned"], parts["fastest"], parts["width"]]
    status = [part_status(p.values()) for p in claimed]
    against = any(v.verdict == DOES_NOT_HOLD for p in claimed for v in p.values())
    if all(s == "holds" for s in status):
        lead = "**The claim holds here:** every adaptive optimizer is faster than SGD and needs less tuning"
    elif all(s == "none" for s in status):
        lead = ("**The claim does not hold here:** no adaptive optimizer is detectably faster than SGD or less "
                "sensitive to its learning rate" + ("; some are detectably worse" if against else ""))
    else:
        counts = ", ".join(f"{what} for {sum(v.verdict == HOLDS for v in p.values())} of {len(p)}"
                           for what, p in zip(("faster at the tuned rate", "at the fastest rate", "less tuning"),
                                              claimed))
        lead = f"**The claim holds only in part:** {counts} adaptive optimizers"
    m = len(parts["tuned"])
    tune, held = seeds
    key = [v for v in parts["best"].values() if v.verdict != NO_DIFFERENCE]
    sgd = table.set_index("optimizer").loc[BASELINE]
    mean_sgd = (f" (SGD: {sgd['steps_tuned']:.0f} steps at its tuned lr {sgd['tuned_lr']:g}, "
                f"{sgd['steps_fastest']:.0f} at its fastest lr {sgd['fastest_lr']:g}, width "
                f"{sgd['width_decades']:.2f} decades, best validation "
                f"cost {sgd['best_val_cost']:.4f})")
    width_seeds = next(iter(parts["width"].values())).n_seeds if parts["width"] else 0
    curse = table["best_val_cost"] - table["best_val_cost_tuning"]
    matters = (f"matters here ({', '.join(v.label for v in key)} differ from SGD)" if key else
               "made no detectable difference to the best validation cost here")
    text = (f"{lead}. Each optimizer − SGD, paired by seed on the {n_seeds} held-out seeds ({seed_range(held)}; "
            f"rates chosen on seeds {seed_range(tune)}), mean difference with its 95 % t interval, p Holm-corrected "
            f"over {m}. *Faster at the tuned rate* (optimizer steps to training cost ≤ {tau:g}; "
            f"claim: fewer): {verdict_list(parts['tuned'].values(), '{:.0f}')}. *Faster at each one's fastest rate*: "
            f"{verdict_list(parts['fastest'].values(), '{:.0f}')}. *Needs less tuning* (width in decades of the "
            f"learning rates within {WITHIN:.0%} of a run's best validation cost, per seed over all {width_seeds} "
            f"seeds; claim: wider): {verdict_list(parts['width'].values(), '{:.2f}')}. *Best validation cost at the "
            f"tuned rate* (claim: lower): {verdict_list(parts['best'].values(), '{:.4f}')}{mean_sgd}. So the choice "
            f"of optimizer {matters}. On the tuning seeds themselves the tuned rates' best validation cost was "
            f"{_signed_range(curse)} lower than on the held-out seeds: the winner's curse the split removes. ")
    return text.rstrip() + " "


def _signed_range(values) -> str:
    values = pd.Series(values).dropna()
    if values.empty:
        return "nan"
    return f"{values.min():.4f}–{values.max():.4f}".replace("-0", "−0") if values.min() != values.max() else \
        f"{values.min():.4f}"


# ---------------------------------------------------------------------------- figures
def sensitivity_figure(runs: pd.DataFrame) -> Figure:
    """Mean best validation cost against the learning rate, one line per optimizer (log-log)."""
    return by_rate_figure(runs, "best_val_cost", "best val cost (mean over seeds)", "sensitivity to the learning rate")


def steps_figure(runs: pd.DataFrame, tau: float) -> Figure:
    """Mean steps to training cost ≤ τ (unreached runs at their budget) against the learning rate."""
    return by_rate_figure(runs, "steps_or_budget", f"steps to train cost ≤ {tau:g} (mean)",
                          "speed against the learning rate")


def by_rate_figure(runs: pd.DataFrame, column: str, ylabel: str, title: str) -> Figure:
    """The complete runs' mean ``column`` against the learning rate, one line per optimizer (log-log)."""
    fig = Figure(figsize=(6, 4), layout="constrained")
    ax = fig.add_subplot()
    complete = runs.loc[runs["state"] == "COMPLETE"]
    for name, rows in complete.groupby("optimizer"):
        mean = rows.groupby(LR)[column].mean()
        ax.plot(mean.index, mean.to_numpy(), marker="o", label=name)
    ax.set(xscale="log", yscale="log", xlabel="learning rate", ylabel=ylabel, title=title)
    ax.legend(fontsize=8)
    return fig
