"""analysis/seeds.py: the best configurations retrained with other seeds, logged, compared.

On the small study of ``analysis_study``: its 2 best configurations × 2 other seeds.
"""

import copy

import numpy as np
import pandas as pd
import pytest
from analysis_study import STUDY, small_study
from mlflow.tracking import MlflowClient

from analysis import seeds
from analysis.loading import SEED_KIND, find_study, load_curves, load_run, load_trials
from analysis.seeds import compare_seeds, retrain_seeds


@pytest.fixture(scope="module")
def record(tmp_path_factory):
    return find_study(STUDY, small_study(tmp_path_factory).tracking_uri)


@pytest.fixture(scope="module")
def retrained(record):
    return retrain_seeds(record, top_k=2, n_seeds=2, reuse=False)


def seed_runs(record) -> list:
    client = MlflowClient(record.tracking_uri)
    return client.search_runs([record.experiment_id], f"tags.kind = '{SEED_KIND}'")


def test_two_configurations_times_two_seeds(record, retrained):
    runs = retrained.runs
    best = load_trials(record).query("state == 'COMPLETE'").nsmallest(2, "value")
    assert list(dict.fromkeys(runs["config"])) == list(best["trial"])
    assert list(runs["label"]) == [f"t{c}{s}" for c in best["trial"] for s in ("", "/s1", "/s2")]
    assert list(runs["origin"]) == ["trial", "retrained", "retrained"] * 2
    assert set(runs["state"]) == {"COMPLETE"} and list(runs["trial"]) == list(range(6))
    own = runs.loc[runs["origin"] == "trial"]
    assert list(own["val_cost"]) == list(best["val_cost"])  # a trial's own minimum keeps its logged values
    # every minimum has its own weights and curves
    assert len({retrained.finals[label].tobytes() for label in runs["label"]}) == 6
    assert set(retrained.curves["trial"]) == set(range(6))


def test_the_new_runs_are_logged_under_the_parent(record, retrained):
    logged = {r.info.run_id: r for r in seed_runs(record)}
    for row in retrained.runs.loc[retrained.runs["origin"] == "retrained"].itertuples():
        run = logged[row.run_id]
        tags = run.data.tags
        assert tags["mlflow.parentRunId"] == record.parent_run_id and tags["optuna.study"] == STUDY
        assert (tags["seeds.source_trial"], tags["seed"]) == (str(row.config), str(row.seed))
        assert run.info.status == "FINISHED" and float(run.data.tags["restored_val_cost"]) == row.val_cost
        assert run.data.tags["restored_epoch"] == str(row.epoch) and run.data.metrics["value"] == row.val_cost
        art = load_run(row.run_id, record.tracking_uri)  # its artifacts are a trial's: config and weights
        assert int(art.cfg.train.seed) == row.seed and np.array_equal(art.final.params, retrained.finals[row.label])
    # and they are no trials
    assert len(load_trials(record)) == 4 and set(load_curves(record)["trial"]) == {0, 1, 2, 3}


def test_the_trial_seed_reproduces_the_trial(record, retrained):
    """Retraining goes through the trials' own code: with the trial's seed it gives the trial back."""
    row = retrained.runs.iloc[0]
    art = load_run(row["run_id"], record.tracking_uri)
    result = seeds.train_as_trial(copy.deepcopy(art.cfg), art.data)
    assert result.final["val_cost"] == row["val_cost"]
    assert np.array_equal(result.net.params, art.final.params)


def test_runs_logged_before_are_reused(record, retrained):
    before = len(seed_runs(record))
    again = retrain_seeds(record, top_k=2, n_seeds=2)
    assert len(seed_runs(record)) == before
    assert list(again.runs["origin"]) == ["trial", "reused", "reused"] * 2
    for label in again.runs["label"]:
        assert np.array_equal(again.finals[label], retrained.finals[label])
    assert again.runs[["label", "val_cost", "train_cost"]].equals(retrained.runs[["label", "val_cost", "train_cost"]])


def test_spread_barriers_and_basins(retrained):
    comparison = compare_seeds(retrained)
    runs = retrained.runs
    spread = comparison.spread.loc[comparison.spread["metric"] == "val_cost"].set_index("config")
    for config, group in runs.groupby("config"):
        assert spread.loc[config, "count"] == 3
        assert spread.loc[config, "mean"] == pytest.approx(group["val_cost"].mean())
        assert spread.loc[config, "range"] == pytest.approx(group["val_cost"].max() - group["val_cost"].min())
    # one barrier matrix per architecture, over all its minima (the two configs differ in width here)
    assert sum(len(m) for m in comparison.barriers.values()) == len(runs)
    for matrix in comparison.barriers.values():
        values = matrix.to_numpy()
        assert np.array_equal(values, values.T) and np.all(np.diag(values) == 0) and np.all(values >= 0)
    basins = comparison.basins.set_index("config")
    for config, group in runs.groupby("config"):
        labels = list(group["label"])
        row = basins.loc[config]
        assert row["n_minima"] == 3 and list(row["basins"]) == labels
        matrix = comparison.barriers[group["group"].iloc[0]].loc[labels, labels].to_numpy()
        assert row["max_barrier"] == matrix.max()
        assert row["one_basin"] == (row["n_basins"] == 1)
        off = matrix[~np.eye(len(labels), dtype=bool)]
        if (off <= comparison.tol).all():
            assert row["n_basins"] == 1
        if (off > comparison.tol).all():
            assert row["n_basins"] == len(labels)
    # a tolerance above every barrier joins everything; below every positive one splits all that differ
    loose = compare_seeds(retrained, tol=np.inf)
    assert loose.basins["one_basin"].all() and (loose.group_basins["n_basins"] == 1).all()
    assert loose.basins["one_basin_aligned"].all() and (loose.group_basins["n_basins_aligned"] == 1).all()


def test_barriers_and_basins_modulo_permutation(retrained):
    """Of each pair the later minimum is aligned to the earlier: a barrier matrix and basins both ways."""
    comparison = compare_seeds(retrained)
    assert set(comparison.aligned_barriers) == set(comparison.barriers)
    plain, aligned = [], []
    for group, matrix in comparison.barriers.items():
        after = comparison.aligned_barriers[group]
        assert list(after.index) == list(matrix.index) == list(after.columns)
        values = after.to_numpy()
        assert np.array_equal(values, values.T) and np.all(np.diag(values) == 0) and np.all(values >= -1e-6)
        labels = list(matrix.index)
        pairs = comparison.permutations[group]
        assert list(pairs) == [(a, b) for i, a in enumerate(labels) for b in labels[i + 1:]]
        width = retrained.nets[group].sizes[1]
        assert all(len(perms) == 1 and sorted(perms[0]) == list(range(width)) for perms in pairs.values())
        upper = np.triu_indices(len(labels), 1)
        plain += list(matrix.to_numpy()[upper])
        aligned += list(values[upper])
    # minima from different seeds: aligning them lowers the barrier on average
    assert np.mean(aligned) < np.mean(plain)
    for row in comparison.basins.itertuples():
        matrix = comparison.aligned_barriers[row.group].loc[list(row.basins), list(row.basins)].to_numpy()
        assert row.max_barrier_aligned == matrix.max() and row.one_basin_aligned == (row.n_basins_aligned == 1)
        assert list(row.basins_aligned) == list(row.basins)
    for row in comparison.group_basins.itertuples():
        assert sorted(sum(row.members_aligned, [])) == sorted(sum(row.members, []))


def test_a_copy_and_a_shuffled_copy_of_a_minimum_are_one_basin_modulo_permutation(retrained):
    """The same minimum twice (a same-seed pair): no barrier either way. Its hidden units shuffled: a
    barrier on the straight line, none after alignment, one basin modulo permutation."""
    from analysis.alignment import permute

    first = retrained.runs.iloc[0]
    net = retrained.nets[first["group"]].copy()
    net.params[...] = retrained.finals[first["label"]]
    shuffled = permute(net, [np.random.default_rng(0).permutation(w) for w in net.sizes[1:-1]])
    extra = pd.DataFrame([first] * 2).assign(trial=[100, 101], label=[f"{first['label']}/again",
                                                                      f"{first['label']}/shuffled"])
    curves = retrained.curves.loc[retrained.curves["trial"] == first["trial"]]
    runs = seeds.SeedRuns(pd.concat([retrained.runs, extra], ignore_index=True),
                          pd.concat([retrained.curves, curves.assign(trial=100), curves.assign(trial=101)]),
                          {**retrained.finals, extra["label"].iloc[0]: net.params.copy(),
                           extra["label"].iloc[1]: shuffled.params.copy()},
                          retrained.initials, retrained.nets, retrained.data)
    comparison = compare_seeds(runs)
    label, again, moved = first["label"], *extra["label"]
    plain, aligned = comparison.barriers[first["group"]], comparison.aligned_barriers[first["group"]]
    assert plain.loc[label, again] == 0 and abs(aligned.loc[label, again]) < 1e-6
    assert plain.loc[label, moved] > comparison.tol and abs(aligned.loc[label, moved]) < 1e-6
    row = comparison.basins.set_index("config").loc[first["config"]]
    assert row["basins"][label] == row["basins"][again] != row["basins"][moved]
    assert row["basins_aligned"][label] == row["basins_aligned"][again] == row["basins_aligned"][moved]


def test_a_study_without_complete_trials_cannot_be_retrained(record):
    trials = load_trials(record).assign(state="PRUNED")
    with pytest.raises(ValueError, match="no complete trial"):
        retrain_seeds(record, trials=trials, log=False)


def test_a_minimum_is_measured_at_the_epoch_its_weights_are_from():
    """With train.restore_best a run's weights are from its epoch of lowest val_cost, not its last."""
    curves = pd.DataFrame([(trial, epoch, metric, value) for trial, costs in enumerate([[0.5, 0.3, 0.4]] * 3)
                           for epoch, cost in enumerate(costs, 1)
                           for metric, value in (("val_cost", cost), ("train_cost", cost / 2))],
                          columns=["trial", "epoch", "metric", "value"])
    rows = pd.DataFrame({"trial": [0, 1, 2], "label": ["t7", "t7/s1", "t9"], "config": [7, 7, 9], "seed": [0, 1, 0],
                         "origin": ["trial", "retrained", "trial"], "state": "COMPLETE", "group": ["a", "b", "c"],
                         "run_id": None, "reason": None})
    runs = seeds.at_kept_epochs(rows, curves, restore_best={0, 1})  # trial 9 ran without it
    assert list(runs.columns) == seeds.RUN_COLUMNS
    assert list(runs["epoch"]) == [2, 2, 3] and list(runs["val_cost"]) == [0.3, 0.3, 0.4]
    assert list(runs["train_cost"]) == [0.15, 0.15, 0.2] and runs["val_accuracy"].isna().all()
    spread = compare_seeds(seeds.SeedRuns(runs, curves)).spread.set_index(["metric", "config"])
    assert spread.loc[("val_cost", 7), "mean"] == 0.3 and spread.loc[("val_cost", 9), "mean"] == 0.4
    assert spread.loc[("train_cost", 7), "max"] == 0.15
