"""Findings of ``experiment=local_minima``: one configuration trained from several initial weights
(``train.seed``), each with several mini-batch orders (``train.order_seed``). Do the runs end in
different minima, with barriers between them, and are some of those minima worse than others?

The minima are compared on the training set with dropout off (:mod:`analysis.minima`): the
"max_end" barrier (max L − max of the end losses, the most conservative of the three in use, see
:func:`analysis.minima.barrier`) on the straight path between every pair, in cost and in training
error, the L2 distance between them, the sharpness of each (λ_max) and the basins that barriers ≤
:data:`analysis.seeds.BASIN_TOL` join.
"""

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from nncore import Network

from ..alignment import aligned_pairwise_barriers
from ..minima import (
    INTERPOLATION_ALPHAS,
    barrier,
    basins,
    interpolate,
    pairwise_barriers,
    path_point,
    plot_barrier_heatmap,
    sharpness,
)
from ..seeds import BASIN_TOL
from ..stats import paired
from .common import Findings, StudyData

CLAIM = "Beware of local vs global minimum."
SEED, ORDER = "train.seed", "train.order_seed"
SAME, OTHER = "same initial weights, other order", "different initial weights"
N_ALPHAS = 21  # points on the segment [0, 1] for the barriers
CURVE_PAIRS = 3  # interpolation curves drawn per kind of pair
WORSE_FACTOR = 2.0  # a minimum is worse when its final train cost is more than this times the best one's,
ACCURACY_GAP = 0.01  # or its train accuracy is lower by more than this


@dataclass
class Minima:
    """The final weights of the complete runs, sorted by initial weights then order, and the training
    set they are compared on."""

    runs: pd.DataFrame  # one row per minimum: trial, train.seed, train.order_seed, label, final metrics
    thetas: list  # (n_params,) final parameters, one per row of runs
    starts: list  # (n_params,) initial parameters
    net: Network  # the architecture (the first run's final network)
    X: np.ndarray  # (N, n_in) training inputs
    Y: np.ndarray  # (N, n_out) training targets
    y: np.ndarray | None  # (N,) training class labels; None for regression
    cost: str


def findings(study: StudyData) -> Findings:
    """Final costs over the runs, barriers and distances between pairs of minima (same initial weights
    with another data order vs different initial weights), sharpness and basins."""
    minima = load_minima(study)
    runs = minima.runs
    if len(runs) < 2:
        return Findings("local_minima", CLAIM, f"Too few runs completed to compare minima: {len(runs)} of "
                        f"{len(study.trials)}.", pd.DataFrame({"compared": [SAME, OTHER], "pairs": [0, 0]}),
                        {"costs": costs_figure(runs)}, notes(study, minima, 0))
    matrix = pairwise_barriers(minima.net, minima.thetas, minima.X, minima.Y, minima.cost, N_ALPHAS,
                               labels=runs["label"])
    runs["basin"] = basins(matrix.to_numpy(), BASIN_TOL)
    aligned, _ = aligned_pairwise_barriers(minima.net, minima.thetas, minima.X, minima.Y, minima.cost, N_ALPHAS,
                                           labels=runs["label"])
    runs["basin_aligned"] = basins(aligned.to_numpy(), BASIN_TOL)
    runs["sharpness"], kinks = sharpnesses(minima)
    pairs = pair_frame(minima, matrix.to_numpy(), error_barriers(minima), aligned.to_numpy())
    table = pair_table(pairs)
    figures = {"barriers": barrier_figure(matrix), "barriers_aligned": barrier_figure(aligned, aligned=True),
               "interpolation": interpolation_figure(minima, pairs), "costs": costs_figure(runs)}
    tests = {**judge(pairs, runs), **judge_alignment(pairs, runs)}
    return Findings("local_minima", CLAIM, verdict(runs, table, tests), table, figures, notes(study, minima, kinks))


def judge_alignment(pairs: pd.DataFrame, runs: pd.DataFrame) -> dict:
    """``{"alignment": Verdict}``: per initial weights (``train.seed``), the mean barrier to other initial
    weights after weight matching minus the mean before, paired by seed (claim: lower;
    analysis.stats.paired). Each pair enters the means of both its seeds: the interval is a rough one."""
    if (pairs["kind"] == OTHER).sum() < 2:
        return {}
    after = per_seed_barriers(pairs, runs, "barrier_aligned")["other"]
    before = per_seed_barriers(pairs, runs, "barrier")["other"]
    return {"alignment": paired(after, before, "lower", label="aligned barrier − barrier, other initial weights")}


def per_seed_barriers(pairs: pd.DataFrame, runs: pd.DataFrame, column: str = "barrier") -> pd.DataFrame:
    """Per initial weights (``train.seed``): the mean ``column`` of the pairs that hold one of its
    runs, over its SAME pairs (another order) and its OTHER pairs (other initial weights); one row per
    seed with columns ``same`` and ``other`` (NaN where it has no such pair)."""
    seeds = runs[SEED].to_numpy()
    rows = []
    for side in ("a", "b"):
        rows.append(pd.DataFrame({SEED: seeds[pairs[side].to_numpy()], "kind": pairs["kind"].to_numpy(),
                                  "value": pairs[column].to_numpy(np.float64)}))
    long = pd.concat(rows, ignore_index=True)
    wide = long.groupby([SEED, "kind"])["value"].mean().unstack("kind")
    return wide.reindex(columns=[SAME, OTHER]).set_axis(["same", "other"], axis=1)


def judge(pairs: pd.DataFrame, runs: pd.DataFrame) -> dict:
    """``{"barrier", "error_barrier"}: Verdict``: per initial weights, the mean barrier to other
    initial weights minus the mean barrier between its own data orders, paired by seed (claim: higher;
    analysis.stats.paired). Each pair enters the means of both its seeds, so the seeds' values share
    pairs: the interval is a rough one."""
    found = {}
    for column in ("barrier", "error_barrier"):
        if column not in pairs or pairs[column].isna().all():
            continue
        wide = per_seed_barriers(pairs, runs, column)
        found[column] = paired(wide["other"], wide["same"], "higher", label=column.replace("_", " "))
    return found


# ---------------------------------------------------------------------------- numbers
def load_minima(study: StudyData) -> Minima:
    """The complete runs' final and initial weights and the training split (the first run's)."""
    runs = study.complete.sort_values([SEED, ORDER], kind="stable").reset_index(drop=True)
    runs["label"] = [f"s{int(s)}/o{int(o)}" for s, o in zip(runs[SEED], runs[ORDER])]
    artifacts = [study.artifacts(t) for t in runs["trial"]]
    first = artifacts[0]
    X, Y = first.xy("train")
    labels = first.data.y_train if first.data.task == "classification" else None
    return Minima(runs, [a.final.params.copy() for a in artifacts], [a.initial.params.copy() for a in artifacts],
                  first.final, X, Y, labels, first.cost)


def error_barriers(minima: Minima) -> np.ndarray:
    """``(k, k)`` "max_end" barriers in training error (fraction misclassified) on ``N_ALPHAS`` points of
    each segment; NaN for regression."""
    k = len(minima.thetas)
    if minima.y is None:
        return np.full((k, k), np.nan)
    twin = minima.net.copy()
    alphas = np.linspace(0.0, 1.0, N_ALPHAS)
    matrix = np.zeros((k, k))
    for i in range(k):
        for j in range(i + 1, k):
            path = [_error(twin, path_point(minima.thetas[i], minima.thetas[j], a), minima.X, minima.y)
                    for a in alphas]
            matrix[i, j] = matrix[j, i] = barrier(path)
    return matrix


def _error(net: Network, theta: np.ndarray, X: np.ndarray, y: np.ndarray) -> float:
    net.params[...] = theta
    return float(np.mean(net.predict(X) != y))


def sharpnesses(minima: Minima) -> tuple[np.ndarray, int]:
    """λ_max of the training cost's Hessian at each minimum ``(k,)``, and how many of them Lanczos
    warned about (a ReLU kink near θ, or no convergence)."""
    values, warned = [], 0
    for theta in minima.thetas:
        net = minima.net.copy()
        net.params[...] = theta
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", RuntimeWarning)
            values.append(sharpness(net, minima.X, minima.Y, minima.cost, n_trace=0, lambda_min=False).lambda_max)
        warned += bool(caught)
    return np.asarray(values), warned


def pair_frame(minima: Minima, barriers: np.ndarray, errors: np.ndarray, aligned: np.ndarray) -> pd.DataFrame:
    """One row per pair i < j of minima: ``a``, ``b`` (row numbers of ``minima.runs``), ``kind``
    (SAME or OTHER), ``barrier``, ``error_barrier``, ``same_basin``, ``barrier_aligned`` and
    ``same_basin_aligned`` (modulo permutation: b's hidden units matched to a's), ``distance`` and
    ``distance_at_init`` (L2 between the final and between the initial parameters), ``d_train_cost``
    and ``d_val_cost`` (absolute difference of the final costs)."""
    runs = minima.runs
    rows = []
    for i in range(len(runs)):
        for j in range(i + 1, len(runs)):
            a, b = runs.iloc[i], runs.iloc[j]
            rows.append({"a": i, "b": j, "kind": SAME if a[SEED] == b[SEED] else OTHER,
                         "barrier": barriers[i, j], "error_barrier": errors[i, j],
                         "same_basin": a["basin"] == b["basin"], "barrier_aligned": aligned[i, j],
                         "same_basin_aligned": a["basin_aligned"] == b["basin_aligned"],
                         "distance": np.linalg.norm(minima.thetas[i] - minima.thetas[j]),
                         "distance_at_init": np.linalg.norm(minima.starts[i] - minima.starts[j]),
                         "d_train_cost": abs(a["train_cost"] - b["train_cost"]),
                         "d_val_cost": abs(a["val_cost"] - b["val_cost"])})
    return pd.DataFrame(rows)


def pair_table(pairs: pd.DataFrame) -> pd.DataFrame:
    """One row per kind of pair (SAME, OTHER; ``pairs`` 0 when there is none): mean, std, min and
    max of the barrier, mean and max of the error barrier, the fraction of pairs in one basin, mean
    distances and mean absolute differences of the final costs."""
    grouped = pairs.groupby("kind").agg(
        pairs=("barrier", "size"), barrier=("barrier", "mean"), barrier_std=("barrier", "std"),
        barrier_min=("barrier", "min"), barrier_max=("barrier", "max"), error_barrier=("error_barrier", "mean"),
        error_barrier_max=("error_barrier", "max"), same_basin=("same_basin", "mean"),
        barrier_aligned=("barrier_aligned", "mean"), same_basin_aligned=("same_basin_aligned", "mean"),
        distance=("distance", "mean"), distance_at_init=("distance_at_init", "mean"),
        d_train_cost=("d_train_cost", "mean"), d_val_cost=("d_val_cost", "mean"))
    table = grouped.reindex([SAME, OTHER]).rename_axis("compared").reset_index()
    table["pairs"] = table["pairs"].fillna(0).astype(int)
    return table


def init_share(runs: pd.DataFrame, metric: str) -> float:
    """η²: the fraction of the variance of ``metric`` over the runs that lies between the groups of
    one initial weights (between-group over total sum of squares); NaN without spread."""
    values = runs[metric]
    total = float(((values - values.mean()) ** 2).sum())
    between = float((runs.groupby(SEED)[metric].transform("mean") - values.mean()).pow(2).sum())
    return between / total if total > 0 else np.nan


# ---------------------------------------------------------------------------- figures
def barrier_figure(matrix: pd.DataFrame, aligned: bool = False) -> Figure:
    """The barrier heatmap, minima labelled ``s<seed>/o<order>`` (``aligned``: modulo permutation)."""
    side = max(5.0, 0.3 * len(matrix) + 2.5)
    ax = Figure(figsize=(side + 1, side), layout="constrained").add_subplot()
    plot_barrier_heatmap(matrix, ax=ax)
    ax.tick_params(axis="x", labelrotation=90)
    ax.set_title("barrier (max_end variant), training cost" + (", after weight matching" if aligned else ""))
    return ax.figure


def interpolation_figure(minima: Minima, pairs: pd.DataFrame) -> Figure:
    """Training cost on the line through up to CURVE_PAIRS pairs of each kind (each from another initial
    weights), one panel per kind."""
    fig = Figure(figsize=(10, 3.8), layout="constrained")
    axes = fig.subplots(1, 2, sharey=True)
    for ax, kind in zip(axes, (SAME, OTHER)):
        chosen = pairs.loc[pairs["kind"] == kind]
        chosen = chosen.loc[~chosen["a"].map(minima.runs[SEED]).duplicated()].head(CURVE_PAIRS)
        for row in chosen.itertuples():
            frame = interpolate(minima.net, minima.thetas[row.a], minima.thetas[row.b], minima.X, minima.Y,
                                minima.cost, INTERPOLATION_ALPHAS)
            ax.plot(frame["alpha"], frame["loss"],
                    label=f"{minima.runs['label'][row.a]} → {minima.runs['label'][row.b]}")
        for end in (0.0, 1.0):
            ax.axvline(end, color="0.6", linewidth=0.8, linestyle=":")
        ax.set_yscale("log")
        ax.set_xlabel("α  (θ = (1-α)θa + αθb)")
        ax.set_title(kind)
        if len(chosen):
            ax.legend(fontsize="small")
    axes[0].set_ylabel(f"training {minima.cost}")
    return fig


def costs_figure(runs: pd.DataFrame) -> Figure:
    """Histograms of the final train and validation costs (and sharpness, when computed), stacked by
    initial weights."""
    metrics = [m for m in ("train_cost", "val_cost", "sharpness") if m in runs]
    fig = Figure(figsize=(4 * len(metrics), 3.4), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(metrics)))
    groups = list(runs.groupby(SEED))
    for ax, metric in zip(axes, metrics):
        ax.hist([g[metric].to_numpy() for _, g in groups], bins=12, stacked=True,
                label=[f"seed {int(s)}" for s, _ in groups])
        ax.set_xlabel(f"final {metric}" if metric != "sharpness" else "sharpness (λ_max)")
        ax.set_ylabel("runs")
        ax.locator_params(axis="x", nbins=4)
    axes[-1].legend(fontsize="small")
    return fig


# ---------------------------------------------------------------------------- text
def verdict(runs: pd.DataFrame, table: pd.DataFrame, tests: dict | None = None) -> str:
    """Whether the runs land in separate basins and whether some of those minima are worse on the
    training set than others."""
    rows = table.set_index("compared")
    n_basins = int(runs["basin"].max()) + 1
    worse = _worse(runs)
    if n_basins == 1:
        head = (f"**The claim does not hold here:** all {len(runs)} runs share one basin (barriers ≤ {BASIN_TOL:g} "
                "join them).")
    elif worse:
        head = f"**The claim holds here:** the {len(runs)} runs fall into {n_basins} basins and some minima are worse."
    else:
        head = (f"**The claim holds only in part:** the {len(runs)} runs fall into {n_basins} basins "
                f"({_basin_origin(runs)}), but the minima are equally good on the training set.")
    parts = [head, *(_pairs(rows.loc[kind], kind) for kind in (SAME, OTHER) if rows.loc[kind, "pairs"])]
    tests = dict(tests or {})
    alignment = tests.pop("alignment", None)
    if tests:
        parts.append("Barrier to other initial weights − barrier between orders of the same, per initial weights "
                     "(paired by seed, 95 % t interval): " + "; ".join(v.sentence() for v in tests.values()) + ".")
    if "basin_aligned" in runs:
        parts.append(_modulo_permutation(runs, rows, alignment))
    return " ".join([*parts, _training(runs, worse), _validation(runs, rows)])


def _modulo_permutation(runs: pd.DataFrame, rows: pd.DataFrame, alignment) -> str:
    """What weight matching (Ainsworth et al. 2023) makes of the basins: how many remain, and the barrier
    between minima from different initial weights before and after."""
    before, after = int(runs["basin"].max()) + 1, int(runs["basin_aligned"].max()) + 1
    text = (f"Modulo permutation (each pair's second minimum's hidden units matched to the first's by weight "
            f"matching): {before} basin{'s' if before > 1 else ''} become {after}")
    if rows.loc[OTHER, "pairs"]:
        other = rows.loc[OTHER]
        text += (f"; between different initial weights the barrier is {other['barrier_aligned']:.2g} on average "
                 f"after alignment against {other['barrier']:.2g} before, {other['same_basin_aligned']:.0%} of the "
                 "pairs in one basin")
    if alignment is not None:
        text += f" ({alignment.sentence()})"
    return text + "."


def _worse(runs: pd.DataFrame) -> bool:
    """Some minimum is worse on the training set: cost above WORSE_FACTOR × the best, or accuracy
    more than ACCURACY_GAP below the best."""
    accuracy = runs["train_accuracy"].dropna()
    gap = accuracy.max() - accuracy.min() if len(accuracy) else 0.0
    return bool(runs["train_cost"].max() > WORSE_FACTOR * runs["train_cost"].min() or gap > ACCURACY_GAP)


def _basin_origin(runs: pd.DataFrame) -> str:
    """Whether the basins are those of the initial weights: each one's runs in one basin, no two share one."""
    per_seed = runs.groupby(SEED)["basin"].nunique()
    if (per_seed == 1).all() and runs.groupby(SEED)["basin"].first().is_unique:
        return "one per initial weights"
    return f"from {runs[SEED].nunique()} initial weights"


def _pairs(row: pd.Series, kind: str) -> str:
    n = int(row["pairs"])
    text = (f"{kind[0].upper()}{kind[1:]}: {n} pair{'s' if n > 1 else ''}, barrier {row['barrier']:.2g} on "
            f"average ({row['barrier_min']:.2g}–{row['barrier_max']:.2g}), {row['same_basin']:.0%} of them in one "
            f"basin, {row['distance']:.3g} apart")
    if row["error_barrier_max"] > 0:
        text += f", train error up to {row['error_barrier_max']:.1%} above the ends along the path"
    elif row["error_barrier_max"] == 0:
        text += ", the train error never rises along the path"
    return text + "."


def _training(runs: pd.DataFrame, worse: bool) -> str:
    rho = runs["sharpness"].corr(runs["val_cost"], method="spearman")
    text = (f"On the training set: {_accuracy(runs['train_accuracy'].dropna())}final train cost "
            f"{_spread(runs['train_cost'])}, sharpness {_spread(runs['sharpness'])}, Spearman ρ with the "
            f"validation cost {rho:.2f}")
    return text + ("." if worse else ": no run is stuck in a worse minimum.")


def _accuracy(accuracy: pd.Series) -> str:
    if accuracy.empty:
        return ""
    if accuracy.min() == accuracy.max():
        return f"train accuracy {accuracy.min():.1%} for every run, "
    return f"train accuracy {accuracy.min():.1%}–{accuracy.max():.1%}, "


def _validation(runs: pd.DataFrame, rows: pd.DataFrame) -> str:
    text = f"Validation cost {_spread(runs['val_cost'])}"
    share = init_share(runs, "val_cost")
    if np.isfinite(share):
        text += f"; the initial weights account for {share:.0%} of its variance"
    if rows["pairs"].all():
        text += (f" (mean |Δ| {rows.loc[OTHER, 'd_val_cost']:.2g} between different initial weights, "
                 f"{rows.loc[SAME, 'd_val_cost']:.2g} between orders)")
    return text + "."


def _spread(values: pd.Series) -> str:
    return f"{values.mean():.3g} ± {values.std():.2g} ({values.min():.3g}–{values.max():.3g})"


def notes(study: StudyData, minima: Minima, kinks: int) -> list[str]:
    """How the numbers were made."""
    cfg = study.cfg
    runs = minima.runs
    return [
        f"{cfg.data.name}, hidden layers {list(minima.net.sizes[1:-1])} {minima.net.activation}, "
        f"{cfg.optimizer.name} lr {cfg.optimizer.lr:g}, batch {cfg.train.batch_size}, {cfg.train.epochs} epochs, "
        f"{cfg.train.dtype}; {runs[SEED].nunique()} initial weights (train.seed) × up to {runs[ORDER].nunique()} "
        f"mini-batch orders (train.order_seed): {len(runs)} complete runs of {len(study.trials)}.",
        f"barrier: the \"max_end\" variant, max over α∈[0,1] of L((1-α)θa+αθb) − max(L(θa), L(θb)), {N_ALPHAS} points, "
        "full training set, dropout off; error_barrier: the same with the training error (fraction "
        "misclassified) for L; two minima share a basin when a chain of barriers ≤ "
        f"{BASIN_TOL:g} joins them (analysis.seeds.BASIN_TOL).",
        "distance: L2 norm of the difference of the final parameter vectors; distance_at_init: the same for their "
        "initial weights; d_train_cost, d_val_cost: mean absolute difference of the two runs' final costs.",
        "sharpness: λ_max, the largest eigenvalue of the training cost's Hessian, by Lanczos on finite-difference "
        f"Hessian-vector products to 1e-6 relative (analysis.minima.sharpness){_kinks(kinks)}.",
        "A \"minimum\" is where training stopped: with cross-entropy on separable data the cost keeps falling. A "
        "barrier on the straight path is an upper bound: minima from different initial weights are often joined by "
        "curved low-cost paths, or become linearly connected once their hidden units are permuted.",
    ]


def _kinks(kinks: int) -> str:
    return f"; it warned for {kinks} minima (ReLU kink near θ: estimate kept; no convergence: NaN)" if kinks else ""
