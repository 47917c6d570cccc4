"""Findings of ``experiment=minibatch_vs_fullbatch``: mini-batch SGD against full-batch gradient
descent at equal computation (both see every training sample once per epoch), each at its tuned
learning rate: the validation cost after equal numbers of samples seen, at equal wall time and at
the end, over the seeds."""

from dataclasses import replace

import numpy as np
import pandas as pd

from ..convergence import metric_rows
from ..stats import DOES_NOT_HOLD, HOLDS, NO_DIFFERENCE, holm, paired
from .batch_size import batch_label, progress, progress_figure
from .common import SEED, Findings, FindingsError, StudyData, edge_rates, seed_range, split_seeds, summarise_runs, tuned

CLAIM = "Mini-batch gradient descent learns faster than full-batch gradient descent for the same computation."
BY = ["train.batch_size"]
CHECKPOINTS = (1, 10, 100, 1000)  # epochs after which the costs are compared (those before the last)
RUN_COLUMNS = ["lr", "runs", "s_per_epoch", "val_cost", "val_cost_std", "best_val_cost", "val_accuracy",
               "val_epochs_to_tau", "val_seconds_to_tau", "val_reached"]


def findings(study: StudyData) -> Findings:
    """One row per batch size at its tuned rate: cost after equal samples, at equal time, final."""
    tau = float(study.cfg.findings.threshold)
    tune_seeds, held_out = split_seeds(study.trials[SEED])
    rates = tuned(study.trials.loc[study.trials[SEED].isin(tune_seeds)], BY)[[*BY, "optimizer.lr"]].drop_duplicates()
    chosen = study.trials.loc[study.trials[SEED].isin(held_out)].merge(rates, on=[*BY, "optimizer.lr"])
    chosen = chosen.loc[chosen["state"] == "COMPLETE"].reset_index(drop=True)
    if chosen.empty:
        raise FindingsError("no batch size has a complete run with a finite cost: nothing to compare")
    n = study.artifacts(chosen["trial"].iloc[0]).data.X_train.shape[0]
    epochs = int(metric_rows(study.curves, "val_cost")["epoch"].max())
    checkpoints = [e for e in CHECKPOINTS if e < epochs]
    seconds, fastest = equal_time(study.curves, chosen)
    table = comparison_table(study.curves, chosen, tau, checkpoints, seconds)
    per_run = at_epochs(study.curves, checkpoints).merge(at_time(study.curves, seconds), on="trial")
    found = judge(per_run.merge(chosen[["trial", SEED, *BY, "val_cost"]], on="trial"), checkpoints)
    table.insert(0, "batch_size", [batch_label(b, n) for b in table["train.batch_size"]])
    frame = progress(study.curves, chosen, BY)
    title = "equal computation, each at its tuned lr"
    figures = {"val_cost_samples": progress_figure(frame, "samples", n, f"samples seen (epochs × {n})", title=title),
               "val_cost_seconds": progress_figure(frame, "seconds", n, "seconds (cumulative wall time)", title=title)}
    text = verdict(table, found, checkpoints, (seconds, batch_label(fastest, n)), n, epochs,
                   [int(b) for b in edge_rates(study.trials, chosen, BY[0])], (tune_seeds, held_out))
    return Findings("minibatch_vs_fullbatch", CLAIM, text, table.drop(columns=BY), figures,
                    notes=notes(study, n, epochs, seconds, tau, (tune_seeds, held_out)))


def judge(per_run: pd.DataFrame, checkpoints) -> dict:
    """``{column: Verdict}``: the smallest batch's validation cost minus the largest's (claim: lower)
    after each checkpoint, at equal wall time and at the end, paired by seed, Holm over them.
    ``per_run``: one row per run with ``train.seed``, ``train.batch_size`` and the columns."""
    sizes = sorted(per_run[BY[0]].unique())
    if len(sizes) < 2:
        return {}
    mini, full = (per_run.loc[per_run[BY[0]] == b].set_index(SEED) for b in (sizes[0], sizes[-1]))
    columns = [*(f"val_cost_{e}ep" for e in checkpoints), "val_cost_at_equal_time", "val_cost"]
    raw = {c: paired(mini[c], full[c], "lower", label=c) for c in columns if c in mini}
    adjusted = holm([v.p_value for v in raw.values()])
    return {c: replace(v, p_value=float(p), p_raw=v.p_value, correction="Holm")
            for (c, v), p in zip(raw.items(), adjusted)}


def comparison_table(curves: pd.DataFrame, chosen: pd.DataFrame, tau: float, checkpoints, seconds: float):
    """Per batch size of ``chosen``: ``RUN_COLUMNS`` (:func:`summarise_runs`) and the means over its
    runs of :func:`at_epochs` at ``checkpoints`` and :func:`at_time` at ``seconds``."""
    per_run = at_epochs(curves, checkpoints).merge(at_time(curves, seconds), on="trial")
    means = per_run.merge(chosen[["trial", *BY]], on="trial").drop(columns="trial").groupby(BY).mean()
    table = summarise_runs(curves, chosen, BY, tau)[[*BY, *RUN_COLUMNS]]
    table = table.merge(means.reset_index(), on=BY)
    return table[[*BY, *RUN_COLUMNS[:3], *means.columns, *RUN_COLUMNS[3:]]]


def at_epochs(curves: pd.DataFrame, epochs) -> pd.DataFrame:
    """Per trial, ``val_cost_{e}ep``: its val_cost after each of ``epochs`` (NaN where it stopped before)."""
    rows = metric_rows(curves, "val_cost")
    wide = rows.loc[rows["epoch"].isin(list(epochs))].pivot(index="trial", columns="epoch", values="value")
    wide = wide.reindex(index=rows["trial"].unique(), columns=list(epochs))
    return wide.set_axis([f"val_cost_{e}ep" for e in epochs], axis=1).rename_axis("trial").reset_index()


def equal_time(curves: pd.DataFrame, trials: pd.DataFrame) -> tuple[float, int]:
    """The time the fastest batch size of ``trials`` took for all its epochs (the smallest, over the
    batch sizes, of the median over their runs of the summed epoch times), and that batch size."""
    totals = metric_rows(curves, "time").groupby("trial")["value"].sum().rename("total")
    totals = trials[["trial", *BY]].merge(totals, left_on="trial", right_index=True)
    medians = totals.groupby("train.batch_size")["total"].median()
    return float(medians.min()), int(medians.idxmin())


def at_time(curves: pd.DataFrame, seconds: float) -> pd.DataFrame:
    """Per trial, the last epoch finished within ``seconds`` of cumulative epoch time
    (``epochs_by_equal_time``) and its val_cost (``val_cost_at_equal_time``); NaN when none was."""
    rows = metric_rows(curves, "val_cost").merge(metric_rows(curves, "time").rename(columns={"value": "time"}),
                                                 on=["trial", "epoch"])
    rows["elapsed"] = rows.groupby("trial")["time"].cumsum()
    done = rows.loc[rows["elapsed"] <= seconds * (1 + 1e-9)].groupby("trial").tail(1).set_index("trial")  # sums round
    out = pd.DataFrame({"trial": rows["trial"].unique()})
    out["epochs_by_equal_time"] = out["trial"].map(done["epoch"]).astype(float)
    out["val_cost_at_equal_time"] = out["trial"].map(done["value"])
    return out


def verdict(table: pd.DataFrame, found: dict, checkpoints, equal: tuple, n: int, epochs: int, edges: list,
            seeds=((), ())) -> str:
    """Whether the smallest batch has a lower validation cost than the largest after equal samples,
    at equal wall time and at the end (means over the seeds at each one's tuned rate). ``equal``: the
    equal time (s) and the label of the batch size that finished then."""
    ran = table.loc[table["runs"].fillna(0) > 0].sort_values("train.batch_size")
    if len(ran) < 2:
        return (f"Only B = {', '.join(ran['batch_size'])} has complete runs at a finite cost: nothing to compare "
                "it with." if len(ran) else "No batch size has complete runs at a finite cost.")
    mini, full = ran.iloc[0], ran.iloc[-1]
    comparisons = [(f"after {e} epoch{'s' if e > 1 else ''} ({e * n:,} samples)", f"val_cost_{e}ep")
                   for e in checkpoints]
    comparisons += [(f"at equal wall time ({equal[0]:.2g} s, when the median run of B = {equal[1]} had finished; "
                     f"B = {mini['batch_size']} had finished {_epochs(mini)} and B = {full['batch_size']} "
                     f"{_epochs(full)} by then)", "val_cost_at_equal_time"),
                    (f"after all {epochs} epochs ({epochs * n:,} samples)", "val_cost")]
    outcomes = [found[column].verdict if column in found else NO_DIFFERENCE for _, column in comparisons]
    if all(o == HOLDS for o in outcomes):
        head = "**The claim holds here:**"
    elif HOLDS in outcomes:
        head = "**The claim holds only in part:**"
    elif DOES_NOT_HOLD in outcomes:
        head = "**The claim does not hold here:**"
    else:
        head = "**No detectable difference at this sample size:**"
    counts = ", ".join(f"{word} in {outcomes.count(kind)}" for word, kind in
                       (("lower", HOLDS), ("not detectably different", NO_DIFFERENCE), ("higher", DOES_NOT_HOLD)))
    tune, held = seeds
    parts = [f"B = {mini['batch_size']} (lr {mini['lr']:g}) against B = {full['batch_size']} (lr {full['lr']:g}), "
             f"rates tuned on seeds {seed_range(tune)}, mean validation cost over the {len(held)} held-out seeds "
             f"{seed_range(held)} and the difference paired by seed (95 % t interval, p Holm over "
             f"{len(found)}): "
             + ", ".join(f"{what} {mini[column]:.3g} against {full[column]:.3g} ({_diff(found.get(column))})"
                         for what, column in comparisons),
             f"the best over the epochs {mini['best_val_cost']:.3g} against {full['best_val_cost']:.3g}",
             f"an epoch takes {mini['s_per_epoch']:.2g} s with B = {mini['batch_size']} and "
             f"{full['s_per_epoch']:.2g} s with B = {full['batch_size']} "
             f"({mini['s_per_epoch'] / full['s_per_epoch']:.2g}×)",
             f"per epoch, learning rate × updates is {_step(mini, n)} against {_step(full, n)}"]
    if edges:
        parts.append(f"caveat: the tuned rate of B = {', '.join(map(str, edges))} is at the edge of the grid")
    return (f"{head} the smaller batch's cost is {counts} of {len(outcomes)} comparisons; " + "; ".join(parts) + ".")


def _diff(v) -> str:
    if v is None:
        return "not compared"
    return (f"{v.verdict}: {_signed(v.estimate)}, {_signed(v.low)} to {_signed(v.high)}, p = {v.p_value:.2g}")


def _signed(x: float) -> str:
    return "nan" if not np.isfinite(x) else f"{x:.3g}".replace("-", "−")


def _step(row, n: int) -> str:
    updates = -(-n // int(row["train.batch_size"]))  # fit's batches per epoch, the last partial one included
    return f"{row['lr']:g} × {updates} = {row['lr'] * updates:.3g}"


def _epochs(row) -> str:
    value = row["epochs_by_equal_time"]
    return f"{value:.0f} epoch{'' if round(value) == 1 else 's'}" if np.isfinite(value) else "no epoch"


def notes(study: StudyData, n: int, epochs: int, seconds: float, tau: float, seeds=((), ())) -> list:
    lrs = ", ".join(f"{v:g}" for v in sorted(study.trials["optimizer.lr"].dropna().unique()))
    return [
        f"Plain SGD, {epochs} epochs, hidden layers {list(study.cfg.model.hidden)}, n = {n} training samples: "
        "every method sees each sample once per epoch, so after e epochs each has seen e × n samples (and "
        "computed as many per-sample gradients). Each batch size's learning rate is the one of the grid "
        f"{lrs} with the lowest mean best validation cost over the tuning seeds {seed_range(seeds[0])}; every "
        f"column comes from the held-out seeds {seed_range(seeds[1])} (no winner's curse). Differences: smaller "
        "batch − full batch, paired by seed, mean with its 95 % t interval and the paired t-test's p, "
        "Holm-corrected over the comparisons (analysis.stats.paired, holm).",
        "val_cost_Nep: mean over the seeds of the validation cost after N epochs; val_cost_at_equal_time: "
        f"at {seconds:.3g} s of cumulative epoch wall time (the median time the fastest batch size took for all "
        "its epochs), the cost after the last epoch each run had finished by then, and epochs_by_equal_time "
        "that epoch (mean over the seeds; NaN: no epoch finished). Wall times include whole-set evaluation "
        "and come from parallel workers on shared cores: noisy.",
        f"val_epochs_to_tau: Kaplan–Meier median of the first epoch with val_cost ≤ τ = {tau:g} (NaN: fewer "
        "than half the runs reached it); val_reached: the fraction of runs that did.",
    ]
