"""The findings of experiment=batch_size and experiment=minibatch_vs_fullbatch on synthetic studies:
made-up learning curves whose answer is known, and a tiny real network for the gradient noise."""

import re
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from omegaconf import OmegaConf

import nncore
from analysis.folklore import batch_size, minibatch_vs_fullbatch
from analysis.folklore.common import StudyData, edge_rates, markdown

N = 40  # training samples of the synthetic study: a batch of 40 is the full batch
METRICS = ("val_cost", "train_cost", "val_accuracy", "train_accuracy", "time")


class SyntheticStudy(StudyData):
    """A StudyData whose every trial left the same tiny network (before and after) and data."""

    def artifacts(self, trial):
        return self.run


def tiny_run():
    rng = np.random.default_rng(0)
    initial = nncore.Network([4, 6, 3], activation="tanh", rng=rng)
    final = initial.copy()
    final.params += rng.normal(0.0, 0.5, final.n_params).astype(final.dtype)
    X, Y = nncore.check_inputs(initial, rng.normal(size=(N, 4)), rng.integers(0, 3, N))
    return SimpleNamespace(initial=initial, final=final, cost="cross_entropy", xy=lambda split="train": (X, Y),
                           data=SimpleNamespace(X_train=X))


def synthetic(experiment: str, sizes, val_cost, seconds, lrs=(0.1, 1.0), seeds=12, epochs=12, fail=()):
    """A study of ``sizes`` × ``lrs`` × seeds; ``val_cost(B, lr, epoch)`` and ``seconds(B)`` (per epoch) make
    the curves; (B, lr) pairs in ``fail`` diverge at epoch 2."""
    trials, curves = [], []
    for trial, (size, lr, seed) in enumerate((b, r, s) for b in sizes for r in lrs for s in range(seeds)):
        failed = (size, lr) in fail
        last = 2 if failed else epochs
        values = [val_cost(size, lr, e) * (1 + 0.01 * seed) for e in range(1, last + 1)]
        if failed:
            values[-1] = np.nan
        for epoch, value in enumerate(values, 1):
            metrics = {"val_cost": value, "train_cost": value / 2, "val_accuracy": 1 - value / 4,
                       "train_accuracy": 1 - value / 8, "time": seconds(size)}
            curves += [{"trial": trial, "epoch": epoch, "metric": m, "value": metrics[m]} for m in METRICS]
        trials.append({"trial": trial, "state": "FAIL" if failed else "COMPLETE", "train.batch_size": size,
                       "optimizer.lr": lr, "train.seed": seed, "val_cost": np.nan if failed else values[-1],
                       "train_cost": np.nan if failed else values[-1] / 2,
                       "val_accuracy": np.nan if failed else 1 - values[-1] / 4,
                       "best_val_cost": np.nanmin(values) if not failed else np.nan, "run_id": f"run{trial}"})
    cfg = OmegaConf.create({"study_name": f"synthetic-{experiment}", "data": {"name": "synthetic"},
                            "train": {"epochs": epochs},
                            "model": {"hidden": [6]},
                            "findings": {"experiment": experiment, "threshold": 0.2, "samples": 64, "seeds": seeds}})
    study = SyntheticStudy(cfg, None, pd.DataFrame(trials), pd.DataFrame(curves))
    study.run = tiny_run()
    return study


def decay(rate):
    """Val cost 0.1 + 2·exp(−rate(B)·epoch) at lr 0.1, 0.5 higher at any other rate."""
    return lambda size, lr, epoch: 0.1 + 2 * np.exp(-rate(size) * epoch) + (0 if lr == 0.1 else 0.5)


# ---------------------------------------------------------------------------- batch_size
def batch_study(seconds, fail=()):
    return synthetic("batch_size", (1, 4, 16, 40), decay(lambda b: 2 / np.log2(2 * b)), seconds, fail=fail)


def test_batch_size_table_and_gradient_noise():
    found = batch_size.findings(batch_study(lambda b: 0.01))
    table = found.table.set_index("batch_size")
    assert list(table.index) == ["1", "4", "16", "40 (full)"]
    assert (table["lr"] == 0.1).all() and (table["runs"] == 6).all()  # the 6 held-out seeds
    assert table["fpc_theory"].tolist() == pytest.approx([1, 36 / (4 * 39), 24 / (16 * 39), 0])
    for point in batch_size.POINTS:
        rel, se = table[f"{point}_rel_var"], table[f"{point}_rel_se"]
        assert rel["40 (full)"] < 1e-20
        partial = table["fpc_theory"] > 0
        assert ((rel[partial] - table["fpc_theory"][partial]).abs() < 5 * se[partial]).all()
    assert table["val_epochs_to_tau"].is_monotonic_increasing
    assert set(found.figures) == {"val_cost_epochs", "val_cost_seconds", "gradient_variance"}
    assert "40 (full)" in markdown(found, batch_study(lambda b: 0.01).cfg)


def test_batch_size_verdict_follows_the_numbers():
    same_time = batch_size.findings(batch_study(lambda b: 0.01)).verdict
    assert same_time.startswith("**The claim holds here:**")
    assert re.search(r"samples seen [^:]*: holds: Spearman", same_time) and "falls steadily" in same_time
    small_slow = batch_size.findings(batch_study(lambda b: 1.0 / b)).verdict  # an update costs the same at any B
    assert small_slow.startswith("**The claim holds only in part:**")
    assert re.search(r"; seconds [^:]*: does not hold", small_slow)  # the full batch gets there in fewer seconds


def test_batch_size_copes_with_a_batch_size_whose_runs_all_diverged():
    found = batch_size.findings(batch_study(lambda b: 0.01, fail={(1, 0.1), (1, 1.0), (4, 1.0)}))
    table = found.table.set_index("batch_size")
    assert table.loc["1", "runs"] == 0 and np.isnan(table.loc["1", "val_cost"])
    assert table.loc["1", "initial_rel_var"] > 0  # the noise is measured all the same
    assert table.loc["4", "lr"] == 0.1 and found.verdict.startswith("**The claim holds")


def test_rank_correlation_and_edge_rates():
    assert batch_size.rank_correlation([1, 2, 3], [1, np.inf, 2]) == pytest.approx(0.5)
    assert np.isnan(batch_size.rank_correlation([1, 2], [np.nan, 3]))
    trials = pd.DataFrame({"train.batch_size": [1, 1, 4, 4, 16], "optimizer.lr": [0.1, 1.0, 0.1, 1.0, 0.3]})
    chosen = pd.DataFrame({"train.batch_size": [1, 4, 16], "optimizer.lr": [0.1, 1.0, 0.3]})
    assert edge_rates(trials, chosen, "train.batch_size") == [1, 4]


# ---------------------------------------------------------------------------- minibatch_vs_fullbatch
def test_equal_time_and_cost_at_a_time():
    curves = pd.DataFrame([{"trial": t, "epoch": e, "metric": m, "value": v}
                           for t, step in ((0, 1.0), (1, 0.5), (2, 2.0)) for e in (1, 2, 3)
                           for m, v in (("time", step), ("val_cost", 10 * t + e))])
    trials = pd.DataFrame({"trial": [0, 1, 2], "train.batch_size": [8, 40, 40]})
    assert minibatch_vs_fullbatch.equal_time(curves, trials) == (3.0, 8)  # 40's median total is 4.5 s
    at = minibatch_vs_fullbatch.at_time(curves, 1.5).set_index("trial")
    assert at["epochs_by_equal_time"].tolist()[:2] == [1, 3] and np.isnan(at.loc[2, "epochs_by_equal_time"])
    assert at["val_cost_at_equal_time"].tolist()[:2] == [1, 13] and np.isnan(at.loc[2, "val_cost_at_equal_time"])
    ep = minibatch_vs_fullbatch.at_epochs(curves, [1, 3]).set_index("trial")
    assert ep.loc[2].tolist() == [21, 23]


def minibatch_study(rate):
    return synthetic("minibatch_vs_fullbatch", (8, 40), decay(rate), lambda b: 0.02 if b == 8 else 0.01, epochs=12)


def test_minibatch_faster_per_sample_and_per_second():
    found = minibatch_vs_fullbatch.findings(minibatch_study(lambda b: 1.0 if b == 8 else 0.1))
    table = found.table.set_index("batch_size")
    assert list(table.index) == ["8", "40 (full)"]
    assert {"val_cost_1ep", "val_cost_10ep", "val_cost_at_equal_time", "epochs_by_equal_time"} <= set(table)
    assert table.loc["8", "epochs_by_equal_time"] == 6 and table.loc["40 (full)", "epochs_by_equal_time"] == 12
    assert table.loc["8", "val_cost_1ep"] == pytest.approx((0.1 + 2 * np.exp(-1)) * 1.085)  # held-out seeds 6–11
    assert found.verdict.startswith("**The claim holds here:**") and "lower in 4" in found.verdict
    assert set(found.figures) == {"val_cost_samples", "val_cost_seconds"}


def test_minibatch_no_better_than_the_full_batch():
    found = minibatch_vs_fullbatch.findings(minibatch_study(lambda b: 0.5))
    assert found.verdict.startswith("**The claim does not hold here:**")
    assert "lower in 0, not detectably different in 3, higher in 1" in found.verdict  # equal per sample, slower/s


def test_minibatch_copes_with_a_method_that_always_diverged():
    study = synthetic("minibatch_vs_fullbatch", (8, 40), decay(lambda b: 0.5), lambda b: 0.01,
                      fail={(8, 0.1), (8, 1.0)})
    found = minibatch_vs_fullbatch.findings(study)
    assert found.table["batch_size"].tolist() == ["40 (full)"]
    assert found.verdict.startswith("Only B = 40 (full) has complete runs")
