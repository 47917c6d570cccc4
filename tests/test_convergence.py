"""Convergence statistics on made-up curves whose answers are known by hand."""

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from analysis.convergence import (
    area_under_curve,
    convergence_rate,
    epochs_to_threshold,
    final_spread,
    grouped_curves,
    kaplan_meier,
    km_median,
    plot_grouped_curves,
    threshold_summary,
)

TAU = 0.35


def long_curves(runs: dict, metric: str = "val_cost") -> pd.DataFrame:
    """``{trial: values}`` → rows ``trial, epoch (1-based), metric, value``."""
    return pd.DataFrame([(t, e, metric, float(v)) for t, values in runs.items() for e, v in enumerate(values, 1)],
                        columns=["trial", "epoch", "metric", "value"])


@pytest.fixture
def curves() -> pd.DataFrame:
    cost = long_curves({
        0: [1.0, 0.5, 0.3, 0.2],  # crosses τ at epoch 3
        1: [1.0, 0.8, 0.6],       # never: censored at epoch 3
        2: [0.9, 0.34],           # epoch 2, but no time logged
        3: [0.35, 0.1],           # exactly τ at epoch 1 counts (≤)
    })
    time = long_curves({0: [1.0, 2.0, 3.0, 4.0], 1: [1.0, 1.0, 1.0], 3: [0.5, 0.5]}, "time")
    train = long_curves({0: [0.0, 0.0, 0.0, 0.0]}, "train_cost")  # another metric must not leak in
    return pd.concat([cost, time, train], ignore_index=True).sample(frac=1.0, random_state=0)  # any row order


@pytest.fixture
def trials() -> pd.DataFrame:
    return pd.DataFrame({"trial": [0, 1, 2, 3], "optimizer": ["sgd", "sgd", "adam", "adam"],
                         "state": ["COMPLETE", "PRUNED", "COMPLETE", "COMPLETE"]})


def test_epochs_to_threshold_keeps_censored_runs(curves):
    per = epochs_to_threshold(curves, TAU).set_index("trial")
    assert list(per.index) == [0, 1, 2, 3]
    assert per.loc[0, "epoch"] == 3 and per.loc[0, "reached"] and np.isnan(per.loc[0, "censored_at"])
    assert not per.loc[1, "reached"] and np.isnan(per.loc[1, "epoch"]) and per.loc[1, "censored_at"] == 3
    assert per.loc[2, "epoch"] == 2
    assert per.loc[3, "epoch"] == 1


def test_seconds_are_the_cumulative_epoch_times(curves):
    per = epochs_to_threshold(curves, TAU).set_index("trial")
    assert per.loc[0, "seconds"] == pytest.approx(1 + 2 + 3)
    assert per.loc[3, "seconds"] == pytest.approx(0.5)
    assert np.isnan(per.loc[1, "seconds"])  # never reached
    assert np.isnan(per.loc[2, "seconds"])  # no time metric


def test_summary_counts_censored_runs_overall_and_per_group(curves, trials):
    per = epochs_to_threshold(curves, TAU)
    overall = threshold_summary(per).iloc[0]
    assert overall["n_runs"] == 4 and overall["n_reached"] == 3
    assert overall["frac_reached"] == pytest.approx(0.75)
    assert overall["median_epochs"] == 2  # of 3, 2, 1: reached runs only
    groups = threshold_summary(per, by="optimizer", trials=trials).set_index("optimizer")
    assert groups.loc["sgd", "n_runs"] == 2 and groups.loc["sgd", "frac_reached"] == pytest.approx(0.5)
    assert groups.loc["sgd", "median_epochs"] == 3 and groups.loc["sgd", "median_seconds"] == pytest.approx(6)
    assert groups.loc["adam", "frac_reached"] == 1.0 and groups.loc["adam", "median_epochs"] == 1.5
    assert groups.loc["adam", "median_seconds"] == pytest.approx(0.5)  # trial 2 has no time


def test_groups_with_a_missing_hyperparameter_are_kept():
    per = pd.DataFrame({"trial": [0, 1], "reached": [True, False], "epoch": [2.0, np.nan],
                        "seconds": [np.nan, np.nan], "censored_at": [np.nan, 5.0],
                        "momentum": [0.9, np.nan]})
    summary = threshold_summary(per, by="momentum")
    assert summary["n_runs"].sum() == 2 and summary["momentum"].isna().sum() == 1


def test_kaplan_meier_median_of_a_constructed_example():
    # events at 2, 3, 5; censored at 4 and 6.  S(2) = 4/5, S(3) = 4/5·3/4 = 0.6, at 5 two at risk:
    # S(5) = 0.6·1/2 = 0.3 ≤ 0.5 → median 5 (the reached-only median would say 3).
    times, events = [2, 3, 4, 5, 6], [True, True, False, True, False]
    km = kaplan_meier(times, events)
    np.testing.assert_allclose(km["survival"], [0.8, 0.6, 0.3])
    np.testing.assert_array_equal(km["at_risk"], [5, 4, 2])
    assert km_median(times, events) == 5
    assert km_median([1, 2, 3, 4], [True] * 4) == 2  # S(2) = 0.5 exactly counts
    assert np.isnan(km_median([2, 3, 3, 3], [True, False, False, False]))  # S stays at 0.75
    per = pd.DataFrame({"trial": range(5), "reached": events,
                        "epoch": [t if e else np.nan for t, e in zip(times, events)], "seconds": np.nan,
                        "censored_at": [np.nan if e else t for t, e in zip(times, events)]})
    assert threshold_summary(per)["km_median"].iloc[0] == 5


def test_kaplan_meier_median_at_n_24_is_the_12th_time():
    """24 runs reaching τ at distinct epochs: after the k-th event S = (24 − k)/24 (hand-computed), so
    S = 1/2 exactly at the 12th. Floating cumprod gives 0.5000000000000001 there and named the 13th."""
    times = np.array([2, 3, 5, 6, 7, 9, 10, 11, 13, 14, 15, 17, 18, 19, 21, 22, 23, 25, 26, 27, 29, 30, 31, 33])
    assert np.cumprod(1.0 - 1.0 / np.arange(24, 0, -1))[11] > 0.5  # the rounding the counts avoid
    km = kaplan_meier(times[::-1], [True] * 24)  # any order
    np.testing.assert_array_equal(km["time"], times)
    np.testing.assert_array_equal(km["at_risk"], np.arange(24, 0, -1))
    np.testing.assert_allclose(km["survival"], (24 - np.arange(1, 25)) / 24, rtol=0, atol=1e-15)
    assert km["survival"].iloc[11] == 0.5
    assert km_median(times, [True] * 24) == times[11] == 17


@pytest.mark.parametrize("n", [24, 28, 30, 38, 7])
def test_kaplan_meier_median_of_n_uncensored_runs(n):
    assert km_median(np.arange(1, n + 1) * 2.0, [True] * n) == 2.0 * ((n + 1) // 2)  # the ⌈n/2⌉-th time


def test_final_spread_per_configuration():
    curves = long_curves({0: [3.0, 1.0], 1: [2.5, 2.0], 2: [9.0, 4.0, 3.0], 3: [8.0, 5.0], 4: [7.0]})
    trials = pd.DataFrame({"trial": [0, 1, 2, 3, 4], "lr": [0.1, 0.1, 0.1, 0.01, 0.01],
                           "state": ["COMPLETE"] * 4 + ["PRUNED"]})
    spread = final_spread(curves, trials, by="lr").set_index("lr")
    a = spread.loc[0.1]  # finals 1, 2, 3
    assert (a["mean"], a["std"], a["min"], a["max"], a["range"], a["count"]) == pytest.approx((2, 1, 1, 3, 2, 3))
    assert spread.loc[0.01, "range"] == 2 and spread.loc[0.01, "std"] == pytest.approx(np.std([5, 7], ddof=1))
    only_complete = final_spread(curves, trials, by=["lr"], states=("COMPLETE",)).set_index("lr")
    assert only_complete.loc[0.01, "count"] == 1 and np.isnan(only_complete.loc[0.01, "std"])


def test_convergence_rate_recovers_an_exponential():
    epochs = np.arange(1, 21)
    pure = 2.0 * np.exp(-0.3 * epochs)
    pure[0] = 50.0  # the first epoch is left out of the fit
    plateau = 0.1 + 3.0 * np.exp(-0.05 * epochs)
    rates = convergence_rate(long_curves({0: pure})).set_index("trial")
    assert rates.loc[0, "rate"] == pytest.approx(0.3, rel=1e-10)
    assert rates.loc[0, "slope"] == pytest.approx(-0.3, rel=1e-10) and rates.loc[0, "n_fitted"] == 19
    with_floor = convergence_rate(long_curves({7: plateau}), floor=0.1).set_index("trial")
    assert with_floor.loc[7, "rate"] == pytest.approx(0.05, rel=1e-10)
    assert np.isnan(convergence_rate(long_curves({1: [1.0, 0.5]}))["rate"].iloc[0])  # one point after the first


def test_area_under_curve_is_the_mean_height():
    auc = area_under_curve(long_curves({0: [1.0, 3.0, 2.0], 1: [0.4] * 7, 2: [0.8]})).set_index("trial")
    assert auc.loc[0, "auc"] == pytest.approx(((1 + 3) / 2 + (3 + 2) / 2) / 2)
    assert auc.loc[1, "auc"] == pytest.approx(0.4)  # a constant curve gives its constant at any length
    assert auc.loc[2, "auc"] == pytest.approx(0.8) and auc.loc[2, "n_epochs"] == 1


def test_grouped_curves_quantiles_and_plot():
    curves = long_curves({0: [1.0, 0.5], 1: [2.0, 0.6], 2: [3.0, 0.7], 3: [4.0], 4: [10.0, 9.0]})
    trials = pd.DataFrame({"trial": range(5), "act": ["tanh"] * 4 + ["relu"], "state": "COMPLETE"})
    grouped = grouped_curves(curves, trials, by="act").set_index(["act", "epoch"])
    first = grouped.loc[("tanh", 1)]
    assert (first["median"], first["q25"], first["q75"], first["count"]) == pytest.approx((2.5, 1.75, 3.25, 4))
    assert grouped.loc[("tanh", 2), "count"] == 3 and grouped.loc[("tanh", 2), "median"] == pytest.approx(0.6)
    assert grouped.loc[("relu", 2), "q25"] == 9.0
    figure = plot_grouped_curves(grouped.reset_index())
    assert isinstance(figure, Figure) and len(figure.axes[0].lines) == 2
