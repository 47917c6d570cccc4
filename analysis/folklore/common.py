"""What the findings of every folklore experiment share: reading the study the sweep wrote, picking
the tuned setting of each group, summarising runs over seeds, and writing the findings.

An experiment's findings are a :class:`Findings`: the claim under test, a verdict paragraph computed
from the numbers, a table (one row per compared setting) and figures. :func:`write_findings` puts
them in ``<findings.out>/<experiment>/`` (``findings.csv``, ``findings.md``, ``<figure>.png``) and
logs that folder to the study's parent MLflow run under ``findings/``.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from omegaconf import DictConfig

from ..convergence import epochs_to_threshold, grouped_curves, metric_rows, plot_grouped_curves, threshold_summary
from ..loading import (
    EmptyStudyError,
    StudyNotFoundError,
    StudyRecord,
    TrialArtifacts,
    client_for,
    find_study,
    load_curves,
    load_trial,
    load_trials,
)


class FindingsError(RuntimeError):
    """Findings that cannot be computed (no study, no complete trial); the message is one line."""


@dataclass
class StudyData:
    """A folklore study as the findings read it.

    ``cfg``: the composed config of the sweep (its ``findings`` options, data, model). ``trials``:
    :func:`analysis.loading.load_trials` (every state) plus ``best_val_cost``, the lowest validation
    cost over the trial's epochs (what early stopping would keep); ``curves``: the long frame of
    :func:`analysis.loading.load_curves` (``trial, epoch, metric, value``).
    """

    cfg: DictConfig
    record: StudyRecord
    trials: pd.DataFrame
    curves: pd.DataFrame

    @property
    def complete(self) -> pd.DataFrame:
        """The COMPLETE trials."""
        return self.trials.loc[self.trials["state"] == "COMPLETE"].reset_index(drop=True)

    def artifacts(self, trial: int) -> TrialArtifacts:
        """Trial ``trial``'s config, initial and final networks and data."""
        return load_trial(self.record, int(trial))


@dataclass
class Findings:
    """One experiment's result: what :func:`write_findings` writes."""

    experiment: str
    claim: str  # the folklore, as the slides put it
    verdict: str  # one paragraph of Markdown, computed from the numbers
    table: pd.DataFrame  # one row per compared setting
    figures: dict[str, Figure] = field(default_factory=dict)  # file stem -> figure
    notes: list[str] = field(default_factory=list)  # how the numbers were made


def read_study(cfg: DictConfig, config_keys=()) -> StudyData:
    """The study ``cfg.study_name`` from ``cfg.tracking.uri`` and ``cfg.sweep.storage``."""
    try:
        record = find_study(str(cfg.study_name), str(cfg.tracking.uri), str(cfg.sweep.storage),
                            cfg.tracking.experiment)
        trials = load_trials(record, config_keys=config_keys)
        curves = load_curves(record)
    except (StudyNotFoundError, EmptyStudyError) as err:
        raise FindingsError(str(err).splitlines()[0]) from None
    if not (trials["state"] == "COMPLETE").any():
        raise FindingsError(f"study {record.name!r} has no complete trial: nothing to compare")
    best = metric_rows(curves, "val_cost").groupby("trial")["value"].min().rename("best_val_cost")
    trials = trials.merge(best, left_on="trial", right_index=True, how="left")
    return StudyData(cfg, record, trials, curves)


def thresholds(cfg: DictConfig) -> tuple[float, float]:
    """τ for the validation cost and for the training cost (``findings.train_threshold``, default τ)."""
    tau = float(cfg.findings.threshold)
    train = cfg.findings.get("train_threshold")
    return tau, tau if train is None else float(train)


def findings_name(cfg: DictConfig) -> str:
    """The findings' folder and title, also the preset's name: ``findings.name`` (a variant on another
    data set, e.g. ``dropout_mnist1d``), else ``findings.experiment``."""
    return str(cfg.findings.get("name") or cfg.findings.experiment)


def command(cfg: DictConfig) -> str:
    """The command that reproduces the experiment."""
    return f"python run.py experiment={findings_name(cfg)}"


# ---------------------------------------------------------------------------- tables
def tuned(trials: pd.DataFrame, by, lr: str = "optimizer.lr", metric: str = "best_val_cost") -> pd.DataFrame:
    """The COMPLETE trials of each ``by`` group's best ``lr``: the rate with the lowest mean ``metric``
    over its seeds (a rate where a seed diverged loses: its mean counts the failure as +inf). The
    default, the lowest validation cost over the epochs, does not punish a rate for learning fast
    and then overfitting; pass ``"val_cost"`` to tune for the final cost.

    ``trials``: a :func:`load_trials` frame. Returns those trials' rows (all seeds of the chosen rate).
    """
    by = [by] if isinstance(by, str) else list(by)
    scored = trials.assign(_score=np.where(trials["state"] == "COMPLETE", trials[metric], np.inf))
    means = scored.groupby([*by, lr], dropna=False)["_score"].mean().rename("_mean").reset_index()
    best = means.sort_values(["_mean", lr], kind="stable").groupby(by, dropna=False).head(1)
    best = best.loc[np.isfinite(best["_mean"])]
    chosen = trials.merge(best[[*by, lr]], on=[*by, lr])
    return chosen.loc[chosen["state"] == "COMPLETE"].reset_index(drop=True)


def edge_rates(trials: pd.DataFrame, chosen: pd.DataFrame, by: str, lr: str = "optimizer.lr") -> list:
    """The values of ``by`` whose tuned rate (in ``chosen``, from :func:`tuned`) is the smallest or
    largest rate of the grid ``trials`` ran: a rate outside the grid might have done better."""
    grid = trials[lr].dropna()
    if grid.nunique() < 2:
        return []
    rates = chosen.groupby(by)[lr].first()
    return [key for key, rate in rates.items() if rate in (grid.min(), grid.max())]


def edge_caveat(edges: list, what: str) -> str:
    """A sentence for a verdict naming the ``edges`` of :func:`edge_rates` ("" when there are none)."""
    if not edges:
        return ""
    return (f" Caveat: the tuned learning rate of {', '.join(map(str, edges))} is at the edge of the grid of "
            f"{what}; a rate outside it might do better.")


def summarise_runs(curves: pd.DataFrame, trials: pd.DataFrame, by, threshold: float,
                   train_threshold: float | None = None) -> pd.DataFrame:
    """Per ``by`` group of ``trials`` (its seeds), means over the seeds: ``runs``; ``lr`` (when
    ``trials`` has ``optimizer.lr`` and the group has one rate); the final ``train_cost``,
    ``val_cost`` (and ``val_cost_std``, ddof=1), ``val_accuracy`` and ``best_val_cost``;
    ``val_reached`` (the fraction of runs whose val_cost reached τ=``threshold``), ``val_epochs_to_tau``
    (the Kaplan–Meier median epoch: runs that never reach τ are censored, NaN when fewer than half
    did) and ``val_seconds_to_tau`` (median over the runs that reached it); ``train_epochs_to_tau``
    (the same for the training cost and ``train_threshold``, default τ: how fast the network learns the
    data it sees); ``s_per_epoch``
    (median epoch wall time, whole-set evaluation included)."""
    by = [by] if isinstance(by, str) else list(by)
    curves = curves.loc[curves["trial"].isin(trials["trial"])]
    val = threshold_summary(epochs_to_threshold(curves, threshold, "val_cost"), by, trials)
    val = val.rename(columns={"frac_reached": "val_reached", "km_median": "val_epochs_to_tau",
                              "median_seconds": "val_seconds_to_tau"})
    train_tau = threshold if train_threshold is None else train_threshold
    train = threshold_summary(epochs_to_threshold(curves, train_tau, "train_cost"), by, trials)
    train = train.rename(columns={"km_median": "train_epochs_to_tau"})
    aggregates = {"runs": ("trial", "size"), "train_cost": ("train_cost", "mean"), "val_cost": ("val_cost", "mean"),
                  "val_cost_std": ("val_cost", "std"), "val_accuracy": ("val_accuracy", "mean")}
    if "best_val_cost" in trials:
        aggregates["best_val_cost"] = ("best_val_cost", "mean")
    if "optimizer.lr" in trials:
        aggregates["lr"] = ("optimizer.lr", lambda v: v.iloc[0] if v.nunique() == 1 else np.nan)
    table = trials.groupby(by, dropna=False).agg(**aggregates).reset_index()
    if "lr" in table:
        table.insert(len(by), "lr", table.pop("lr"))
    times = metric_rows(curves, "time").merge(trials[["trial", *by]], on="trial")
    per_epoch = times.groupby(by, dropna=False)["value"].median().rename("s_per_epoch").reset_index()
    table = table.merge(val[[*by, "val_reached", "val_epochs_to_tau", "val_seconds_to_tau"]], on=by, how="left")
    table = table.merge(train[[*by, "train_epochs_to_tau"]], on=by, how="left")
    return table.merge(per_epoch, on=by, how="left")


def label_of(row, by) -> str:
    """``"relu, depth 3"``-style text for one group's key values."""
    return ", ".join(str(row[c]) for c in by)


# ---------------------------------------------------------------------------- figures
def curves_figure(curves: pd.DataFrame, trials: pd.DataFrame, by, metric: str = "val_cost",
                  title: str = "", logy: bool = True, panels: str | None = None) -> Figure:
    """Median (and interquartile band) of ``metric`` per epoch for each ``by`` group; one panel per
    value of ``panels`` (a column of ``trials``) when given."""
    by = [by] if isinstance(by, str) else list(by)
    keys = [None] if panels is None else sorted(trials[panels].dropna().unique())
    fig = Figure(figsize=(5 * len(keys), 3.6), layout="constrained")
    for i, key in enumerate(keys):
        ax = fig.add_subplot(1, len(keys), i + 1)
        part = trials if key is None else trials.loc[trials[panels] == key]
        plot_grouped_curves(grouped_curves(curves, part, by, metric), ax=ax, ylabel=metric, logy=logy)
        ax.set_title(title if key is None else f"{title} {panels}={key}".strip())
    return fig


# ---------------------------------------------------------------------------- output
def markdown(findings: Findings, cfg: DictConfig, level: int = 2) -> str:
    """The findings as Markdown: title, claim, command, verdict, table, figures, notes."""
    head = "#" * level
    lines = [f"{head} {findings.experiment}", "", f"**Claim.** {findings.claim}", "",
             f"**Command.** `{command(cfg)}` (study `{cfg.study_name}`, data set `{cfg.data.name}`)", "",
             findings.verdict, "",
             findings.table.to_markdown(index=False, floatfmt=".4g"), ""]
    lines += [f"![{stem}]({stem}.png)" for stem in findings.figures] + [""]
    lines += [f"- {note}" for note in findings.notes]
    return "\n".join(lines).rstrip() + "\n"


def write_findings(findings: Findings, cfg: DictConfig, record: StudyRecord) -> Path:
    """Write ``findings.csv``, ``findings.md`` and the figures to ``<findings.out>/<experiment>/``
    (replaced whole: a folder never mixes two runs) and log it to the study's parent run."""
    folder = Path(str(cfg.findings.out)) / findings.experiment
    staging = folder.with_name(folder.name + ".writing")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    findings.table.to_csv(staging / "findings.csv", index=False)
    (staging / "findings.md").write_text(markdown(findings, cfg))
    for stem, figure in findings.figures.items():
        figure.savefig(staging / f"{stem}.png", dpi=100)
    shutil.rmtree(folder, ignore_errors=True)
    staging.rename(folder)
    client_for(record.tracking_uri).log_artifacts(record.parent_run_id, str(folder), "findings")
    return folder


# ---------------------------------------------------------------------------- speed in steps, seeds
SEED = "train.seed"  # the column of the trials frame that pairs runs across settings


def n_train(study: StudyData) -> int:
    """The number of training samples the study's runs saw per epoch (read from one complete trial)."""
    trial = int(study.complete["trial"].iloc[0])
    return int(study.artifacts(trial).xy("train")[0].shape[0])


def steps_per_epoch(n: int, batch_size: int) -> int:
    """Optimizer steps per epoch: ``ceil(n / batch_size)`` (the last batch may be partial)."""
    return -(-int(n) // int(batch_size))


def epochs_to_reach(curves: pd.DataFrame, threshold: float, metric: str = "train_cost") -> pd.DataFrame:
    """Per trial, the (fractional) epoch at which ``metric`` first fell to ``threshold``.

    The curves are measured at the end of each epoch (1-based); between the last epoch above τ and
    the first at or below it the epoch is interpolated linearly in log(metric). A run already at or
    below τ after epoch 1 gets 1.0 (no epoch 0 is logged: an upper bound). Columns ``trial``,
    ``reached`` (bool), ``epoch`` (float, NaN if never), ``last_epoch`` (the run's last logged epoch).
    """
    rows = metric_rows(curves, metric)
    out = []
    for trial, run in rows.groupby("trial", sort=True):
        epochs, values = run["epoch"].to_numpy(np.float64), run["value"].to_numpy(np.float64)
        hit = np.flatnonzero(values <= threshold)
        epoch = np.nan
        if hit.size:
            i = hit[0]
            epoch = epochs[i]
            if i > 0 and values[i - 1] > 0 and values[i] > 0 and epochs[i] - epochs[i - 1] == 1:
                above, below = np.log(values[i - 1]), np.log(values[i])
                epoch = epochs[i - 1] + (above - np.log(threshold)) / (above - below) if above > below else epochs[i]
        out.append((trial, bool(hit.size), float(epoch), float(epochs.max())))
    return pd.DataFrame(out, columns=["trial", "reached", "epoch", "last_epoch"])


def steps_to_reach(curves: pd.DataFrame, trials: pd.DataFrame, threshold: float, n: int, metric: str = "train_cost",
                   batch: str = "train.batch_size", batch_size: int | None = None) -> pd.DataFrame:
    """:func:`epochs_to_reach` for the trials of ``trials`` in optimizer steps and samples seen:
    ``steps = epoch × ceil(n / B)``, ``samples = epoch × n``. A run that never reached τ is
    censored: ``steps_or_budget`` (and ``samples_or_budget``) count it at its whole budget (its last
    epoch), a lower bound on what it would need, so a comparison that uses them favours it.
    ``B``: the trial's ``batch`` column, else ``batch_size``."""
    found = epochs_to_reach(curves.loc[curves["trial"].isin(trials["trial"])], threshold, metric)
    found = trials[["trial"]].merge(found, on="trial", how="left")
    sizes = trials[batch].to_numpy(np.float64) if batch in trials else np.full(len(trials), float(batch_size))
    per_epoch = np.array([steps_per_epoch(n, b) for b in sizes], np.float64)
    epoch = found["epoch"].to_numpy(np.float64)
    budget = np.where(found["reached"].fillna(False).to_numpy(bool), epoch, found["last_epoch"].to_numpy(np.float64))
    return found.assign(steps=epoch * per_epoch, samples=epoch * n, steps_or_budget=budget * per_epoch,
                        samples_or_budget=budget * n)


def split_seeds(seeds) -> tuple[list, list]:
    """The sorted seeds cut in two halves: (tuning seeds, held-out seeds). With one seed both are it
    (then the reported values are not free of the winner's curse)."""
    seeds = sorted(pd.unique(pd.Series(list(seeds)).dropna()))
    if len(seeds) < 2:
        return seeds, seeds
    half = len(seeds) // 2
    return seeds[:half], seeds[half:]


def seed_range(seeds) -> str:
    """``"10–19"`` (or the one seed)."""
    seeds = [int(s) for s in seeds]
    return f"{seeds[0]}–{seeds[-1]}" if len(seeds) > 1 else f"{seeds[0]}"


def per_seed(frame: pd.DataFrame, by: str, value: str, seed: str = SEED) -> dict:
    """``{setting: Series of value indexed by seed}`` for :func:`analysis.stats.against_baseline`."""
    return {key: rows.set_index(seed)[value].astype(np.float64) for key, rows in frame.groupby(by, sort=False)}


def verdict_list(verdicts, fmt: str = "{:.3g}") -> str:
    """``"faster: adam −40 (−60 to −20); …"``-style text grouping Verdicts by what they concluded."""
    from ..stats import DOES_NOT_HOLD, HOLDS, NO_DIFFERENCE

    groups = []
    for kind in (HOLDS, NO_DIFFERENCE, DOES_NOT_HOLD):
        items = [v for v in verdicts if v.verdict == kind]
        if items:
            body = ", ".join(f"{v.label} {_signed(v.estimate, fmt)} ({_signed(v.low, fmt)} to {_signed(v.high, fmt)}, "
                             f"p = {v.p_value:.2g})" for v in items)
            groups.append(f"{kind}: {body}")
    return "; ".join(groups)


def _signed(x: float, fmt: str) -> str:
    return "nan" if not np.isfinite(x) else fmt.format(x).replace("-", "−")


def seconds_at(curves: pd.DataFrame, epochs: pd.DataFrame, time_metric: str = "time") -> np.ndarray:
    """Cumulative ``time_metric`` up to each row's fractional ``epoch`` of ``epochs`` (columns ``trial``,
    ``epoch``), the last epoch's time counted in proportion: ``(n_rows,)``, NaN where ``epoch`` is NaN or
    a needed epoch has no time."""
    times = metric_rows(curves, time_metric)
    by_trial = {t: rows.set_index("epoch")["value"] for t, rows in times.groupby("trial")}
    out = np.full(len(epochs), np.nan)
    for i, (trial, epoch) in enumerate(zip(epochs["trial"], epochs["epoch"])):
        if not np.isfinite(epoch) or trial not in by_trial:
            continue
        series = by_trial[trial]
        whole = int(np.floor(epoch))
        frac = epoch - whole
        needed = list(range(1, whole + 1)) + ([whole + 1] if frac > 0 else [])
        if not set(needed) <= set(series.index):
            continue
        out[i] = float(series.loc[list(range(1, whole + 1))].sum()) + (frac * float(series.loc[whole + 1])
                                                                       if frac > 0 else 0.0)
    return out
