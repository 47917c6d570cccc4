"""Findings of ``experiment=hidden_layers``: what the layers of a trained network represent, each
against the same network at its initial (random) weights as the control.

Per layer (the input, every hidden layer, the output): a linear probe (logistic regression fitted on
the training split's activations, accuracy on the validation split), the mean class selectivity of
its units, the fraction of dead units and how far its incoming weights moved from their start.
Figures: the first layer's weights as images (trained, initial, the change; image data only), the
per-class mean activation of every hidden unit, the probe accuracy per layer.
"""

import math
from dataclasses import replace

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from nncore import Network

from ..stats import DOES_NOT_HOLD, HOLDS, holm, paired
from .common import Findings, StudyData, verdict_list

CLAIM = "Do intermediate layers build up in an explainable way?"
SEED = "train.seed"
STATES = ("trained", "initial")
PROBE_MAX_ITER = 2000
IMAGE_SIDES = {"digits": 8}  # data sets whose inputs are square images: their side in pixels


def findings(study: StudyData) -> Findings:
    """Per layer, mean ± std over the seeds: probe accuracy and unit selectivity, trained against
    initial weights; the best run's first-layer weights and class-mean activations."""
    runs = study.complete.sort_values(SEED, kind="stable").reset_index(drop=True)
    artifacts = [study.artifacts(t) for t in runs["trial"]]
    data = artifacts[0].data
    if data.task != "classification":
        return Findings("hidden_layers", CLAIM, "Probes and class selectivity need a classification data set.",
                        pd.DataFrame(columns=["layer"]), notes=notes(study, artifacts[0].final, runs))
    input_probe = probe_accuracy(data.X_train, data.y_train, data.X_val, data.y_val)
    per_run = pd.concat([layer_stats(a, input_probe).assign(**{SEED: seed})
                         for a, seed in zip(artifacts, runs[SEED])], ignore_index=True)
    table = layer_table(per_run)
    tests = judge(per_run)
    table = table.merge(tests_table(tests), on="layer", how="left")
    shown = artifacts[int(runs["val_cost"].idxmin())]
    figures = {"probes": probe_figure(table), "class_means": class_means_figure(shown)}
    filters = None
    side = IMAGE_SIDES.get(str(study.cfg.data.name), 0)
    if side:
        filters = pd.DataFrame([filter_smoothness(a, data.X_train, side) for a in artifacts]).mean()
        figures = {"first_layer": first_layer_figure(shown, data.X_train, side), **figures}
    return Findings("hidden_layers", CLAIM, verdict(table, filters, tests), table, figures,
                    notes(study, shown.final, runs, shown))


def judge(per_run: pd.DataFrame) -> dict:
    """Paired by seed (analysis.stats), from :func:`layer_stats` rows with ``train.seed``:
    ``"probe"``: each layer's trained − initial probe accuracy (claim: higher), Holm over the layers;
    ``"over_input"``: each layer's trained probe − the input's (claim: higher), Holm; ``"selective"``:
    each hidden layer's trained − initial selectivity (claim: higher), Holm; ``"deeper"``: the last
    hidden layer's trained selectivity − the first's (claim: higher; None with one hidden layer)."""
    def wide(state: str, column: str) -> pd.DataFrame:
        rows = per_run.loc[per_run["state"] == state]
        return rows.pivot(index=SEED, columns="layer", values=column)

    layers = [name for name in dict.fromkeys(per_run["layer"]) if name != "input"]
    hidden = [name for name in layers if name.startswith("hidden")]
    trained, initial = wide("trained", "probe"), wide("initial", "probe")
    sel_trained, sel_initial = wide("trained", "selectivity"), wide("initial", "selectivity")

    def family(pairs: dict) -> dict:
        raw = {k: paired(a, b, "higher", label=k) for k, (a, b) in pairs.items()}
        adjusted = holm([v.p_value for v in raw.values()])
        return {k: replace(v, p_value=float(p), p_raw=v.p_value, correction="Holm" if len(raw) > 1 else None)
                for (k, v), p in zip(raw.items(), adjusted)}

    found = {"probe": family({k: (trained[k], initial[k]) for k in layers}),
             "over_input": family({k: (trained[k], trained["input"]) for k in layers}),
             "selective": family({k: (sel_trained[k], sel_initial[k]) for k in hidden}),
             "deeper": None}
    if len(hidden) > 1:
        found["deeper"] = paired(sel_trained[hidden[-1]], sel_trained[hidden[0]], "higher",
                                 label=f"{hidden[-1]} − {hidden[0]}")
    return found


def tests_table(tests: dict) -> pd.DataFrame:
    """One row per layer: the paired differences of :func:`judge` with their intervals and Holm p."""
    rows = {}
    for key in ("probe", "over_input", "selective"):
        for layer, v in tests[key].items():
            row = rows.setdefault(layer, {"layer": layer})
            row.update({f"{key}_diff": v.estimate, f"{key}_diff_low": v.low, f"{key}_diff_high": v.high,
                        f"{key}_p_holm": v.p_value})
    return pd.DataFrame(list(rows.values())) if rows else pd.DataFrame(columns=["layer"])


# ---------------------------------------------------------------------------- numbers
def probe_accuracy(F_train: np.ndarray, y_train: np.ndarray, F_val: np.ndarray, y_val: np.ndarray) -> float:
    """Validation accuracy of a linear probe: standardised features ``(N, d)``, multinomial logistic
    regression (L2, C=1) fitted on the training rows."""
    probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=PROBE_MAX_ITER))
    return float(probe.fit(F_train, y_train).score(F_val, y_val))


def class_means(A: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Mean activation of each unit per class ``(n_classes, units)``; ``A`` ``(N, units)``, ``y`` ``(N,)``
    labels 0..n_classes-1."""
    counts = np.bincount(y)
    sums = np.zeros((counts.size, A.shape[1]))
    np.add.at(sums, y, A)
    return sums / np.maximum(counts, 1)[:, None]


def selectivity(means: np.ndarray) -> np.ndarray:
    """Class selectivity of each unit ``(units,)`` from its class means ``(n_classes, units)``:
    ``(top - rest) / (top + rest)`` with top the largest class mean and rest the mean of the others
    (Morcos et al. 2018). For non-negative activations (ReLU, sigmoid, softmax): 0 when every class
    drives the unit alike, 1 when only one does; NaN for a unit that never fires."""
    top = means.max(axis=0)
    rest = (means.sum(axis=0) - top) / (means.shape[0] - 1)
    total = top + rest
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, (top - rest) / total, np.nan)


def layer_stats(art, input_probe: float) -> pd.DataFrame:
    """One run's rows ``layer, units, state, probe, selectivity, dead, weight_change`` for the input
    and every layer of the trained and the initial network (activations of the training and the
    validation split, dropout off)."""
    data = art.data
    rows = [{"layer": "input", "units": data.X_train.shape[1], "state": state, "probe": input_probe}
            for state in STATES]
    names = [f"hidden {i + 1}" for i in range(art.final.n_layers - 1)] + ["output"]
    for state, net in zip(STATES, (art.final, art.initial)):
        train, val = net.layer_activations(data.X_train), net.layer_activations(data.X_val)
        for name, A_train, A_val, W, W0 in zip(names, train, val, art.final.weights, art.initial.weights):
            rows.append({"layer": name, "units": A_val.shape[1], "state": state,
                         "probe": probe_accuracy(A_train, data.y_train, A_val, data.y_val),
                         "selectivity": np.nanmean(selectivity(class_means(A_val, data.y_val))),
                         "dead": float(np.mean(A_val.max(axis=0) <= 0)),
                         "weight_change": float(np.linalg.norm(W - W0) / np.linalg.norm(W0))})
    return pd.DataFrame(rows)


def layer_table(per_run: pd.DataFrame) -> pd.DataFrame:
    """One row per layer, in network order: ``layer``, ``units``, mean and std (ddof=1) over the runs
    of the probe accuracy and of the selectivity for the trained and the initial network, the trained
    network's fraction of dead units and relative weight change ‖W − W₀‖/‖W₀‖ of the weights into
    the layer."""
    order = list(dict.fromkeys(per_run["layer"]))
    stats = per_run.groupby(["layer", "state"], sort=False).agg(
        probe=("probe", "mean"), probe_std=("probe", "std"), selectivity=("selectivity", "mean"),
        selectivity_std=("selectivity", "std"), dead=("dead", "mean"), weight_change=("weight_change", "mean"))
    wide = stats.unstack("state")
    table = pd.DataFrame({"layer": order, "units": per_run.groupby("layer")["units"].first()[order].to_numpy()})
    for column in ("probe", "selectivity"):
        for state in STATES:
            table[f"{column}_{state}"] = wide[(column, state)][order].to_numpy()
            table[f"{column}_{state}_std"] = wide[(f"{column}_std", state)][order].to_numpy()
    table["dead_trained"] = wide[("dead", "trained")][order].to_numpy()
    table["weight_change"] = wide[("weight_change", "trained")][order].to_numpy()
    return table


def spatial_smoothness(W: np.ndarray, side: int, mask: np.ndarray) -> float:
    """Correlation between the weights of horizontally or vertically neighbouring pixels, over all rows
    of ``W`` ``(units, side²)`` (pixels where ``mask`` ``(side²,)`` is False left out): about 0 for
    random weights, towards 1 for smooth blob- and stroke-like filters."""
    tiles = np.where(mask, W, np.nan).reshape(-1, side, side)
    a = np.concatenate([tiles[:, :, :-1].ravel(), tiles[:, :-1, :].ravel()])
    b = np.concatenate([tiles[:, :, 1:].ravel(), tiles[:, 1:, :].ravel()])
    both = np.isfinite(a) & np.isfinite(b)
    return float(np.corrcoef(a[both], b[both])[0, 1])


def filter_smoothness(art, X_train: np.ndarray, side: int) -> dict:
    """:func:`spatial_smoothness` of one run's first-layer weights: ``trained`` (W), ``initial`` (W₀)
    and ``change`` (W − W₀, what training wrote); pixels constant in ``X_train`` left out."""
    mask = X_train.std(axis=0) > 0
    W, W0 = (np.asarray(net.weights[0], np.float64) for net in (art.final, art.initial))
    return {"trained": spatial_smoothness(W, side, mask), "initial": spatial_smoothness(W0, side, mask),
            "change": spatial_smoothness(W - W0, side, mask)}


# ---------------------------------------------------------------------------- figures
def weight_mosaic(W: np.ndarray, side: int, mask: np.ndarray, columns: int) -> np.ndarray:
    """The rows of ``W`` ``(units, side²)`` as ``side × side`` tiles on a grid ``columns`` wide, each
    scaled to its largest |weight|; pixels where ``mask`` ``(side²,)`` is False and the gaps are NaN."""
    rows = math.ceil(W.shape[0] / columns)
    mosaic = np.full((rows * (side + 1) - 1, columns * (side + 1) - 1), np.nan)
    masked = np.where(mask, W, np.nan)
    scaled = masked / (np.nanmax(np.abs(masked), axis=1, keepdims=True) + 1e-12)
    for unit, tile in enumerate(scaled.reshape(-1, side, side)):
        r, c = divmod(unit, columns)
        mosaic[r * (side + 1):r * (side + 1) + side, c * (side + 1):c * (side + 1) + side] = tile
    return mosaic


def first_layer_figure(art, X_train: np.ndarray, side: int) -> Figure:
    """Every first-layer unit's incoming weights as an image: trained (W), initial (W₀) and the change
    W − W₀; pixels constant in the training set (their weights never change) blank."""
    mask = X_train.std(axis=0) > 0
    columns = math.ceil(math.sqrt(art.final.sizes[1]))
    W, W0 = (np.asarray(net.weights[0], np.float64) for net in (art.final, art.initial))
    fig = Figure(figsize=(15, 5.4), layout="constrained")
    axes = fig.subplots(1, 3)
    for ax, title, weights in zip(axes, ("trained W", "initial W₀", "change W − W₀"), (W, W0, W - W0)):
        image = ax.imshow(weight_mosaic(weights, side, mask, columns), cmap="RdBu_r", vmin=-1, vmax=1)
        ax.set_title(f"{title}, {art.final.sizes[1]} units")
        ax.axis("off")
    fig.colorbar(image, ax=axes, shrink=0.7, label="weight / unit's max |weight|")
    fig.suptitle(f"first layer, seed {int(art.cfg.train.seed)} (its best run)")
    return fig


def class_means_figure(art) -> Figure:
    """Per hidden layer, the mean activation of every unit per class on the validation split, each
    unit scaled to its largest class mean and units sorted by preferred class; trained and initial."""
    X, y = art.data.X_val, art.data.y_val
    n_hidden = art.final.n_layers - 1
    fig = Figure(figsize=(4.5 * n_hidden + 1, 6), layout="constrained")
    axes = np.atleast_2d(fig.subplots(2, n_hidden, squeeze=False))
    for row, state, net in zip(axes, STATES, (art.final, art.initial)):
        for layer, (ax, A) in enumerate(zip(row, net.layer_activations(X)[:-1])):
            means = class_means(A, y)
            order = np.lexsort((-selectivity(means), means.argmax(axis=0)))
            top = means.max(axis=0)
            scaled = np.divide(means, top, out=np.zeros_like(means), where=top > 0)[:, order]
            image = ax.imshow(scaled, aspect="auto", cmap="viridis", vmin=0, vmax=1, interpolation="nearest")
            ax.set_title(f"{state}, hidden {layer + 1}")
            ax.set_xlabel("unit (sorted by preferred class)")
            ax.set_ylabel("class")
            ax.set_yticks(range(means.shape[0]))
    fig.colorbar(image, ax=axes, shrink=0.7, label="class mean / unit's largest class mean")
    return fig


def probe_figure(table: pd.DataFrame) -> Figure:
    """Probe accuracy per layer (mean ± std over the seeds), trained and initial."""
    ax = Figure(figsize=(5.5, 3.8), layout="constrained").add_subplot()
    x = np.arange(len(table))
    for state, marker in zip(STATES, ("o", "s")):
        ax.errorbar(x, table[f"probe_{state}"], yerr=table[f"probe_{state}_std"].fillna(0.0), marker=marker,
                    capsize=3, label=f"{state} weights")
    ax.set_xticks(x, [f"{layer}\n({units})" for layer, units in zip(table["layer"], table["units"])])
    ax.set_ylabel("linear probe accuracy (validation)")
    ax.legend()
    return ax.figure


# ---------------------------------------------------------------------------- text
def verdict(table: pd.DataFrame, filters: pd.Series | None = None, tests: dict | None = None) -> str:
    """Whether training keeps the class linearly decodable where random layers lose it (trained −
    initial probe accuracy of the last hidden layer and the output, paired by seed, Holm), and whether
    its hidden units grow more class-selective from the first hidden layer to the last and are more
    selective than at the random initial weights (paired, Holm); ``filters``: the mean
    :func:`filter_smoothness` over the runs, when the input is an image."""
    rows = table.set_index("layer")
    hidden = [name for name in rows.index if name.startswith("hidden")]
    probe, selective, deeper = tests["probe"], tests["selective"], tests["deeper"]
    learned = all(probe[name].verdict == HOLDS for name in (hidden[-1], "output"))
    rising = deeper is not None and deeper.verdict == HOLDS
    above = all(selective[h].verdict == HOLDS for h in hidden)
    if learned and rising and above:
        head = ("**The claim holds here:** the hidden units grow more class-selective layer by layer, more than at "
                "the random initial weights, and the class stays linearly decodable where random layers lose it.")
    elif learned:
        falling = deeper is not None and deeper.verdict == DOES_NOT_HOLD
        head = ("**The claim holds only in part:** training keeps the class linearly decodable through the layers "
                "where random layers lose it, but the hidden units "
                + ("grow detectably less class-selective with depth" if falling else
                   "do not grow detectably more class-selective with depth")
                + (" and are no more selective than at the random start." if not above else "."))
    elif rising and above:
        head = ("**The claim holds only in part:** the hidden units grow more class-selective with depth, but the "
                "class is no better decodable from the deeper layers than from random ones.")
    else:
        head = "**The claim does not hold here:** the trained layers are no more class-structured than random ones."
    n = next(iter(probe.values())).n_seeds
    tested = (f"Paired by seed over {n} seeds, mean difference (95 % t interval, p Holm over the layers): probe "
              f"accuracy trained − random {verdict_list(probe.values(), '{:.3f}')}; trained − the inputs' "
              f"{verdict_list(tests['over_input'].values(), '{:.3f}')}; hidden-unit selectivity trained − random "
              f"{verdict_list(selective.values(), '{:.3f}')}"
              + (f"; deeper hidden layer more selective than the first: {deeper.sentence()}" if deeper else "") + ".")
    return " ".join([head, _probes(rows, hidden), _selectivity(rows, hidden), tested, _first_layer(rows, filters)])


def _probes(rows: pd.DataFrame, hidden: list) -> str:
    layers = [*hidden, "output"]
    text = "Linear probe accuracy: " + ", ".join(
        f"{name} {rows.loc[name, 'probe_trained']:.1%} (random {rows.loc[name, 'probe_initial']:.1%})"
        for name in layers)
    pixels = rows.loc["input", "probe_trained"]
    text += f", against {pixels:.1%} from the inputs themselves"
    return text + "."


def _selectivity(rows: pd.DataFrame, hidden: list) -> str:
    return "Mean unit selectivity: " + ", ".join(
        f"{name} {rows.loc[name, 'selectivity_trained']:.2f} (random {rows.loc[name, 'selectivity_initial']:.2f})"
        for name in [*hidden, "output"]) + " (the output's is what its one-hot target asks for)."


def _first_layer(rows: pd.DataFrame, filters: pd.Series | None) -> str:
    text = (f"First layer: training moved its weights by {rows.loc['hidden 1', 'weight_change']:.0%} of their "
            "initial norm")
    if filters is None:
        return text + "."
    text += (f"; the correlation of neighbouring pixels' weights is {filters['trained']:.2f} trained, "
             f"{filters['initial']:.2f} initial and {filters['change']:.2f} for the change W − W₀")
    if filters["trained"] < filters["change"] / 2:
        text += (": what training wrote is smoother, but it is laid over a random start that it never erases, so "
                 "the trained filters look mostly like noise (first_layer.png)")
    return text + "."


def notes(study: StudyData, net: Network, runs: pd.DataFrame, shown=None) -> list[str]:
    """How the numbers were made."""
    cfg = study.cfg
    text = [f"{cfg.data.name}, layers {list(net.sizes)} {net.activation}, {cfg.optimizer.name} lr "
            f"{cfg.optimizer.lr:g}, batch {cfg.train.batch_size}, {cfg.train.epochs} epochs; mean ± std over "
            f"{len(runs)} seeds (complete runs of {len(study.trials)}); initial: the same network at the weights "
            "it started from (the random control).",
            "probe: standardised activations, multinomial logistic regression (scikit-learn, L2, C=1) fitted on "
            "the training split, accuracy on the validation split; input: the (scaled) inputs.",
            "selectivity: per unit (top − rest)/(top + rest) of its class-mean activations on the validation "
            "split (top: the largest, rest: the mean of the others; Morcos et al. 2018), averaged over the units "
            "that fire; dead_trained: the fraction of units that never fire on the validation split; "
            "weight_change: ‖W − W₀‖/‖W₀‖ of the weights into the layer."]
    if str(cfg.data.name) in IMAGE_SIDES:
        text.append("first-layer smoothness: correlation between the weights of horizontally or vertically "
                    "neighbouring pixels over all units (pixels constant in the training set left out), mean over "
                    "the seeds.")
    if shown is not None:
        text.append(f"figures: the run with the lowest final validation cost (seed {int(shown.cfg.train.seed)}).")
    return text
