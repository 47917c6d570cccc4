"""Findings of ``experiment=mode_connectivity``: are minima from different initial weights different
basins, or the same basin with its hidden units permuted?

Three parts, all on the study's training and test splits (dropout off), each barrier on ``N_ALPHAS``
evenly spaced points of the straight segment between two minima:

1. *Width*: the sweep trains seeds × hidden widths × depths; consecutive seeds (0, 1), (2, 3), ... at
   the same architecture are independent pairs. Per pair, the loss and error barriers (``WIDTH_VARIANT``
   of :func:`analysis.minima.barrier`) before and after aligning the second net to the first by weight
   matching (:func:`analysis.alignment.align`), paired over the pairs (:func:`analysis.stats.paired`).
2. *Instability* (Frankle et al. 2020): from the initial weights of ``train.seed`` s, the config's own
   network (``model.depth`` × ``model.width``) is trained here, outside the sweep, to epoch k (the same
   epochs a sweep run of seed s makes), then two copies go on to the last epoch with the data orders of
   ``train.order_seed`` 1 and 2; the barrier between the two ends against k.
3. *Merging*: the midpoint (α = ½, the weight average) of each width pair, aligned and not, on the test
   set, against the ends.
"""

from __future__ import annotations

import copy
import multiprocessing
import os
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

import nncore

from ..alignment import align
from ..minima import barrier, path_point
from ..stats import DOES_NOT_HOLD, HOLDS, holm, mean_interval, paired, trend
from .common import Findings, StudyData

CLAIM = ("Minima from different initial weights are one basin modulo permutations of the hidden units: after weight "
         "matching the barrier between them nearly vanishes, more so with width (Entezari et al. 2022; Ainsworth et "
         "al. 2023); copies trained from one initialisation with other batch orders are linearly connected from the "
         "start for small nets (Frankle et al. 2020).")
DEPTH, WIDTH, SEED = "model.depth", "model.width", "train.seed"
N_ALPHAS = 21  # points on [0, 1] for every barrier (α = ½, the merged net, among them)
WIDTH_VARIANT = "entezari2022"  # max_α L(α) − ((1−α)L_a + αL_b)
INSTABILITY_VARIANT = "frankle2020"  # max_α L(α) − (L_a + L_b)/2, Frankle et al.'s error barrier
K_GRID = (0, 1, 2, 5, 10, 20, 50, 100, 200)  # epochs of shared training before the copies split (those < epochs)
INSTABILITY_SEEDS = 5  # initial weights for the instability part (at most findings.seeds)
ORDERS = (1, 2)  # train.order_seed of the two copies
SPLITS = ("train", "test")
MEASURES = {("train", "loss"): "train loss barrier", ("test", "loss"): "test loss barrier",
            ("train", "error"): "train error barrier", ("test", "error"): "test error barrier"}
MIDPOINT = "test error at the midpoint"
MAIN = ("train", "loss")  # the width verdicts' measure
VANISH = 0.1  # "nearly vanishes": the upper end of the aligned barrier's interval below this × the unaligned mean
COLUMNS = ["part", "hidden", "depth", "width", "k", "measure", "n", "ends", "before", "before_low", "before_high",
           "after", "after_low", "after_high", "p", "verdict"]

_SHARED: dict = {}  # what forked workers read: data splits, cost, the instability config (set before forking)


@dataclass
class Path:
    """Loss and error ``(N_ALPHAS,)`` per split along a segment, before and after alignment."""

    before: dict  # split -> {"loss": (N_ALPHAS,), "error": (N_ALPHAS,)}
    after: dict
    sweeps: int  # weight matching's passes over the hidden layers
    moved: float  # fraction of hidden units the alignment moved


# ---------------------------------------------------------------------------- pure helpers
def pairs_of(seeds) -> list[tuple[int, int]]:
    """Consecutive disjoint pairs of the sorted seeds: [(s0, s1), (s2, s3), ...] (an odd one left out)."""
    seeds = sorted(int(s) for s in pd.unique(pd.Series(list(seeds)).dropna()))
    return [(seeds[i], seeds[i + 1]) for i in range(0, len(seeds) - 1, 2)]


def k_grid(epochs: int) -> list[int]:
    """The k of :data:`K_GRID` below ``epochs`` (a copy needs at least one epoch of its own)."""
    return [k for k in K_GRID if k < int(epochs)]


def stable_from(ks, values, threshold: float):
    """The smallest k from which every later k's value is below ``threshold`` (``ks`` ascending,
    ``values`` one per k; NaN counts as not below); None when even the last is not."""
    found = None
    for k, value in zip(reversed(list(ks)), reversed(list(values))):
        if not (np.isfinite(value) and value < threshold):
            break
        found = k
    return found


def path_metrics(net: nncore.Network, theta_a, theta_b, data: dict, cost: str, alphas) -> dict:
    """``{split: {"loss": (n,), "error": (n,)}}`` along ``(1-α)θa + αθb`` for each α of ``alphas``;
    ``data``: ``{split: (X, Y, y)}`` with ``X``, ``Y`` in the net's dtype and ``y`` the labels (None:
    regression, error NaN). Dropout off; ``net`` is left as it was."""
    twin = net.copy()
    out = {split: {"loss": np.empty(len(alphas)), "error": np.empty(len(alphas))} for split in data}
    for i, alpha in enumerate(alphas):
        twin.params[...] = path_point(theta_a, theta_b, float(alpha))
        for split, (X, Y, y) in data.items():
            value, outputs = twin.evaluate(X, Y, cost)
            out[split]["loss"][i] = value
            out[split]["error"][i] = 1.0 - nncore.accuracy(outputs, y) if y is not None else np.nan
    return out


def compare(net_a: nncore.Network, net_b: nncore.Network, data: dict, cost: str, rng=0) -> Path:
    """The segment from ``net_a`` to ``net_b`` and to ``net_b`` aligned to ``net_a`` by weight matching."""
    alphas = np.linspace(0.0, 1.0, N_ALPHAS)
    found = align(net_a, net_b, rng=rng)
    moved = float(np.mean(np.concatenate([p != np.arange(p.size) for p in found.perms]))) if found.perms else 0.0
    return Path(path_metrics(net_a, net_a.params, net_b.params, data, cost, alphas),
                path_metrics(net_a, net_a.params, found.net.params, data, cost, alphas), found.sweeps, moved)


def barriers(path: Path, variant: str) -> dict:
    """``{(split, metric, "before"|"after"): barrier}`` and the ends and midpoints of ``path``."""
    out = {}
    for when in ("before", "after"):
        for split, metrics in getattr(path, when).items():
            for metric, values in metrics.items():
                out[(split, metric, when)] = barrier(values, variant=variant) if np.isfinite(values).all() else np.nan
                out[(split, metric, f"mid_{when}")] = float(values[len(values) // 2])
                out[(split, metric, "ends")] = float((values[0] + values[-1]) / 2)
    return out


# ---------------------------------------------------------------------------- the study
def findings(study: StudyData) -> Findings:
    """The width table, the instability curve and the merging result (see the module's docstring)."""
    start = time.perf_counter()
    cfg = study.cfg
    runs = study.complete.sort_values([DEPTH, WIDTH, SEED], kind="stable").reset_index(drop=True)
    first = study.artifacts(int(runs["trial"].iloc[0]))
    cost = first.cost
    _SHARED.update(data=_splits(first), cost=cost, cfg=cfg, dataset=first.data)
    tasks = [("pair", key) for key in _pair_tasks(study, runs)]
    seeds = sorted(int(s) for s in runs[SEED].unique())[:min(INSTABILITY_SEEDS, int(cfg.findings.seeds))]
    ks = k_grid(cfg.train.epochs)
    tasks = [("instability", (s, ks)) for s in seeds] + tasks
    loaded = time.perf_counter() - start
    results = _run(tasks, int(cfg.sweep.n_workers))
    pair_rows = pd.DataFrame([r for kind, r in results if kind == "pair"])
    inst_rows = pd.DataFrame([row for kind, rows in results if kind == "instability" for row in rows])
    width_table, width_tests = width_part(pair_rows)
    inst_table, stable = instability_part(inst_rows, float(cfg.findings.threshold))
    merge_tests = merging_tests(pair_rows)
    table = pd.concat([width_table, inst_table], ignore_index=True)[COLUMNS]
    paths = {(r["depth"], r["width"]): r["path"] for kind, r in results if kind == "pair" and r["pair"] == 0}
    figures = {"barriers": barrier_figure(width_table), "interpolation": interpolation_figure(paths, cost),
               "instability": instability_figure(inst_table, float(cfg.findings.threshold)),
               "merging": merging_figure(width_table)}
    text = verdict(cfg, width_table, width_tests, width_trends(pair_rows), inst_table, stable, merge_tests)
    seconds = time.perf_counter() - start
    return Findings("mode_connectivity", CLAIM, text, table, figures,
                    notes(cfg, first, runs, pair_rows, inst_rows, ks, seeds, loaded, seconds))


def _splits(artifacts) -> dict:
    return _splits_of(artifacts.data, artifacts.final)


def _splits_of(dataset, net: nncore.Network) -> dict:
    """``{split: (X, Y, y)}`` of the train and test splits for ``net`` (``y``: labels, None for regression)."""
    out = {}
    for split in SPLITS:
        y = getattr(dataset, f"y_{split}")
        X, Y = nncore.check_inputs(net, getattr(dataset, f"X_{split}"), y)
        out[split] = (X, Y, np.asarray(y) if dataset.task == "classification" else None)
    return out


def _pair_tasks(study: StudyData, runs: pd.DataFrame) -> list[dict]:
    """One task per pair of seeds per architecture: the two final parameter vectors and the net's shape."""
    tasks = []
    for (depth, width), group in runs.groupby([DEPTH, WIDTH], sort=True):
        trial_of = dict(zip(group[SEED].astype(int), group["trial"].astype(int)))
        for index, (a, b) in enumerate(pairs_of(trial_of)):
            net_a, net_b = study.artifacts(trial_of[a]).final, study.artifacts(trial_of[b]).final
            tasks.append({"depth": int(depth), "width": int(width), "pair": index, "seeds": (a, b),
                          "shape": _shape(net_a), "a": net_a.params.copy(), "b": net_b.params.copy()})
    tasks.sort(key=lambda t: -t["a"].size)  # the biggest first: the workers finish together
    return tasks


def _shape(net: nncore.Network) -> tuple:
    return net.sizes, net.activation, net.output, str(net.dtype)


def _net(shape, params=None) -> nncore.Network:
    sizes, activation, output, dtype = shape
    net = nncore.Network(sizes, activation, output, dtype=dtype, rng=0)
    if params is not None:
        net.params[...] = params
    return net


def _run(tasks: list, workers: int) -> list:
    """Each task's result, in order; in ``workers`` forked processes (one BLAS thread each) when > 1."""
    if workers <= 1 or len(tasks) <= 1:
        return [_do(task) for task in tasks]
    with ProcessPoolExecutor(min(workers, len(tasks)), mp_context=multiprocessing.get_context("fork"),
                             initializer=_one_thread) as pool:
        return list(pool.map(_do, tasks))


def _one_thread() -> None:
    from threadpoolctl import threadpool_limits

    _SHARED["limits"] = threadpool_limits(1)


def _do(task):
    kind, payload = task
    if kind == "pair":
        a, b = _net(payload["shape"], payload["a"]), _net(payload["shape"], payload["b"])
        path = compare(a, b, _SHARED["data"], _SHARED["cost"], rng=payload["pair"])
        return kind, {**{k: payload[k] for k in ("depth", "width", "pair", "seeds")},
                      "path": path, "moved": path.moved, "values": barriers(path, WIDTH_VARIANT)}
    seed, ks = payload
    return kind, instability_runs(_SHARED["cfg"], _SHARED["dataset"], seed, ks, _SHARED["data"], _SHARED["cost"])


def instability_runs(cfg, dataset, seed: int, ks, data: dict, cost: str) -> list[dict]:
    """Per k of ``ks``: ``{"seed", "k", "values"}``, the barriers (:data:`INSTABILITY_VARIANT`) between the
    two copies of :func:`instability_ends`, before and after weight matching (no ``values``: one diverged)."""
    rows = []
    for k, ends in instability_ends(cfg, dataset, seed, ks):
        row = {"seed": int(seed), "k": int(k)}
        if all(e is not None for e in ends):
            path = compare(ends[0], ends[1], data, cost, rng=seed)
            row.update(values=barriers(path, INSTABILITY_VARIANT), moved=path.moved)
        rows.append(row)
    return rows


def instability_ends(cfg, dataset, seed: int, ks):
    """Yields ``(k, [net_1, net_2])`` for each k of ``ks`` (ascending): from the initial weights of
    ``train.seed=seed`` (the config's network, optimizer and batch size) one trunk trained to epoch k
    with the run's own data order (as :func:`experiments.trainer.train_config` draws it), then two
    copies of the network and the optimizer state trained on to ``cfg.train.epochs`` with the orders of
    ``train.order_seed`` 1 and 2 (``default_rng([order_seed, 1])``, as train_config). At k = 0 the copies
    are exactly the runs ``train.seed=seed train.order_seed=1|2``; a copy that diverged is None."""
    from experiments.trainer import build_network, build_optimizer, output_and_cost

    cfg = copy.deepcopy(cfg)
    cfg.train.seed = int(seed)
    rng = np.random.default_rng(cfg.train.seed)
    net = build_network(cfg, dataset, rng)
    optimizer = build_optimizer(cfg)
    _, train_cost = output_and_cost(cfg, dataset.task)
    epochs, batch = int(cfg.train.epochs), int(cfg.train.batch_size)
    done = 0
    for k in ks:
        if k > done:
            if not _fit(net, dataset, optimizer, k - done, batch, rng, train_cost):
                return  # the trunk diverged: no later k
            done = k
        ends = []
        for order in ORDERS:
            twin, twin_optimizer = net.copy(), copy.deepcopy(optimizer)
            ok = _fit(twin, dataset, twin_optimizer, epochs - k, batch, np.random.default_rng([order, 1]), train_cost)
            ends.append(twin if ok else None)
        yield k, ends


def _fit(net, dataset, optimizer, epochs: int, batch: int, rng, cost: str) -> bool:
    """Train ``net`` in place for ``epochs`` with ``rng``'s data order; False if it diverged."""
    if epochs <= 0:
        return True
    try:
        with np.errstate(over="ignore", invalid="ignore"):
            nncore.fit(net, dataset.X_train, dataset.y_train, optimizer=optimizer, epochs=epochs, batch_size=batch,
                       rng=rng, cost=cost)
    except nncore.DivergenceError:
        return False
    return True


# ---------------------------------------------------------------------------- parts
def _row(part, depth, width, k, measure, ends, before, after, test=None) -> dict:
    mb, lb, hb, n_b = mean_interval(before)
    ma, la, ha, n_a = mean_interval(after)
    e, _, _, _ = mean_interval(ends)
    return {"part": part, "hidden": f"{depth}×{width}" if depth is not None else "", "depth": depth, "width": width,
            "k": k, "measure": measure, "n": max(n_b, n_a), "ends": e, "before": mb, "before_low": lb,
            "before_high": hb, "after": ma, "after_low": la, "after_high": ha,
            "p": test.p_value if test is not None else np.nan, "verdict": test.verdict if test is not None else ""}


def _column(rows: pd.DataFrame, key) -> pd.Series:
    return rows["values"].map(lambda v: v.get(key, np.nan) if isinstance(v, dict) else np.nan).astype(np.float64)


def width_part(pairs: pd.DataFrame) -> tuple[pd.DataFrame, dict]:
    """Rows per architecture and measure (barriers, and the merged net's test error: before = the
    unaligned midpoint, after = the aligned one) and ``{(depth, width): Verdict}`` (after − before of
    :data:`MAIN`, paired over the pairs, Holm-corrected over the widths of each depth)."""
    rows, tests = [], {}
    if pairs.empty:
        return pd.DataFrame(columns=COLUMNS), tests
    for depth, by_depth in pairs.groupby("depth", sort=True):
        found = {}
        for width, group in by_depth.groupby("width", sort=True):
            index = group["pair"].to_numpy()
            before = pd.Series(_column(group, (*MAIN, "before")).to_numpy(), index=index)
            after = pd.Series(_column(group, (*MAIN, "after")).to_numpy(), index=index)
            found[width] = paired(after, before, "lower", label=f"{depth}×{width}")
        adjusted = holm([v.p_value for v in found.values()])
        for (width, v), p in zip(found.items(), adjusted):
            tests[(int(depth), int(width))] = replace(v, p_value=float(p), p_raw=v.p_value, correction="Holm")
        for width, group in by_depth.groupby("width", sort=True):
            for (split, metric), measure in MEASURES.items():
                before, after = _column(group, (split, metric, "before")), _column(group, (split, metric, "after"))
                test = tests[(int(depth), int(width))] if (split, metric) == MAIN else paired(after, before, "lower")
                ends = _column(group, (split, metric, "ends"))
                rows.append(_row("width", int(depth), int(width), None, measure, ends, before, after, test))
            mid_b = _column(group, ("test", "error", "mid_before"))
            mid_a = _column(group, ("test", "error", "mid_after"))
            rows.append(_row("merging", int(depth), int(width), None, MIDPOINT,
                             _column(group, ("test", "error", "ends")), mid_b, mid_a, paired(mid_a, mid_b, "lower")))
    return pd.DataFrame(rows, columns=COLUMNS), tests


def width_trends(pairs: pd.DataFrame) -> dict:
    """``{depth: Verdict}``: Spearman/Page trend of the after-alignment :data:`MAIN` barrier over width."""
    out = {}
    if pairs.empty:
        return out
    for depth, group in pairs.groupby("depth", sort=True):
        frame = pd.DataFrame({"width": group["width"], "seed": group["pair"],
                              "barrier": _column(group, (*MAIN, "after")).to_numpy()})
        out[int(depth)] = trend(frame, "width", "barrier", "decreasing", label=f"depth {depth}")
    return out


def instability_part(runs: pd.DataFrame, threshold: float) -> tuple[pd.DataFrame, dict]:
    """Rows per k (test error and train loss barriers between the copies, before and after alignment)
    and ``{"mean": k, "upper": k}``: the k from which the mean (the upper end of the 95 % interval) of the
    unaligned test error barrier stays below ``threshold`` (None: never)."""
    if runs.empty or "values" not in runs:
        return pd.DataFrame(columns=COLUMNS), {"mean": None, "upper": None}
    rows = []
    for k, group in runs.groupby("k", sort=True):
        for split, metric in (("test", "error"), ("train", "loss")):
            before, after = _column(group, (split, metric, "before")), _column(group, (split, metric, "after"))
            rows.append(_row("instability", None, None, int(k), MEASURES[(split, metric)],
                             _column(group, (split, metric, "ends")), before, after))
    table = pd.DataFrame(rows, columns=COLUMNS)
    error = table.loc[table["measure"] == MEASURES[("test", "error")]]
    upper = error["before_high"].where(error["n"] > 1, np.inf)
    return table, {"mean": stable_from(error["k"], error["before"], threshold),
                   "upper": stable_from(error["k"], upper, threshold)}


def merging_tests(pairs: pd.DataFrame) -> dict:
    """At the widest net of each depth: ``{depth: (aligned vs unaligned midpoint, aligned midpoint vs the
    mean of the ends)}``, test error, paired over the pairs."""
    out = {}
    if pairs.empty:
        return out
    for depth, group in pairs.groupby("depth", sort=True):
        widest = group.loc[group["width"] == group["width"].max()]
        mid_a, mid_b = _column(widest, ("test", "error", "mid_after")), _column(widest, ("test", "error", "mid_before"))
        ends = _column(widest, ("test", "error", "ends"))
        w = int(widest["width"].iloc[0])
        out[int(depth)] = (paired(mid_a, mid_b, "lower", label=f"{depth}×{w}: aligned − unaligned midpoint"),
                           paired(mid_a, ends, "higher", label=f"{depth}×{w}: aligned midpoint − mean of the ends"))
    return out


# ---------------------------------------------------------------------------- text
def _interval(row, when: str, scale: float = 1.0, unit: str = "") -> str:
    m, lo, hi = row[when] * scale, row[f"{when}_low"] * scale, row[f"{when}_high"] * scale
    if not np.isfinite(lo):
        return f"{m:.3g}{unit}"
    return f"{m:.3g}{unit} ({lo:.3g} to {hi:.3g})"


def verdict(cfg, width: pd.DataFrame, tests: dict, trends: dict, inst: pd.DataFrame, stable: dict,
            merge: dict) -> str:
    """One paragraph: the width part's head and per-depth numbers, the instability curve, the merging."""
    data = _data_name(cfg)
    main = width.loc[(width["part"] == "width") & (width["measure"] == MEASURES[MAIN])]
    if main.empty:
        return f"**Too few runs to compare** on {data}: no architecture has a complete pair of seeds."
    error = width.loc[(width["part"] == "width") & (width["measure"] == MEASURES[("test", "error")])]
    test_loss = width.loc[(width["part"] == "width") & (width["measure"] == MEASURES[("test", "loss")])]
    widest = main.loc[main.groupby("depth")["width"].idxmax()]
    found = [tests[(int(r.depth), int(r.width))].verdict for r in widest.itertuples()]
    vanishes = all(np.isfinite(r.after_high) and r.after_high < VANISH * r.before for r in widest.itertuples())
    if all(v == HOLDS for v in found) and vanishes:
        head = "**The claim holds for width:** after weight matching the barrier nearly vanishes at the widest nets"
    elif all(v == HOLDS for v in found):
        head = ("**The claim holds in part:** weight matching lowers the barrier between independently trained nets, "
                "but it does not vanish")
    elif DOES_NOT_HOLD in found:
        head = "**The claim does not hold here:** at the widest nets the barrier is higher after weight matching"
    else:
        head = "**No detectable difference at this sample size:** weight matching does not detectably lower the barrier"
    parts = [f"{head} ({data}; {MEASURES[MAIN]}, {WIDTH_VARIANT} variant, 95 % t intervals over pairs of "
             "independently initialised nets)."]
    for row in widest.itertuples():
        t = tests[(int(row.depth), int(row.width))]
        e = error.loc[(error["depth"] == row.depth) & (error["width"] == row.width)].iloc[0]
        tl = test_loss.loc[(test_loss["depth"] == row.depth) & (test_loss["width"] == row.width)].iloc[0]
        text = (f"At {row.hidden} the barrier after alignment is {_interval(row._asdict(), 'after')} against "
                f"{_interval(row._asdict(), 'before')} before ({t.verdict}, p = {t.p_value:.2g} Holm, {t.n_seeds} "
                f"pair{'' if t.n_seeds == 1 else 's'}); test loss barrier {_interval(tl, 'after')} against "
                f"{_interval(tl, 'before')}, test error barrier {_interval(e, 'after', 100, ' %')} against "
                f"{_interval(e, 'before', 100, ' %')}")
        if int(row.depth) in trends and np.isfinite(trends[int(row.depth)].estimate):
            tr = trends[int(row.depth)]
            text += (f"; over widths {int(main.loc[main['depth'] == row.depth, 'width'].min())}–{int(row.width)} the "
                     f"aligned barrier falls with width: {tr.verdict} (Spearman ρ {tr.estimate:.2f}, {tr.low:.2f} to "
                     f"{tr.high:.2f}, {tr.test} p = {tr.p_value:.2g})")
        parts.append(text + ".")
    at512 = main.loc[main["width"] == 512]
    for row in at512.itertuples():
        if row.Index in widest.index:
            continue
        t = tests[(int(row.depth), 512)]
        parts.append(f"At {row.hidden}: {_interval(row._asdict(), 'after')} after against "
                     f"{_interval(row._asdict(), 'before')} before ({t.verdict}).")
    parts.append(_instability_text(cfg, inst, stable))
    if merge:
        parts.append("Merging (test error of the weight average, α = ½; \"seeds\" count pairs): "
                     + "; ".join(f"{a.sentence()}; {b.sentence()}" for a, b in merge.values()) + ".")
    return " ".join(p for p in parts if p)


def _instability_text(cfg, inst: pd.DataFrame, stable: dict) -> str:
    error = inst.loc[inst["measure"] == MEASURES[("test", "error")]] if not inst.empty else inst
    if error.empty:
        return "Instability: no pair of copies finished."
    tau = float(cfg.findings.threshold)
    curve = ", ".join(f"k={int(r.k)}: {100 * r.before:.1f} %" for r in error.itertuples())
    arch = f"{cfg.model.depth}×{cfg.model.width}"
    if stable["mean"] is None:
        when = f"it never stays below {100 * tau:g} %"
    else:
        when = f"its mean stays below {100 * tau:g} % from k = {stable['mean']}"
        when += (f" (the upper end of its 95 % interval from k = {stable['upper']})" if stable["upper"] is not None
                 else " (the upper end of its 95 % interval never does)")
    if stable["mean"] is None:
        head = "not stable at any k tried"
    else:
        head = "stable at k = 0" if stable["mean"] == 0 else f"stable from k = {stable['mean']}"
    return (f"Instability ({arch}, {int(error['n'].max())} initial weights, epochs of shared training k): {head}; "
            f"test error barrier between the two copies (frankle2020 variant, no alignment) {curve}: {when}.")


def _data_name(cfg) -> str:
    name = str(cfg.data.name)
    return {"mnist1d": "MNIST-1D", "digits": "digits (8×8)"}.get(name, name)


# ---------------------------------------------------------------------------- figures
def barrier_figure(width: pd.DataFrame) -> Figure:
    """Loss (top) and error (bottom) barrier against width, train and test, before (dashed) and after
    (solid) weight matching, mean and 95 % interval; a column per depth."""
    rows = width.loc[width["part"] == "width"]
    depths = sorted(rows["depth"].dropna().unique()) or [1]
    fig = Figure(figsize=(5 * len(depths), 7), layout="constrained")
    axes = np.array(fig.subplots(2, len(depths), squeeze=False))
    for j, depth in enumerate(depths):
        for i, metric in enumerate(("loss", "error")):
            ax = axes[i, j]
            for c, split in enumerate(SPLITS):
                part = rows.loc[(rows["depth"] == depth) & (rows["measure"] == MEASURES[(split, metric)])]
                part = part.sort_values("width")
                for when, style in (("before", "--"), ("after", "-")):
                    y = part[when].to_numpy(np.float64)
                    err = [np.nan_to_num(y - part[f"{when}_low"].to_numpy(np.float64)),
                           np.nan_to_num(part[f"{when}_high"].to_numpy(np.float64) - y)]
                    ax.errorbar(part["width"], y, yerr=err, fmt="o" + style, color=f"C{c}", capsize=3,
                                label=f"{split}, {when} alignment")
            ax.set_xscale("log", base=2)
            ax.set(xlabel="hidden width", ylabel=f"{metric} barrier ({WIDTH_VARIANT})", title=f"{int(depth)} hidden "
                   f"layer{'s' if depth > 1 else ''}: {metric}")
            ax.axhline(0, color="0.6", linewidth=0.8)
    axes[0, 0].legend(fontsize="small")
    return fig


def interpolation_figure(paths: dict, cost: str) -> Figure:
    """The loss along the segment between the first pair of each depth's smallest and widest nets,
    before and after weight matching, train and test."""
    chosen = []
    for depth in sorted({k[0] for k in paths}):
        widths = sorted(k[1] for k in paths if k[0] == depth)
        chosen += ([(depth, widths[0])] if len(widths) > 1 else []) + [(depth, widths[-1])]
    fig = Figure(figsize=(4.5 * max(1, len(chosen)), 3.8), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, max(1, len(chosen)), sharey=False))
    alphas = np.linspace(0.0, 1.0, N_ALPHAS)
    for ax, key in zip(axes, chosen):
        path = paths[key]
        for c, split in enumerate(SPLITS):
            ax.plot(alphas, path.before[split]["loss"], "--", color=f"C{c}", label=f"{split}, before")
            ax.plot(alphas, path.after[split]["loss"], "-", color=f"C{c}", label=f"{split}, after alignment")
        ax.set(xlabel="α  (θ = (1-α)θa + αθb)", ylabel=cost, title=f"{key[0]}×{key[1]}: seeds of pair 0")
    if chosen:
        axes[0].legend(fontsize="small")
    return fig


def instability_figure(inst: pd.DataFrame, threshold: float) -> Figure:
    """Test error barrier between the two copies against k, before and after alignment, mean and 95 % interval."""
    fig = Figure(figsize=(5.5, 3.8), layout="constrained")
    ax = fig.add_subplot()
    rows = inst.loc[inst["measure"] == MEASURES[("test", "error")]] if not inst.empty else inst
    if not rows.empty:
        for when, style in (("before", "o-"), ("after", "s--")):
            y = 100 * rows[when].to_numpy(np.float64)
            err = [np.nan_to_num(y - 100 * rows[f"{when}_low"].to_numpy(np.float64)),
                   np.nan_to_num(100 * rows[f"{when}_high"].to_numpy(np.float64) - y)]
            ax.errorbar(rows["k"], y, yerr=err, fmt=style, capsize=3,
                        label="copies as trained" if when == "before" else "after weight matching")
    ax.axhline(100 * threshold, color="C3", linewidth=0.8, linestyle=":", label=f"{100 * threshold:g} %")
    ax.set_xscale("symlog", linthresh=1)
    ax.set(xlabel="k: epochs trained together before the copies split", ylabel="test error barrier (%)",
           title="instability (Frankle et al. 2020)")
    ax.legend(fontsize="small")
    return fig


def merging_figure(width: pd.DataFrame) -> Figure:
    """Test error of the ends, the aligned midpoint and the unaligned midpoint against width."""
    rows = width.loc[width["part"] == "merging"]
    depths = sorted(rows["depth"].dropna().unique()) or [1]
    fig = Figure(figsize=(5 * len(depths), 3.8), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(depths)))
    for ax, depth in zip(axes, depths):
        part = rows.loc[rows["depth"] == depth].sort_values("width")
        ax.plot(part["width"], 100 * part["ends"], "o-", color="0.3", label="the ends (mean)")
        for when, label, c in (("after", "midpoint, aligned", "C0"), ("before", "midpoint, unaligned", "C3")):
            y = 100 * part[when].to_numpy(np.float64)
            err = [np.nan_to_num(y - 100 * part[f"{when}_low"].to_numpy(np.float64)),
                   np.nan_to_num(100 * part[f"{when}_high"].to_numpy(np.float64) - y)]
            ax.errorbar(part["width"], y, yerr=err, fmt="o-", color=c, capsize=3, label=label)
        ax.set_xscale("log", base=2)
        ax.set(xlabel="hidden width", ylabel="test error (%)", title=f"merging, {int(depth)} hidden layer(s)")
    axes[0].legend(fontsize="small")
    return fig


# ---------------------------------------------------------------------------- notes
def process_seconds() -> float | None:
    """Wall seconds since this process started (Linux /proc), None elsewhere."""
    try:
        with open("/proc/self/stat") as handle:
            start_ticks = float(handle.read().rsplit(")", 1)[1].split()[19])
        with open("/proc/uptime") as handle:
            uptime = float(handle.read().split()[0])
        return uptime - start_ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def _percent(x: float) -> str:
    return f"{100 * x:.1f} %" if np.isfinite(x) else "none (no pair)"


def notes(cfg, first, runs, pairs, inst, ks, seeds, loaded, seconds) -> list[str]:
    """How the numbers were made."""
    data = first.data
    n_train, n_test = len(data.y_train), len(data.y_test)
    widths = sorted(int(w) for w in runs[WIDTH].unique())
    depths = sorted(int(d) for d in runs[DEPTH].unique())
    total = process_seconds()
    moved = pairs["moved"].mean() if "moved" in pairs else np.nan
    moved_copies = inst["moved"].mean() if "moved" in inst else np.nan
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return [
        f"Data: {_data_name(cfg)}, {n_train} training rows, {n_test} test rows (validation split {len(data.y_val)} "
        f"rows, unused here); {cfg.optimizer.name} lr {cfg.optimizer.lr:g}, batch {cfg.train.batch_size}, "
        f"{cfg.train.epochs} epochs, {cfg.model.activation}, {cfg.train.dtype}, the last epoch's weights.",
        f"Width part: the sweep's {len(runs)} complete runs, widths {widths} × hidden layers {depths} × seeds "
        f"{sorted(int(s) for s in runs[SEED].unique())}; pairs of consecutive seeds (0,1), (2,3), ... at each "
        f"architecture ({len(pairs)} pairs). Barriers: the {WIDTH_VARIANT} variant of analysis.minima.barrier, "
        f"max over α of L(α) − ((1−α)L_a + αL_b), on {N_ALPHAS} points of α∈[0,1]; loss = the mean {first.cost}, "
        "error = the fraction misclassified; before: the two nets as trained; after: the second net's hidden units "
        "permuted by weight matching (analysis.alignment.align, scipy's linear_sum_assignment), which leaves its "
        "function unchanged. Intervals: 95 % Student t over the pairs; p: paired t-test of after − before "
        f"(the {MEASURES[MAIN]}'s Holm-corrected over the widths of each depth); trend: analysis.stats.trend. "
        f"\"Nearly vanishes\" (the verdict's head): at the widest net of every depth the upper end of the aligned "
        f"{MEASURES[MAIN]}'s interval is below {VANISH:g} × the unaligned mean.",
        f"Instability part: trained inside the findings (not in the sweep, which cannot resume from a checkpoint) "
        f"with nncore.fit: the config's net {cfg.model.depth}×{cfg.model.width}, initial weights of train.seed "
        f"{seeds}, k ∈ {ks} epochs of the seed's own data order (identical to a sweep run's first k epochs), then "
        f"two copies of net and optimizer state trained to epoch {cfg.train.epochs} with the data orders of "
        f"train.order_seed {ORDERS[0]} and {ORDERS[1]}. Barrier: {INSTABILITY_VARIANT} (max − mean of the ends, "
        f"Frankle et al.'s definition) of the test error; stable: below findings.threshold = "
        f"{100 * float(cfg.findings.threshold):g} %. One epoch is {-(-n_train // int(cfg.train.batch_size))} steps.",
        f"Weight matching moved {_percent(moved)} of the hidden units between independently initialised pairs and "
        f"{_percent(moved_copies)} between the instability copies (which share their initial weights: there the "
        "barriers before and after alignment coincide when it moves none).",
        "Merging: the midpoint α = ½ of each width pair's segment (the average of the two nets' weights, aligned "
        "or not) on the test set, against the mean test error of the two ends.",
        f"Time: findings {seconds:.0f} s ({loaded:.0f} s loading the runs, the rest in {cfg.sweep.n_workers} "
        f"processes)" + (f"; the whole command so far {total:.0f} s wall ({total / 60:.1f} min)" if total else "")
        + f"; load average {load:.1f} on {os.cpu_count()} cores when the findings ended (a shared machine inflates "
        "every time).",
    ]
