"""The verdict logic of the folklore findings on synthetic frames with known effects (fast: no
training): steps to τ interpolated between epochs, the tune/report seed split, the tuning width and
its bootstrap, and the optimizers and dropout verdicts built on analysis.stats."""

import numpy as np
import pandas as pd
import pytest
from omegaconf import OmegaConf

from analysis.folklore import activations, dropout, minibatch_vs_fullbatch, optimizers
from analysis.folklore.common import StudyData, epochs_to_reach, split_seeds, steps_to_reach
from analysis.stats import DOES_NOT_HOLD, HOLDS, NO_DIFFERENCE


def _curve(trial, values, metric="train_cost"):
    return [(trial, e + 1, metric, v) for e, v in enumerate(values)]


def test_epochs_to_reach_interpolates_in_log_cost_and_censors():
    curves = pd.DataFrame(_curve(0, [1.0, 0.1, 0.01]) + _curve(1, [0.01, 0.001]) + _curve(2, [1.0, 0.5]),
                          columns=["trial", "epoch", "metric", "value"])
    found = epochs_to_reach(curves, 0.1 ** 1.5).set_index("trial")  # τ halfway (in log) from epoch 2 to 3
    assert found.loc[0, "epoch"] == pytest.approx(2.5) and found.loc[0, "reached"]
    assert found.loc[1, "epoch"] == 1.0  # below τ after its first epoch: 1 (an upper bound)
    assert not found.loc[2, "reached"] and np.isnan(found.loc[2, "epoch"]) and found.loc[2, "last_epoch"] == 2
    trials = pd.DataFrame({"trial": [0, 1, 2]})
    steps = steps_to_reach(curves, trials, 0.1 ** 1.5, n=100, batch_size=32).set_index("trial")
    assert steps.loc[0, "steps"] == pytest.approx(2.5 * 4) and steps.loc[0, "samples"] == pytest.approx(250)
    assert np.isnan(steps.loc[2, "steps"]) and steps.loc[2, "steps_or_budget"] == 8  # censored at its budget


def test_split_seeds_tunes_on_one_half_and_reports_on_the_other():
    assert split_seeds([3, 0, 1, 2, 1]) == ([0, 1], [2, 3])
    assert split_seeds([7]) == ([7], [7])


def test_band_width_is_the_contiguous_near_optimal_band_in_decades():
    grid = np.array([0.01, 0.1, 1.0, 10.0])
    means = np.array([[0.30, 0.11, 0.10, 0.12],    # 0.1..10 within 25 % (≤ 0.125), the limit crossed below 0.1
                      [0.11, 0.50, 0.10, np.inf],  # the band stops at the gap, and at a diverged neighbour
                      [np.inf] * 4])
    left = np.log(0.125 / 0.11) / np.log(0.30 / 0.11)  # decades below 0.1 where the log-log line crosses 0.125
    np.testing.assert_allclose(optimizers.band_width(means, grid),
                               [2.0 + left, np.log(1.25) / np.log(5.0), np.nan])


def _optimizer_study(n_seeds=12, rng=0):
    """sgd and two adaptive optimizers over 4 rates: "fast" reaches τ in half SGD's epochs at every
    rate and is flat over the rates; "same" is SGD again plus noise."""
    rng = np.random.default_rng(rng)
    grid = [0.001, 0.01, 0.1, 1.0]
    trials, curves, t = [], [], 0
    best = {"sgd": [0.5, 0.2, 0.1, 0.3], "same": [0.5, 0.2, 0.1, 0.3], "fast": [0.11, 0.105, 0.1, 0.11]}
    for name in ("sgd", "same", "fast"):
        for i, lr in enumerate(grid):
            for seed in range(n_seeds):
                rate = (1.0 if name != "fast" else 2.0) * (0.3 + 0.2 * i) * np.exp(rng.normal(0, 0.05))
                train = np.exp(-rate * np.arange(1, 21))
                cost = best[name][i] + rng.normal(0, 0.002)
                trials.append((t, "COMPLETE", name, lr, seed, cost, cost, train[-1], 0.9, 100))
                curves += _curve(t, train) + _curve(t, np.full(20, cost), "val_cost") + _curve(t, np.full(20, 0.1),
                                                                                                 "time")
                t += 1
    trials = pd.DataFrame(trials, columns=["trial", "state", "optimizer", "optimizer.lr", "train.seed", "val_cost",
                                           "best_val_cost", "train_cost", "val_accuracy", "n_params"])
    cfg = OmegaConf.create({"findings": {"threshold": 0.2, "train_threshold": 0.02, "seeds": n_seeds},
                            "model": {"hidden": [8]}, "train": {"batch_size": 10, "epochs": 20}})
    return StudyData(cfg, None, trials, pd.DataFrame(curves, columns=["trial", "epoch", "metric", "value"]))


def test_the_optimizer_verdict_finds_a_true_speed_up_and_calls_a_copy_of_sgd_no_difference(monkeypatch):
    monkeypatch.setattr(optimizers, "n_train", lambda study: 100)
    found = optimizers.findings(_optimizer_study())
    table = found.table.set_index("optimizer")
    assert table.loc["fast", "seeds"] == 6 and table.loc["fast", "steps_tuned_diff"] < 0
    assert table.loc["fast", "steps_tuned_p_holm"] < 0.05 and table.loc["same", "steps_tuned_p_holm"] > 0.05
    assert table.loc["fast", "width_decades"] == pytest.approx(3.0)  # flat: the whole grid (a lower bound)
    assert table.loc["sgd", "width_decades"] < 0.6
    assert table.loc["fast", "width_diff_low"] > 0 and table.loc["fast", "mean_curve_width"] == pytest.approx(3.0)
    assert found.verdict.startswith("**The claim holds only in part:** faster at the tuned rate for 1 of 2")
    assert "holds: fast" in found.verdict and f"{NO_DIFFERENCE}: same" in found.verdict
    assert "held-out seeds (6–11; rates chosen on seeds 0–5)" in found.verdict
    assert table.loc["sgd", "tuned_lr"] == 0.1 and table.loc["fast", "fastest_lr"] == 1.0


def test_the_tuning_width_verdict_is_holm_corrected_and_calls_equal_widths_no_difference():
    study = _optimizer_study(n_seeds=8)
    found = optimizers.width_verdicts(study.trials)
    assert found["fast"].verdict == HOLDS and found["fast"].correction == "Holm" and found["fast"].n_seeds == 8
    assert found["fast"].p_value >= found["fast"].p_raw
    # a copy of SGD (its own noise) is called no detectable difference at about the nominal rate
    rejected = [optimizers.width_verdicts(_optimizer_study(n_seeds=8, rng=100 + s).trials)["same"].p_raw < 0.05
                for s in range(20)]
    assert sum(rejected) <= 3


def _dropout_frame(n_seeds=10, rng=1):
    """Gap narrowing with p, all of it from the training cost rising (validation cost flat)."""
    rng = np.random.default_rng(rng)
    rows = []
    for seed in range(n_seeds):
        shift = rng.normal(0, 0.005)
        for p in (0.0, 0.2, 0.5, 0.7):
            train = 0.001 + 0.04 * p + rng.normal(0, 0.001)
            val = 0.10 + shift + rng.normal(0, 0.003)
            rows.append((seed, p, train, val))
    return pd.DataFrame(rows, columns=["train.seed", "model.dropout", "train_cost", "val_cost"])


def test_the_dropout_split_calls_a_narrowing_from_a_rising_training_cost_underfitting():
    runs = _dropout_frame()
    parts = dropout.judge(runs)
    assert parts["trend"]["gap"].verdict == HOLDS and parts["trend"]["train_cost"].verdict == HOLDS
    assert parts["trend"]["val_cost"].verdict == NO_DIFFERENCE
    assert parts["train"][0.7].verdict == HOLDS and parts["val"][0.7].verdict == NO_DIFFERENCE
    assert dropout.underfitting(parts) == [0.2, 0.5, 0.7]
    reverse = runs.assign(train_cost=0.05 - runs["train_cost"])
    assert dropout.judge(reverse)["trend"]["gap"].verdict == DOES_NOT_HOLD


def test_minibatch_against_full_batch_is_paired_by_seed_and_holm_corrected():
    rng = np.random.default_rng(2)
    rows = []
    for seed in range(10):
        shift = rng.normal(0, 0.01)
        for size, early, late in ((32, 0.2, 0.12), (1077, 1.2, 0.12)):
            rows.append((seed, size, early + shift + rng.normal(0, 0.01), late + shift + rng.normal(0, 0.002),
                         late + shift + rng.normal(0, 0.002), late + shift + rng.normal(0, 0.002)))
    per_run = pd.DataFrame(rows, columns=["train.seed", "train.batch_size", "val_cost_1ep", "val_cost_10ep",
                                          "val_cost_at_equal_time", "val_cost"])
    found = minibatch_vs_fullbatch.judge(per_run, [1, 10])
    assert list(found) == ["val_cost_1ep", "val_cost_10ep", "val_cost_at_equal_time", "val_cost"]
    assert found["val_cost_1ep"].verdict == HOLDS and found["val_cost_1ep"].estimate == pytest.approx(-1.0, abs=0.02)
    assert all(found[c].verdict == NO_DIFFERENCE for c in ("val_cost_10ep", "val_cost"))
    assert all(v.correction == "Holm" and v.n_seeds == 10 for v in found.values())


def test_activations_compare_each_with_sigmoid_at_each_depth():
    rng = np.random.default_rng(4)
    rows = [(depth, act, seed, (200 if act == "sigmoid" else 100) * depth + rng.normal(0, 5))
            for depth in (1, 3) for act in ("sigmoid", "tanh", "relu") for seed in range(10)]
    chosen = pd.DataFrame(rows, columns=["model.depth", "model.activation", "train.seed", "steps_or_budget"])
    found = activations.judge(chosen)
    assert set(found) == {1, 3} and set(found[1]) == {"tanh", "relu"}
    assert all(v.verdict == HOLDS and v.correction == "Holm" for d in found.values() for v in d.values())
    assert found[3]["relu"].estimate == pytest.approx(-300, abs=10)
