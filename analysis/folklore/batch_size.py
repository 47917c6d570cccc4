"""Findings of ``experiment=batch_size``: plain SGD with batch sizes from 1 to the whole training
split, each at its tuned learning rate: time per epoch, epochs and seconds to τ, final cost over the
seeds, and the variance of the mini-batch gradient around the full gradient, measured directly at
the initial and at a trained point beside the sampling theory ``(n − B) / (B (n − 1))``."""

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from ..gradient_noise import minibatch_gradient_variance, per_sample_variance, sampling_factor
from ..stats import DOES_NOT_HOLD, HOLDS, trend
from .common import (
    SEED,
    Findings,
    FindingsError,
    StudyData,
    edge_rates,
    seconds_at,
    seed_range,
    split_seeds,
    steps_to_reach,
    summarise_runs,
    tuned,
)

CLAIM = "Small batches are faster, with higher variance; large ones are slow, with less variance."
BY = ["train.batch_size"]
RUN_COLUMNS = ["lr", "runs", "s_per_epoch", "val_epochs_to_tau", "val_seconds_to_tau", "val_reached", "val_cost",
               "val_cost_std", "best_val_cost"]
COMMON_COLUMNS = ["val_epochs_to_common", "val_seconds_to_common"]  # to the level all batch sizes reached
POINTS = ("initial", "final")  # the weights the gradient noise is measured at
TREND = 0.4  # a rank correlation of B with a measure at least this large (in size) is a trend


def findings(study: StudyData) -> Findings:
    """One row per batch size of the grid (runs or not): its tuned runs' speed and cost, and the
    measured gradient variance relative to one sample's beside the theory."""
    tau = float(study.cfg.findings.threshold)
    tune_seeds, held_out = split_seeds(study.trials[SEED])
    rates = tuned(study.trials.loc[study.trials[SEED].isin(tune_seeds)], BY)[[*BY, "optimizer.lr"]].drop_duplicates()
    chosen = study.trials.loc[study.trials[SEED].isin(held_out)].merge(rates, on=[*BY, "optimizer.lr"])
    chosen = chosen.loc[chosen["state"] == "COMPLETE"].reset_index(drop=True)
    if chosen.empty:
        raise FindingsError("no batch size has a complete run with a finite cost: nothing to compare")
    best = chosen.loc[chosen["val_cost"].idxmin()]
    run = study.artifacts(best["trial"])
    X, Y = run.xy("train")
    n = X.shape[0]
    sizes = sorted(int(b) for b in study.trials["train.batch_size"].dropna().unique())
    noise = gradient_noise({p: getattr(run, p) for p in POINTS}, X, Y, run.cost, sizes,
                           int(study.cfg.findings.samples))
    common = common_level(chosen)
    table = pd.DataFrame({"train.batch_size": sizes}).merge(run_table(study.curves, chosen, tau, common), how="left")
    table = table.merge(noise_table(noise), on=BY)
    table.insert(0, "batch_size", [batch_label(b, n) for b in table["train.batch_size"]])
    table["runs"] = table["runs"].fillna(0).astype(int)
    progress_frame = progress(study.curves, chosen, BY)
    figures = {"gradient_variance": noise_figure(noise, n),
               "val_cost_epochs": progress_figure(progress_frame, "epoch", n, "epoch", logx=False),
               "val_cost_seconds": progress_figure(progress_frame, "seconds", n, "seconds (cumulative wall time)")}
    edges = [int(b) for b in edge_rates(study.trials, chosen, BY[0])]
    level = tau if bool(table.loc[table["runs"] > 0, "val_epochs_to_tau"].notna().all()) else common
    per_run = run_speeds(study.curves, chosen, level, n)
    parts = judge(per_run)
    means = per_run.groupby(BY)[["steps_to_level", "samples_to_level", "seconds_to_level"]].mean().reset_index()
    table = table.merge(means, on=BY, how="left")
    return Findings("batch_size", CLAIM, verdict(table, noise, edges, tau, common, parts, (tune_seeds, held_out)),
                    table.drop(columns=BY), figures,
                    notes=notes(study, best, noise, n, tau, common, (tune_seeds, held_out), level))


def run_speeds(curves: pd.DataFrame, chosen: pd.DataFrame, level: float, n: int) -> pd.DataFrame:
    """Per run of ``chosen``: the (interpolated) epoch its validation cost reached ``level`` as
    ``steps_to_level`` (× ceil(n/B)), ``samples_to_level`` (× n) and ``seconds_to_level`` (cumulative
    epoch time, the last epoch in proportion); a run that never got there counts at its whole budget
    (a lower bound). Also the final ``val_cost``, ``train.seed`` and ``train.batch_size``."""
    found = steps_to_reach(curves, chosen, level, n, metric="val_cost")
    budget = np.where(found["reached"].fillna(False).to_numpy(bool), found["epoch"], found["last_epoch"])
    seconds = seconds_at(curves, pd.DataFrame({"trial": found["trial"], "epoch": budget}))
    out = chosen[["trial", SEED, *BY, "val_cost"]].merge(found[["trial", "reached", "steps_or_budget",
                                                              "samples_or_budget"]], on="trial")
    return out.assign(seconds_to_level=out["trial"].map(dict(zip(found["trial"], seconds)))).rename(
        columns={"steps_or_budget": "steps_to_level", "samples_or_budget": "samples_to_level"})


def judge(per_run: pd.DataFrame) -> dict:
    """Trends over B (Spearman over the runs; Page over the seeds when complete; analysis.stats.trend):
    ``samples`` and ``seconds`` to the level (claim: rising with B, i.e. small batches faster),
    ``steps`` (claim: rising with B, the folklore read per update) and ``spread``, the absolute deviation
    of each run's final val_cost from its batch size's median (claim: falling with B, Brown–Forsythe)."""
    spread = per_run.assign(spread=(per_run["val_cost"] - per_run.groupby(BY)["val_cost"].transform("median")).abs())
    return {"samples": trend(per_run, BY[0], "samples_to_level", "increasing", SEED),
            "seconds": trend(per_run, BY[0], "seconds_to_level", "increasing", SEED),
            "steps": trend(per_run, BY[0], "steps_to_level", "increasing", SEED),
            "spread": trend(spread, BY[0], "spread", "decreasing", SEED)}


def common_level(chosen: pd.DataFrame) -> float:
    """The lowest val_cost every batch size reached in half its runs or more: the largest, over the
    batch sizes, of the median over the runs of their best val_cost."""
    return float(chosen.groupby(BY)["best_val_cost"].median().max())


def run_table(curves: pd.DataFrame, chosen: pd.DataFrame, tau: float, common: float) -> pd.DataFrame:
    """:func:`summarise_runs`'s ``RUN_COLUMNS`` per batch size, and epochs and seconds to the ``common``
    level (``COMMON_COLUMNS``)."""
    table = summarise_runs(curves, chosen, BY, tau)[[*BY, *RUN_COLUMNS]]
    at_common = summarise_runs(curves, chosen, BY, common)[[*BY, "val_epochs_to_tau", "val_seconds_to_tau"]]
    return table.merge(at_common.set_axis([*BY, *COMMON_COLUMNS], axis=1), on=BY)


# ---------------------------------------------------------------------------- gradient noise
def gradient_noise(nets: dict, X: np.ndarray, Y: np.ndarray, cost: str, sizes, samples: int,
                   seed: int = 0) -> pd.DataFrame:
    """Per network of ``nets`` (name → Network) and batch size of ``sizes``: the measured
    ``E‖g_B − g‖²`` over ``samples`` mini-batches of ``X`` ``(n, n_in)``, ``Y`` ``(n, n_out)``.
    Long frame: ``point, train.batch_size, measured, stderr, per_sample`` (the variance of one
    sample's gradient) and ``theory`` (``sampling_factor × per_sample``)."""
    rng = np.random.default_rng(seed)
    rows = []
    for point, net in nets.items():
        per_sample = per_sample_variance(net, X, Y, cost)
        for size in sizes:
            measured, stderr = minibatch_gradient_variance(net, X, Y, cost, size, samples, rng)
            rows.append({"point": point, "train.batch_size": size, "measured": measured, "stderr": stderr,
                         "per_sample": per_sample, "theory": sampling_factor(X.shape[0], size) * per_sample})
    return pd.DataFrame(rows)


def noise_table(noise: pd.DataFrame) -> pd.DataFrame:
    """One row per batch size: ``fpc_theory`` = (n − B)/(B(n − 1)), and per point the measured
    variance relative to one sample's (``{point}_rel_var``, its standard error ``{point}_rel_se``)."""
    noise = noise.assign(rel=noise["measured"] / noise["per_sample"], rel_se=noise["stderr"] / noise["per_sample"],
                         fpc=noise["theory"] / noise["per_sample"])
    table = noise.groupby(BY, sort=True)["fpc"].first().rename("fpc_theory").reset_index()
    for point, rows in noise.groupby("point", sort=False):
        table = table.merge(rows[[*BY, "rel", "rel_se"]].rename(
            columns={"rel": f"{point}_rel_var", "rel_se": f"{point}_rel_se"}), on=BY)
    return table


# ---------------------------------------------------------------------------- curves
def batch_label(size, n: int) -> str:
    """``"32"``, or ``"1077 (full)"`` for a batch that holds the whole training split of ``n``."""
    return f"{int(size)} (full)" if size >= n else f"{int(size)}"


def progress(curves: pd.DataFrame, trials: pd.DataFrame, by, metric: str = "val_cost") -> pd.DataFrame:
    """Per ``by`` group of ``trials`` and epoch, over its runs: the median, 25 % and 75 % quantiles of
    ``metric`` (``median, q25, q75``) and the median cumulative wall time ``seconds``."""
    wide = curves.loc[curves["trial"].isin(trials["trial"]) & curves["metric"].isin([metric, "time"])]
    wide = wide.pivot(index=["trial", "epoch"], columns="metric", values="value").reset_index()
    wide = wide.sort_values(["trial", "epoch"]).merge(trials[["trial", *by]], on="trial")
    wide["seconds"] = wide.groupby("trial")["time"].cumsum()
    values = wide.groupby([*by, "epoch"], sort=True)
    return pd.DataFrame({"median": values[metric].median(), "q25": values[metric].quantile(0.25),
                         "q75": values[metric].quantile(0.75), "seconds": values["seconds"].median()}).reset_index()


def progress_figure(frame: pd.DataFrame, x: str, n: int, xlabel: str, logx: bool = True,
                    ylabel: str = "val_cost", title: str = "each batch size at its tuned lr") -> Figure:
    """:func:`progress`'s median (and interquartile band) against ``x`` (a column of it, or
    ``"samples"`` = epoch × ``n``), one line per batch size, log y."""
    fig = Figure(figsize=(6, 4), layout="constrained")
    ax = fig.add_subplot()
    for size, group in frame.groupby("train.batch_size", sort=True):
        xs = group["epoch"] * n if x == "samples" else group[x]
        (line,) = ax.plot(xs, group["median"], label=f"B = {batch_label(size, n)}")
        ax.fill_between(xs, group["q25"], group["q75"], color=line.get_color(), alpha=0.2, linewidth=0)
    ax.set(xlabel=xlabel, ylabel=f"{ylabel} (median over seeds)", yscale="log", xscale="log" if logx else "linear",
           title=title)
    ax.legend(fontsize="small")
    return fig


def noise_figure(noise: pd.DataFrame, n: int) -> Figure:
    """Measured ``E‖g_B − g‖²`` (± 2 standard errors) against B per point, log-log, with the theory
    line ``(n − B)/(B(n − 1)) · per_sample``; the full batch (0) is off the log axis."""
    fig = Figure(figsize=(6, 4), layout="constrained")
    ax = fig.add_subplot()
    sizes = np.unique(np.geomspace(1, n - 1, 200).round().astype(int))
    factor = np.array([sampling_factor(n, s) for s in sizes])
    for point, rows in noise.groupby("point", sort=False):
        (line,) = ax.plot(sizes, factor * rows["per_sample"].iloc[0], alpha=0.6, label=f"theory, {point} weights")
        rows = rows.loc[rows["train.batch_size"] < n]
        ax.errorbar(rows["train.batch_size"], rows["measured"], yerr=2 * rows["stderr"], fmt="o", capsize=3,
                    color=line.get_color(), label=f"measured, {point} weights")
    ax.set(xscale="log", yscale="log", xlabel="batch size B", ylabel="E‖g_B − g‖²",
           title=f"mini-batch gradient variance (n = {n}; full batch: 0)")
    ax.legend(fontsize="small")
    return fig


# ---------------------------------------------------------------------------- verdict
def rank_correlation(x, y) -> float:
    """Spearman's correlation of ``x`` and ``y`` over the pairs without NaN (ties ranked by their mean;
    inf allowed); NaN if either is constant there or there are fewer than two pairs."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    keep = ~(np.isnan(x) | np.isnan(y))
    rx, ry = pd.Series(x[keep]).rank(), pd.Series(y[keep]).rank()
    if len(rx) < 2 or rx.nunique() < 2 or ry.nunique() < 2:
        return float("nan")
    return float(np.corrcoef(rx, ry)[0, 1])


def verdict(table: pd.DataFrame, noise: pd.DataFrame, edges: list, tau: float, common: float, parts: dict,
            seeds=((), ())) -> str:
    """Each half of the claim: are small batches faster per epoch and per second, and does the
    gradient variance (and the spread of the final cost over seeds) fall as B grows? ``table``: one row
    per batch size with ``train.batch_size``, its label ``batch_size``, ``RUN_COLUMNS`` and
    ``COMMON_COLUMNS``; speed is to τ when every batch size reached it in half its runs, else to the
    ``common`` level."""
    ran = table.loc[table["runs"].fillna(0) > 0]
    if len(ran) < 2:
        return "Too few batch sizes have complete runs to compare them."
    at_tau = bool(ran["val_epochs_to_tau"].notna().all())
    falls = _falls(noise)
    checks = [parts["samples"].verdict, parts["seconds"].verdict, HOLDS if falls else DOES_NOT_HOLD]
    if all(c == HOLDS for c in checks):
        head = "**The claim holds here:**"
    elif HOLDS in checks:
        head = "**The claim holds only in part:**"
    elif DOES_NOT_HOLD in checks:
        head = "**The claim does not hold here:**"
    else:
        head = "**No detectable difference at this sample size:**"
    level = (f"to reach val_cost ≤ τ = {tau:g}" if at_tau else
             f"τ = {tau:g} was reached in half the runs by {int(ran['val_epochs_to_tau'].notna().sum())} of "
             f"{len(ran)} batch sizes, so speed is taken to val_cost ≤ {common:.3g}, the level every batch size "
             "reached in half its runs: to get there")
    tune, held = seeds
    text = [_speed(ran, parts, level, tune, held), _noise(table, noise, falls), _spread(ran, parts["spread"])]
    if edges:
        text.append(f"caveat: the tuned rate of B = {', '.join(map(str, edges))} is at the edge of the grid, "
                    "so a rate outside it might change that batch size's numbers")
    return head + " " + "; ".join(text) + "."


def _speed(ran, parts: dict, level: str, tune, held) -> str:
    sizes = ran["batch_size"]
    slow, fast = ran["s_per_epoch"].idxmax(), ran["s_per_epoch"].idxmin()
    return (f"{level} (each B at its rate tuned on seeds {seed_range(tune)}, on the {len(held)} held-out seeds "
            f"{seed_range(held)}; trend over B, claim: more with larger B) — samples seen "
            + ", ".join(f"B = {b} {v:,.0f}" for b, v in zip(sizes, ran["samples_to_level"]))
            + f": {parts['samples'].sentence()}; seconds "
            + ", ".join(f"B = {b} {v:.2g}" for b, v in zip(sizes, ran["seconds_to_level"]))
            + f": {parts['seconds'].sentence()}; optimizer steps "
            + ", ".join(f"B = {b} {v:,.0f}" for b, v in zip(sizes, ran["steps_to_level"]))
            + f": {parts['steps'].sentence()}; an epoch takes {ran.loc[slow, 's_per_epoch']:.2g} s at B = "
            f"{ran.loc[slow, 'batch_size']} and {ran.loc[fast, 's_per_epoch']:.2g} s at B = "
            f"{ran.loc[fast, 'batch_size']}")


def _falls(noise: pd.DataFrame) -> bool:
    """Whether the measured gradient variance falls strictly with B at every point."""
    return all(bool(np.all(np.diff(rows.sort_values("train.batch_size")["measured"].to_numpy()) < 0))
               for _, rows in noise.groupby("point"))


def _noise(table: pd.DataFrame, noise: pd.DataFrame, falls: bool) -> str:
    partial = table.loc[table["fpc_theory"] > 0]
    if partial.empty:
        return "every batch size is the full batch: its gradient has no sampling noise"
    first, last = partial.iloc[0], partial.iloc[-1]
    sizes = f"at B = {first['batch_size']}" if len(partial) == 1 else \
        f"from B = {first['batch_size']} to {last['batch_size']}"
    spans = ", ".join(f"{p} weights {first[f'{p}_rel_var']:.3g}" + ("" if len(partial) == 1 else
                      f" → {last[f'{p}_rel_var']:.2g}") for p in POINTS)
    sampled = noise.loc[noise["theory"] > 0]
    ratio = sampled["measured"] / sampled["theory"]
    z = ((sampled["measured"] - sampled["theory"]) / sampled["stderr"]).abs().max()
    full = "; the full batch's is 0 up to rounding" if len(partial) < len(table) else ""
    return (f"the mini-batch gradient variance {'falls' if falls else 'does not fall'} steadily as B grows "
            f"(relative to one sample's, {sizes}: {spans}{full}); measured over theory (n − B)/(B(n − 1)) lies between "
            f"{ratio.min():.2f} and {ratio.max():.2f}, at most {z:.1f} standard errors away")


def _spread(ran: pd.DataFrame, spread) -> str:
    if ran["val_cost_std"].isna().all():
        return "one run per batch size: no spread over seeds to compare"
    values = ", ".join(f"{b} {s:.2g}" for b, s in zip(ran["batch_size"], ran["val_cost_std"]))
    return (f"the spread of the final val_cost over seeds (std per B: {values}; trend of each run's absolute "
            f"deviation from its B's median, claim: smaller with larger B): {spread.sentence()}")


def _direction(corr: float) -> str:
    return "fewer" if corr >= TREND else "more" if corr <= -TREND else "neither steadily fewer nor more"


def _amount(value: float, fmt: str) -> str:
    return fmt.format(value) if np.isfinite(value) else "never"


def notes(study: StudyData, best, noise: pd.DataFrame, n: int, tau: float, common: float, seeds=((), ()),
          level: float = float("nan")) -> list:
    cfg = study.cfg
    lrs = ", ".join(f"{v:g}" for v in sorted(study.trials["optimizer.lr"].dropna().unique()))
    scale = noise.groupby("point", sort=False)["per_sample"].first()
    return [
        f"Plain SGD, {cfg.train.epochs} epochs, hidden layers {list(cfg.model.hidden)}, n = {n} training samples; "
        f"each batch size's learning rate is the one of the grid {lrs} with the lowest mean best validation cost "
        f"over the tuning seeds {seed_range(seeds[0])}; a rate where a seed diverged is not chosen; every other "
        f"column comes from the held-out seeds {seed_range(seeds[1])}.",
        f"steps_to_level, samples_to_level, seconds_to_level: mean over the runs of the optimizer steps, samples "
        f"seen and seconds to val_cost ≤ {level:.3g}, the epoch interpolated linearly in log(cost) between the "
        "epoch-end costs (steps = epoch × ceil(n/B), samples = epoch × n, seconds: cumulative epoch time, the "
        "last epoch in proportion; a run below the level after its first epoch counts as 1 epoch, an upper "
        "bound; one that never got there counts at its whole budget, a lower bound). Trends: Spearman's ρ of B "
        "with the per-run value, Fisher-z interval, Page's test over the seeds when every seed ran every B "
        "(analysis.stats.trend).",
        f"val_epochs_to_tau: Kaplan–Meier median of the first epoch with val_cost ≤ τ = {tau:g} (NaN: fewer than "
        "half the runs reached it); val_seconds_to_tau: median wall time to it over the runs that reached it; "
        f"*_common: the same to val_cost ≤ {common:.3g}, the level every batch size reached in half its runs "
        "(the largest over the batch sizes of the median best val_cost); s_per_epoch: median epoch wall time, "
        "whole-set evaluation included (parallel workers on shared cores: noisy).",
        f"Gradient variance: {int(cfg.findings.samples)} independent mini-batches per B, each B samples drawn "
        "without replacement (as each batch of training is), float64, at the initial and "
        f"final weights of trial {int(best['trial'])} (B = {int(best['train.batch_size'])}, lr "
        f"{best['optimizer.lr']:g}, final val_cost {best['val_cost']:.3g}). *_rel_var = E‖g_B − g‖² over the "
        "variance of one sample's gradient (1/n)Σᵢ‖gᵢ − g‖² = "
        + ", ".join(f"{scale[p]:.3g} ({p})" for p in scale.index)
        + "; sampling without replacement predicts fpc_theory = (n − B)/(B(n − 1)); *_rel_se: standard error.",
    ]
