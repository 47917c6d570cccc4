"""The numbers behind the local_minima and hidden_layers findings, on synthetic inputs."""

import numpy as np
import pandas as pd
import pytest

from analysis.folklore import hidden_layers as H
from analysis.folklore import local_minima as L
from nncore import Network, encode_targets


# ---------------------------------------------------------------------------- hidden_layers
def test_probe_on_perfectly_separating_activations_scores_one():
    rng = np.random.default_rng(0)
    y_train, y_val = rng.integers(0, 4, 80), rng.integers(0, 4, 40)
    F_train, F_val = (np.eye(4)[y] + 0.05 * rng.standard_normal((y.size, 4)) for y in (y_train, y_val))
    assert H.probe_accuracy(F_train, y_train, F_val, y_val) == 1.0


def test_probe_on_noise_is_near_chance():
    rng = np.random.default_rng(1)
    y_train, y_val = rng.integers(0, 2, 200), rng.integers(0, 2, 400)
    accuracy = H.probe_accuracy(rng.standard_normal((200, 5)), y_train, rng.standard_normal((400, 5)), y_val)
    assert 0.35 < accuracy < 0.65


def test_class_means_average_each_class():
    A = np.array([[1.0, 0.0], [3.0, 2.0], [5.0, 4.0]])
    np.testing.assert_allclose(H.class_means(A, np.array([0, 0, 1])), [[2.0, 1.0], [5.0, 4.0]])


def test_selectivity_is_one_for_a_one_hot_unit_zero_for_a_flat_one_nan_for_a_dead_one():
    y = np.repeat(np.arange(5), 3)
    A = np.stack([(y == 2).astype(float), np.full(y.size, 0.7), np.zeros(y.size)], axis=1)
    index = H.selectivity(H.class_means(A, y))
    assert index[0] == pytest.approx(1.0) and index[1] == pytest.approx(0.0) and np.isnan(index[2])


def test_spatial_smoothness_is_high_for_ramps_and_near_zero_for_noise():
    side = 8
    ramp = np.add.outer(np.arange(side), np.arange(side)).ravel().astype(float)
    rng = np.random.default_rng(0)
    smooth = np.stack([ramp * s for s in rng.choice([-1.0, 1.0], 50)])
    mask = np.ones(side * side, bool)
    assert H.spatial_smoothness(smooth, side, mask) > 0.9
    assert abs(H.spatial_smoothness(rng.standard_normal((50, side * side)), side, mask)) < 0.05


def test_weight_mosaic_tiles_units_with_nan_gaps_and_masked_pixels():
    W = np.arange(5 * 4, dtype=float).reshape(5, 4) + 1.0
    mask = np.array([True, True, True, False])
    mosaic = H.weight_mosaic(W, 2, mask, columns=3)
    assert mosaic.shape == (2 * 3 - 1, 3 * 3 - 1)
    np.testing.assert_allclose(mosaic[:2, :2], [[1 / 3, 2 / 3], [1.0, np.nan]])
    assert np.isnan(mosaic[2]).all() and np.isnan(mosaic[:, 2]).all() and np.isnan(mosaic[3:, 6:]).all()


def _per_run(probe_trained, probe_initial, sel_trained, sel_initial, n_seeds=10, rng=0):
    """layer_stats-like rows over ``n_seeds`` seeds: the given means per layer (input, hidden 1,
    hidden 2, output) plus a little noise; the input's probe is the same for every seed."""
    rng = np.random.default_rng(rng)
    rows = []
    for seed in range(n_seeds):
        for state, probes, sels in (("trained", probe_trained, sel_trained), ("initial", probe_initial, sel_initial)):
            for i, (layer, units) in enumerate(zip(["input", "hidden 1", "hidden 2", "output"], [64, 64, 32, 10])):
                noise = 0.0 if layer == "input" else rng.normal(0, 0.005)
                rows.append({"layer": layer, "units": units, "state": state, "probe": probes[i] + noise,
                             "selectivity": sels[i] + (rng.normal(0, 0.01) if i else 0.0), "dead": 0.0,
                             "weight_change": np.nan if i == 0 else 0.5, "train.seed": seed})
    return pd.DataFrame(rows)


def _verdict(*means):
    per_run = _per_run(*means)
    return H.verdict(H.layer_table(per_run), None, H.judge(per_run))


def test_hidden_layers_verdict_follows_probes_and_selectivity():
    holds = _verdict([0.9, 0.95, 0.97, 0.97], [0.9, 0.9, 0.8, 0.5], [np.nan, 0.4, 0.6, 0.9], [np.nan, 0.3, 0.3, 0.3])
    assert holds.startswith("**The claim holds here:**") and "over 10 seeds" in holds
    flat = _verdict([0.9, 0.95, 0.97, 0.97], [0.9, 0.9, 0.8, 0.5], [np.nan, 0.6, 0.5, 0.9], [np.nan, 0.3, 0.3, 0.3])
    assert flat.startswith("**The claim holds only in part:**") and "hidden 2 − hidden 1: does not hold" in flat
    random_like = _verdict([0.9, 0.9, 0.8, 0.5], [0.9, 0.9, 0.8, 0.5], [np.nan, 0.3, 0.3, 0.3],
                           [np.nan, 0.3, 0.3, 0.3])
    assert random_like.startswith("**The claim does not hold here:**")
    assert "probe accuracy trained − random no detectable difference at this sample size" in random_like


def test_hidden_layers_tests_pair_by_seed_and_holm_correct():
    tests = H.judge(_per_run([0.9, 0.95, 0.97, 0.97], [0.9, 0.9, 0.8, 0.5], [np.nan, 0.4, 0.6, 0.9],
                             [np.nan, 0.3, 0.3, 0.3]))
    assert list(tests["probe"]) == ["hidden 1", "hidden 2", "output"]
    assert tests["probe"]["output"].estimate == pytest.approx(0.47, abs=0.01) and tests["probe"]["output"].n_seeds == 10
    assert all(v.correction == "Holm" for v in tests["probe"].values())
    assert tests["deeper"].estimate == pytest.approx(0.2, abs=0.02) and tests["deeper"].verdict == "holds"


# ---------------------------------------------------------------------------- local_minima
@pytest.fixture(scope="module")
def minima():
    """Three parameter vectors of a 2-3-2 tanh net: two from seed 0 (nearly equal), one from seed 1."""
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(12, 2)), rng.integers(0, 2, 12)
    net = Network([2, 3, 2], "tanh", "softmax", dtype="float64", rng=1)
    other = Network([2, 3, 2], "tanh", "softmax", dtype="float64", rng=2)
    thetas = [net.params.copy(), net.params + 1e-3, other.params.copy()]
    runs = pd.DataFrame({"trial": [0, 1, 2], L.SEED: [0, 0, 1], L.ORDER: [0, 1, 0], "label": ["a", "b", "c"],
                         "train_cost": [0.1, 0.1, 0.3], "val_cost": [0.2, 0.2, 0.4], "basin": [0, 0, 1],
                         "basin_aligned": [0, 0, 0]})
    return L.Minima(runs, thetas, [net.params.copy(), net.params.copy(), other.params.copy()], net, X,
                    encode_targets(net, y), y, "cross_entropy")


def test_error_barriers_are_symmetric_with_zero_diagonal_and_nan_for_regression(minima):
    errors = L.error_barriers(minima)
    assert errors.shape == (3, 3) and np.all(np.diag(errors) == 0) and np.allclose(errors, errors.T)
    assert np.all((errors >= 0) & (errors <= 1))
    no_labels = L.Minima(**{**minima.__dict__, "y": None})
    assert np.isnan(L.error_barriers(no_labels)).all()


def test_pairs_split_by_initial_weights_and_measure_distances(minima):
    barriers = np.array([[0.0, 0.001, 0.5], [0.001, 0.0, 0.4], [0.5, 0.4, 0.0]])
    aligned = np.array([[0.0, 0.001, 0.02], [0.001, 0.0, 0.01], [0.02, 0.01, 0.0]])
    pairs = L.pair_frame(minima, barriers, np.zeros((3, 3)), aligned)
    assert list(pairs["kind"]) == [L.SAME, L.OTHER, L.OTHER]
    assert list(pairs["barrier_aligned"]) == [0.001, 0.02, 0.01] and pairs["same_basin_aligned"].all()
    assert pairs.loc[0, "distance"] == pytest.approx(1e-3 * np.sqrt(minima.net.n_params))
    assert pairs.loc[0, "distance_at_init"] == 0.0 and pairs.loc[1, "d_val_cost"] == pytest.approx(0.2)
    table = L.pair_table(pairs).set_index("compared")
    assert table.loc[L.SAME, "pairs"] == 1 and table.loc[L.OTHER, "pairs"] == 2
    assert table.loc[L.OTHER, "barrier"] == pytest.approx(0.45) and table.loc[L.OTHER, "same_basin"] == 0.0
    assert table.loc[L.OTHER, "barrier_aligned"] == pytest.approx(0.015)
    assert table.loc[L.OTHER, "same_basin_aligned"] == 1.0
    (two_seeds,) = L.judge_alignment(pairs, minima.runs).values()
    assert two_seeds.n_seeds == 2 and two_seeds.verdict == "no detectable difference at this sample size"
    text = L.verdict(minima.runs.assign(train_accuracy=1.0, sharpness=1.0), L.pair_table(pairs))
    assert "Modulo permutation" in text and "2 basins become 1" in text and "0.015 on average after alignment" in text


def test_pair_table_keeps_a_kind_without_pairs(minima):
    pairs = L.pair_frame(minima, np.zeros((3, 3)), np.zeros((3, 3)), np.zeros((3, 3))).iloc[:1]
    table = L.pair_table(pairs).set_index("compared")
    assert table.loc[L.OTHER, "pairs"] == 0 and np.isnan(table.loc[L.OTHER, "barrier"])


def test_init_share_is_one_when_only_the_initial_weights_matter():
    runs = pd.DataFrame({L.SEED: [0, 0, 1, 1], "val_cost": [0.2, 0.2, 0.3, 0.3]})
    assert L.init_share(runs, "val_cost") == pytest.approx(1.0)
    runs["val_cost"] = [0.2, 0.3, 0.2, 0.3]
    assert L.init_share(runs, "val_cost") == pytest.approx(0.0)
    runs["val_cost"] = 0.25
    assert np.isnan(L.init_share(runs, "val_cost"))


def _runs(basin, train_cost, train_accuracy):
    return pd.DataFrame({L.SEED: [0, 0, 1, 1], L.ORDER: [0, 1, 0, 1], "basin": basin, "train_cost": train_cost,
                         "train_accuracy": train_accuracy, "val_cost": [0.2, 0.21, 0.3, 0.31],
                         "sharpness": [1.0, 1.1, 0.9, 1.2]})


def test_local_minima_verdict_follows_basins_and_depths(minima):
    table = L.pair_table(L.pair_frame(minima, np.zeros((3, 3)), np.zeros((3, 3)), np.zeros((3, 3))))
    one = _runs([0, 0, 0, 0], [0.01] * 4, [1.0] * 4)
    assert L.verdict(one, table).startswith("**The claim does not hold here:**")
    equal = _runs([0, 0, 1, 1], [0.01, 0.011, 0.012, 0.01], [1.0] * 4)
    text = L.verdict(equal, table)
    assert text.startswith("**The claim holds only in part:**") and "one per initial weights" in text
    worse = _runs([0, 0, 1, 1], [0.01, 0.011, 0.05, 0.05], [1.0, 1.0, 0.95, 0.95])
    assert L.verdict(worse, table).startswith("**The claim holds here:**")


def test_barriers_to_other_initial_weights_are_compared_with_those_between_orders_paired_by_seed():
    rng = np.random.default_rng(0)
    runs = pd.DataFrame({L.SEED: np.repeat(np.arange(10), 2), L.ORDER: np.tile([0, 1], 10)})
    rows = []
    for i in range(len(runs)):
        for j in range(i + 1, len(runs)):
            same = runs[L.SEED][i] == runs[L.SEED][j]
            rows.append({"a": i, "b": j, "kind": L.SAME if same else L.OTHER,
                         "barrier": (0.001 if same else 0.3) + rng.normal(0, 0.0005 if same else 0.05),
                         "error_barrier": np.nan})
    pairs = pd.DataFrame(rows)
    wide = L.per_seed_barriers(pairs, runs)
    assert list(wide.index) == list(range(10)) and wide["same"].lt(0.01).all() and wide["other"].gt(0.2).all()
    tests = L.judge(pairs, runs)
    assert set(tests) == {"barrier"} and tests["barrier"].verdict == "holds" and tests["barrier"].n_seeds == 10
    aligned = pairs.assign(barrier_aligned=np.where(pairs["kind"] == L.OTHER, 0.02, pairs["barrier"]))
    (alignment,) = L.judge_alignment(aligned, runs).values()
    assert alignment.verdict == "holds" and alignment.n_seeds == 10
    assert alignment.estimate == pytest.approx(-0.28, abs=0.03)
    assert tests["barrier"].estimate == pytest.approx(0.3, abs=0.03)
    assert "barrier: holds: mean difference" in L.verdict(runs.assign(basin=runs[L.SEED], train_cost=0.01,
                                                                      val_cost=np.linspace(0.1, 0.12, 20),
                                                                      train_accuracy=1.0,
                                                                      sharpness=np.linspace(0.2, 0.4, 20)),
                                                          L.pair_table(pairs.assign(same_basin=False, distance=1.0,
                                                                                    barrier_aligned=0.0,
                                                                                    same_basin_aligned=True,
                                                                                    distance_at_init=1.0,
                                                                                    d_train_cost=0.0,
                                                                                    d_val_cost=0.0)), tests)
