"""The logic of analysis/folklore/mode_connectivity.py on synthetic inputs: pairing seeds, the k grid,
stability, intervals, paths and barriers before and after alignment, the instability runs (k = 0 is the
sweep's own order_seed run), and the tables and verdicts the findings build from them."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hydra import compose, initialize_config_dir

import nncore
from analysis.alignment import permute
from analysis.folklore import mode_connectivity as mc
from experiments import config as C
from experiments.data import load_dataset
from experiments.trainer import train_config

ROOT = Path(__file__).resolve().parents[1]


def test_pairs_of_takes_consecutive_disjoint_seeds_and_drops_an_odd_one():
    assert mc.pairs_of([3, 0, 1, 2, 5]) == [(0, 1), (2, 3)]
    assert mc.pairs_of([7]) == []


def test_the_k_grid_keeps_the_epochs_a_copy_can_still_train():
    assert mc.k_grid(30) == [0, 1, 2, 5, 10, 20]
    assert mc.k_grid(2) == [0, 1]


def test_stable_from_is_the_k_after_which_every_value_stays_below():
    ks = [0, 1, 2, 5]
    assert mc.stable_from(ks, [0.05, 0.01, 0.03, 0.01], 0.02) == 5
    assert mc.stable_from(ks, [0.01, 0.01, 0.01, 0.01], 0.02) == 0
    assert mc.stable_from(ks, [0.01, 0.01, 0.01, 0.03], 0.02) is None
    assert mc.stable_from(ks, [0.01, np.nan, 0.01, 0.01], 0.02) == 2  # NaN is not below


def _toy(seed=0, sizes=(5, 12, 9, 3)):
    rng = np.random.default_rng(seed)
    net = nncore.Network(list(sizes), "relu", "softmax", dtype="float64", rng=rng)
    X = rng.standard_normal((60, sizes[0]))
    y = rng.integers(0, sizes[-1], 60)
    Xc, Y = nncore.check_inputs(net, X, y)
    return net, {"train": (Xc, Y, y), "test": (Xc[:30], Y[:30], y[:30])}


def test_a_permuted_copy_is_far_before_alignment_and_the_same_net_after():
    net, data = _toy()
    rng = np.random.default_rng(1)
    shuffled = permute(net, [rng.permutation(12), rng.permutation(9)])
    path = mc.compare(net, shuffled, data, "cross_entropy")
    values = mc.barriers(path, mc.WIDTH_VARIANT)
    assert path.moved > 0.5
    for split in mc.SPLITS:
        ends = [net.loss(*data[split][:2], "cross_entropy")] * 2
        assert path.before[split]["loss"][[0, -1]] == pytest.approx(ends)  # the ends: the same function
        assert np.allclose(path.after[split]["loss"], ends[0], rtol=0, atol=1e-12)  # aligned: net itself all along
        assert values[(split, "loss", "after")] == pytest.approx(0, abs=1e-12)
        assert values[(split, "error", "after")] == pytest.approx(0, abs=1e-12)
    assert not np.allclose(path.before["train"]["loss"], path.before["train"]["loss"][0])  # the unaligned line
    # passes through other nets


def test_path_metrics_gives_the_loss_and_error_of_each_point():
    net, data = _toy()
    other, _ = _toy(seed=3)
    found = mc.path_metrics(net, net.params, other.params, data, "cross_entropy", [0.0, 0.5, 1.0])
    X, Y, y = data["test"]
    assert found["test"]["loss"][0] == pytest.approx(net.loss(X, Y, "cross_entropy"))
    assert found["test"]["error"][2] == pytest.approx(np.mean(other.predict(X) != y))
    middle = net.copy()
    middle.params[...] = (net.params + other.params) / 2
    assert found["test"]["loss"][1] == pytest.approx(middle.loss(X, Y, "cross_entropy"))


def _cfg(*overrides):
    C.register_configs()
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        return compose(config_name="config", overrides=["experiment=mode_connectivity", "data=moons",
                                                        "data.n_samples=200", "model.width=8", "train.epochs=3",
                                                        "train.batch_size=32", *overrides])


def test_instability_copies_at_k0_are_the_sweeps_order_seed_runs_and_later_ones_share_a_trunk():
    cfg = _cfg()
    data = load_dataset(cfg.data, 0)
    found = dict(mc.instability_ends(cfg, data, seed=4, ks=[0, 2]))
    for order, net in zip(mc.ORDERS, found[0]):
        replayed = _cfg("train.seed=4", f"+train.order_seed={order}")
        assert np.array_equal(net.params, train_config(replayed, data).net.params)
    assert not np.array_equal(found[0][0].params, found[0][1].params)  # two orders
    assert not np.array_equal(found[2][0].params, found[0][0].params)  # two epochs of the seed's own order first
    rows = mc.instability_runs(cfg, data, 4, [0, 2], mc._splits_of(data, found[0][0]), "cross_entropy")
    assert [r["k"] for r in rows] == [0, 2] and all(np.isfinite(r["values"][("test", "error", "before")])
                                                    for r in rows)


def _pair_rows(before, after, depth=2, width=64):
    rows = []
    for i, (b, a) in enumerate(zip(before, after)):
        values = {}
        for split in mc.SPLITS:
            for metric in ("loss", "error"):
                values.update({(split, metric, "before"): b, (split, metric, "after"): a,
                               (split, metric, "ends"): 0.1, (split, metric, "mid_before"): 0.1 + b,
                               (split, metric, "mid_after"): 0.1 + a})
        rows.append({"depth": depth, "width": width, "pair": i, "seeds": (2 * i, 2 * i + 1), "values": values})
    return pd.DataFrame(rows)


def test_the_width_table_pairs_after_with_before_and_the_verdict_names_the_interval():
    before, after = [1.0, 1.2, 0.9, 1.1, 1.0], [0.02, 0.05, 0.01, 0.03, 0.04]
    pairs = pd.concat([_pair_rows(before, after, width=64), _pair_rows(before, np.array(after) * 3, width=16)],
                      ignore_index=True)
    table, tests = mc.width_part(pairs)
    row = table.loc[(table["width"] == 64) & (table["measure"] == mc.MEASURES[mc.MAIN])].iloc[0]
    assert (row["part"], row["hidden"], row["n"]) == ("width", "2×64", 5)
    assert row["before"] == pytest.approx(np.mean(before)) and row["after"] == pytest.approx(np.mean(after))
    assert row["after_low"] < row["after"] < row["after_high"] and row["verdict"] == "holds"
    assert tests[(2, 64)].correction == "Holm" and tests[(2, 64)].verdict == "holds"
    merge = table.loc[(table["part"] == "merging") & (table["width"] == 64)].iloc[0]
    assert merge["ends"] == pytest.approx(0.1) and merge["after"] == pytest.approx(0.1 + np.mean(after))
    inst = pd.DataFrame([{"seed": s, "k": k, "values": {("test", "error", "before"): v, ("test", "error", "after"): v,
                                                        ("test", "error", "ends"): 0.2, ("train", "loss", "before"): v,
                                                        ("train", "loss", "after"): v, ("train", "loss", "ends"): 1}}
                         for s in range(3) for k, v in ((0, 0.1 + s / 100), (1, 0.01 + s / 1000), (5, 0.005))])
    inst_table, stable = mc.instability_part(inst, 0.02)
    assert stable == {"mean": 1, "upper": 1}
    cfg = _cfg()
    text = mc.verdict(cfg, table, tests, mc.width_trends(pairs), inst_table, stable, mc.merging_tests(pairs))
    assert text.startswith("**The claim holds for width:**") and "moons" in text
    assert "At 2×64 the barrier after alignment is 0.03 (" in text and "stable from k = 1" in text
