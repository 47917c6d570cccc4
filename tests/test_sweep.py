"""The Optuna study that ``python run.py`` drives: claiming trials, resuming, failures, workers, samplers.

End-to-end tests run ``run.py`` in a subprocess in a temp dir (``experiment=quick``: a few
short trials on two moons) and read the study back from ``optuna.journal``; unit tests call
experiments.sweep in process under Hydra's ``initialize_config_dir``.
"""

import fcntl
import multiprocessing
import os
import pickle
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

import numpy as np
import optuna
import pytest
from hydra import compose, initialize_config_dir
from hydra.errors import ConfigCompositionException
from omegaconf import OmegaConf
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend

from experiments import sweep as sweep_module
from experiments.composition import CheckAhead, SweepError, check_space, compose_trial, make_plan
from experiments.config import register_configs, split_seed, validate
from experiments.data import load_dataset
from experiments.search_space import SearchSpaceError, as_overrides, suggest
from experiments.storage import Retry
from experiments.sweep import (
    CODE_VERSION,
    INTERRUPTED,
    TAKEN_OVER,
    Heartbeats,
    claim_trial,
    code_mismatch,
    code_version,
    connect,
    count_failures,
    counted,
    fail_and_retry,
    open_study,
    run_trial,
    run_workers,
    study_counts,
    work,
)
from experiments.tracking import NullTracker
from tests.helpers import explain, load, run_py, running_runs

ROOT = Path(__file__).resolve().parents[1]
CONF_DIR = ROOT / "conf"
QUICK = ["experiment=quick", "tracking=none"]  # study "moons-quick": 4 keys, 3-5 epochs of a tiny net
S = optuna.trial.TrialState
FINISHED = (S.COMPLETE, S.PRUNED, S.FAIL)
SGD_LR = 'sweep.params={optimizer: sgd, optimizer.lr: "tag(log, interval(1e-2, 1e4))"}'  # diverges above ~20
SGD_HUGE_LR = 'sweep.params={optimizer: sgd, optimizer.lr: "tag(log, interval(1e3, 1e6))"}'  # always diverges
GRID = ['sweep.params={optimizer.lr: "choice(0.01, 0.1)", model.width: "choice(8, 16)"}',
        "~sweep.params.optimizer", "sweep.sampler.name=grid"]  # 2 lr x 2 widths x 3 epochs = 12 points


def run_many(cwd: Path, *commands: list[str]) -> list[subprocess.CompletedProcess]:
    """Several ``run.py`` commands at once, from one launch dir."""
    with ThreadPoolExecutor(len(commands)) as pool:
        return list(pool.map(lambda c: run_py(cwd, *c), commands))


def snapshot(trials) -> list[tuple]:
    return [(t.number, t.state, t.params, t.values, t.datetime_start) for t in trials]


@pytest.fixture
def hydra_conf(tmp_path, monkeypatch):
    """Hydra initialised on conf/ (as under @hydra.main), launched from a temp dir."""
    monkeypatch.chdir(tmp_path)
    register_configs()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        yield tmp_path


def plan_for(*overrides: str):
    cfg = compose(config_name="config", overrides=list(overrides))
    validate(cfg)
    return make_plan(cfg, list(overrides))


# ---------------------------------------------------------------------------- the plan
def test_the_configured_pruner_is_built_with_its_settings(hydra_conf):
    from experiments.sweep import make_pruner

    halving = make_pruner(plan_for())  # the default study: rungs at epochs 7, 21 (63: beyond its 60 epochs)
    assert type(halving) is optuna.pruners.SuccessiveHalvingPruner
    assert (halving._min_resource, halving._reduction_factor, halving._min_early_stopping_rate) == (7, 3, 0)
    later = make_pruner(plan_for("sweep.pruner.min_early_stopping_rate=1", "sweep.pruner.reduction_factor=2"))
    assert (later._reduction_factor, later._min_early_stopping_rate) == (2, 1)
    bands = make_pruner(plan_for("sweep.pruner.name=hyperband"))  # up to 60 epochs: the space's top
    assert isinstance(bands, optuna.pruners.HyperbandPruner)
    assert (bands._min_resource, bands._reduction_factor, bands._max_resource) == (7, 3, 60)
    fixed = make_pruner(plan_for("sweep.pruner.name=hyperband", "sweep.params={train.epochs: 30}",
                                 "sweep.pruner.min_resource=5"))
    assert (fixed._min_resource, fixed._max_resource) == (5, 30)
    choices = plan_for("sweep.pruner.name=hyperband", 'sweep.params={train.epochs: "choice(10, 40)"}')
    assert make_pruner(choices)._max_resource == 40
    median = make_pruner(plan_for("sweep.pruner.name=median"))  # every 10 epochs from 10, after 3 trials
    assert type(median) is optuna.pruners.MedianPruner
    assert (median._n_warmup_steps, median._interval_steps, median._n_startup_trials) == (10, 10, 3)
    cut = make_pruner(plan_for("sweep.pruner.name=percentile", "sweep.pruner.percentile=30",
                               "sweep.pruner.n_warmup_steps=4"))
    assert type(cut) is optuna.pruners.PercentilePruner
    assert (cut._percentile, cut._n_warmup_steps, cut._n_startup_trials) == (30.0, 4, 3)
    assert isinstance(make_pruner(plan_for("sweep.pruner.name=none")), optuna.pruners.NopPruner)


@pytest.mark.parametrize("overrides, epochs", [
    (["sweep.pruner.name=median"], range(10, 61, 10)),
    (["sweep.pruner.name=median", "sweep.pruner.interval_steps=1"], range(10, 61)),
    (["sweep.pruner.name=percentile", "sweep.pruner.interval_steps=3"], range(10, 61, 3)),
    (["sweep.pruner.name=median", "sweep.pruner.n_warmup_steps=0", "sweep.pruner.interval_steps=4"],
     [1, *range(4, 61, 4)]),
    (["sweep.pruner.name=none"], []),  # never prunes: never asked
])
def test_the_pruner_is_asked_at_every_epoch_where_it_could_prune_and_only_there(hydra_conf, overrides, epochs):
    from experiments.sweep import make_pruner, pruning_checks

    plan = plan_for("sweep.pruner.n_startup_trials=1", *overrides)
    pruner, asked = make_pruner(plan), pruning_checks(plan.cfg.sweep.pruner)
    study = optuna.create_study(pruner=pruner)
    good = study.ask()
    for epoch in range(1, 61):
        good.report(0.1, epoch)
    study.tell(good, 0.1)
    bad = study.ask()
    would_prune = []
    for epoch in range(1, 61):  # worse than the median at every epoch: pruned wherever the pruner looks
        bad.report(1.0, epoch)
        would_prune.append(epoch if pruner.prune(study, study.trials[bad.number]) else None)
    assert [e for e in would_prune if e] == list(epochs)
    assert [epoch for epoch in range(1, 61) if asked(epoch)] == list(epochs)


class PruneAtEpoch(optuna.pruners.BasePruner):
    """Prunes every trial when it has reported ``epoch``, and never before."""

    def __init__(self, epoch: int):
        self.epoch = epoch

    def prune(self, study, trial) -> bool:
        return trial.last_step == self.epoch


def test_a_trial_that_ran_every_epoch_completes_and_is_never_pruned_at_its_last(hydra_conf, monkeypatch):
    """Pruning at the last epoch saves nothing: there the trial completes; one epoch earlier it is pruned."""
    from experiments import sweep as sweep_module

    every_epoch = ["sweep.pruner.name=median", "sweep.pruner.n_warmup_steps=0", "sweep.pruner.interval_steps=1"]
    for epoch, state in ((3, S.COMPLETE), (2, S.PRUNED)):
        monkeypatch.setattr(sweep_module, "make_pruner", lambda plan, at=epoch: PruneAtEpoch(at))
        name = f"at-{epoch}"
        plan = plan_for(*QUICK, *every_epoch, "sweep.n_trials=2", f"study_name={name}",
                        'sweep.params={optimizer: sgd, optimizer.lr: "interval(0.1, 0.3)", train.epochs: 3}')
        work(plan)
        assert [t.state for t in load(hydra_conf, name).trials] == [state] * 2


@pytest.mark.parametrize("overrides, rungs", [
    ([], [7, 21, 63, 189]),  # the default: successive halving, rungs at 7 and 21 for trials of up to 60 epochs
    (["sweep.pruner.min_early_stopping_rate=1"], [21, 63, 189]),
    (["sweep.pruner.name=hyperband"], [7, 21, 63, 189]),  # its brackets' rungs: 7, 21 and 21
])
def test_halving_asked_only_at_its_rungs_prunes_as_if_asked_every_epoch(hydra_conf, overrides, rungs):
    from experiments.sweep import make_pruner, pruning_checks

    plan = plan_for(*overrides)
    asked = pruning_checks(plan.cfg.sweep.pruner)
    assert [epoch for epoch in range(1, 200) if asked(epoch)] == rungs
    rng = np.random.default_rng(0)
    curves = [rng.uniform(0.05, 0.5) + rng.uniform(0.1, 2.0) / np.arange(1, 61) ** rng.uniform(0.2, 1.5)
              for _ in range(40)]

    def prune_epochs(ask) -> list:
        study = optuna.create_study(study_name="digits-default", pruner=make_pruner(plan))
        stops = []
        for curve in curves:
            trial, stop = study.ask(), None
            for epoch in range(1, 61):
                trial.report(curve[epoch - 1], epoch)
                if ask(epoch) and trial.should_prune():
                    stop = epoch
                    break
            if stop:
                study.tell(trial, state=optuna.trial.TrialState.PRUNED)
            else:
                study.tell(trial, curve[-1])
            stops.append(stop)
        return stops

    every, at_rungs = prune_epochs(lambda epoch: True), prune_epochs(asked)
    assert at_rungs == every
    assert {rung for rung in rungs if rung <= 60} == set(every) - {None}  # each rung cuts some trials


def test_plan_keeps_the_users_overrides_except_searched_keys(hydra_conf):
    plan = plan_for(*QUICK, "optimizer.lr=0.5", "model.width=4", "train.batch_size=8", "optimizer=sgd")
    assert set(plan.space) == {"optimizer", "optimizer.lr", "model.width", "train.epochs"}
    assert plan.base_overrides == [*QUICK, "train.batch_size=8"]
    cfg = compose_trial(plan, {"optimizer": "adam", "optimizer.lr": 0.003, "model.width": 16, "train.epochs": 4})
    assert (cfg.optimizer.name, cfg.optimizer.lr, cfg.optimizer.betas[0]) == ("adam", 0.003, 0.9)  # Adam's own defaults
    assert (cfg.model.width, cfg.train.epochs, cfg.train.batch_size) == (16, 4, 8)


def test_plan_applies_fixed_values_of_the_space(hydra_conf):
    plan = plan_for(*QUICK, 'sweep.params={optimizer: sgd, model.width: 4}')
    assert plan.fixed == {"optimizer": "sgd", "model.width": "4"}
    cfg = compose_trial(plan, {"optimizer.lr": 0.2, "train.epochs": 3})
    assert (cfg.optimizer.name, cfg.optimizer.lr, cfg.optimizer.momentum, cfg.model.width) == ("sgd", 0.2, 0.0, 4)


@pytest.mark.parametrize("overrides", [
    ["tracking=none"],  # the default space: optimizer (a group), floats, ints, choices
    [*QUICK, "train.batch_size=8", "sweep.params={optimizer: sgd}",
     '+sweep.params={model.hidden: "choice([8,4], [16])", optimizer.momentum: "interval(0.1, 0.9)", '
     'data: "choice(moons, circles)"}'],  # fixed group, a sampled group, list values, a key of the fixed group
], ids=["default", "custom"])
def test_compose_trial_equals_hydras_own_composition(hydra_conf, overrides):
    plan = plan_for(*overrides)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(12):
        trial = study.ask()
        values = suggest(trial, plan.space)
        study.tell(trial, 0.0)
        fast = compose_trial(plan, values)  # cached per group choice, then values set
        full = compose(config_name="config", overrides=plan.base_overrides + as_overrides(plan.fixed)
                       + as_overrides(values))
        assert OmegaConf.to_container(fast) == OmegaConf.to_container(full)
        assert repr(fast) == repr(full)  # the same types too (1 vs 1.0)
        assert OmegaConf.get_type(fast.optimizer) is OmegaConf.get_type(full.optimizer)
        assert OmegaConf.is_struct(fast) and OmegaConf.is_struct(full)
    assert len(plan.composed) <= 7 * 2  # one composition per group choice, not per trial


def test_the_check_ahead_hands_over_what_check_space_composes_and_raises_its_errors(hydra_conf):
    plan = plan_for("tracking=none")
    check_space(plan)
    ahead_plan = plan_for("tracking=none")
    CheckAhead(plan.cfg, ["tracking=none"]).take(ahead_plan)
    assert set(ahead_plan.composed) == set(plan.composed) and len(plan.composed) == 7  # the 7 optimizers
    assert all(pickle.loads(ahead_plan.composed[k]) == pickle.loads(plan.composed[k]) for k in plan.composed)
    bad = [*QUICK, 'sweep.params={optimizer: "choice(sgd, adam)", model.width: "choice(8, -3)"}']
    with pytest.raises(SearchSpaceError) as inline:
        check_space(plan_for(*bad))
    with pytest.raises(SearchSpaceError) as ahead:
        CheckAhead(plan_for(*bad).cfg, bad).take(plan_for(*bad))
    assert str(ahead.value) == str(inline.value) and "sweep.params.model.width" in str(inline.value)


def test_check_space_scales_a_relative_intervals_ends_before_it_checks_them(hydra_conf):
    def space(high):  # data.val_fraction is 0.2 (the schema's): a factor up to 3.5 gives 0.7, up to 6 gives 1.2
        return f'+sweep.params={{data.val_fraction: "tag(relative, interval(0.5, {high}))"}}'
    check_space(plan_for(*QUICK, space(3.5)))  # its absolute end, 3.5, is no fraction, yet every trial can run
    with pytest.raises(SearchSpaceError, match=r"sweep\.params\.data\.val_fraction: a trial with "
                                               r"data\.val_fraction/default=6\.0 cannot run: .*got 1\.2"):
        check_space(plan_for(*QUICK, space(6)))


def test_a_check_ahead_whose_process_died_is_done_again_in_the_launching_process(hydra_conf):
    plan = plan_for("tracking=none")
    ahead = CheckAhead(plan.cfg, ["tracking=none"])
    for process in multiprocessing.active_children():  # the check's process
        os.kill(process.pid, signal.SIGKILL)
    ahead.take(plan)
    assert isinstance(ahead.future.exception(), BrokenProcessPool)
    assert len(plan.composed) == 7


def test_compose_trial_fails_like_hydra_on_a_key_the_group_lacks(hydra_conf):
    plan = plan_for(*QUICK, "sweep.params={optimizer: adam}",
                    '+sweep.params={optimizer.momentum: "interval(0.1, 0.9)"}')
    with pytest.raises(ConfigCompositionException, match="Could not override 'optimizer.momentum'"):
        compose_trial(plan, {"optimizer.lr": 0.1, "model.width": 8, "train.epochs": 3, "optimizer.momentum": 0.5})


def test_plan_refuses_an_empty_space_override(hydra_conf):
    # Hydra merges `sweep.params={}` into the configured space; silently running that space would surprise
    with pytest.raises(SearchSpaceError, match=r"sweep.params=\{\}: an empty search space"):
        plan_for(*QUICK, "sweep.params={}")


def test_plan_refuses_a_grid_over_an_interval(hydra_conf):
    with pytest.raises(SearchSpaceError, match="sweep.params.optimizer.lr: the grid sampler needs choice"):
        plan_for(*QUICK, "sweep.sampler.name=grid")


# ---------------------------------------------------------------------------- end to end
def test_resume_runs_only_the_missing_trials(tmp_path):
    first = run_py(tmp_path, *QUICK, "sweep.n_trials=3")
    assert first.returncode == 0, explain(first)
    before = snapshot(load(tmp_path).trials)
    assert len(before) == 3

    second = run_py(tmp_path, *QUICK, "sweep.n_trials=5")
    assert second.returncode == 0, explain(second)
    trials = load(tmp_path).trials
    assert [t.number for t in trials] == [0, 1, 2, 3, 4]
    assert all(t.state in FINISHED for t in trials)
    assert snapshot(trials[:3]) == before  # the first three untouched

    again = run_py(tmp_path, *QUICK, "sweep.n_trials=5")  # a full study: nothing to run
    assert again.returncode == 0, explain(again)
    assert snapshot(load(tmp_path).trials) == snapshot(trials)


def test_a_killed_sweep_resumes_to_exactly_n_trials(tmp_path):
    # slow enough trials (20,000 samples, batch 1: about two seconds each) to kill one mid-run. Tracking on:
    # kill -9 of the process group takes run.py's tracking process along, so the resume must close the run
    command = ["experiment=quick", "tracking.log_plots=false", "sweep.n_trials=3", "data.n_samples=20000",
               "train.batch_size=1"]
    proc = subprocess.Popen([sys.executable, str(ROOT / "run.py"), *command], cwd=tmp_path,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        running = []
        while time.monotonic() < deadline and proc.poll() is None:
            if (tmp_path / "optuna.journal").exists() and "trial-0001" in running_runs(tmp_path / "mlflow.db"):
                trials = load(tmp_path).get_trials(deepcopy=False)
                running = [t for t in trials if t.state == S.RUNNING and t.number == 1]
                if running:
                    break
            time.sleep(0.05)
        assert running, "trial #1 never seen running"
        os.killpg(proc.pid, signal.SIGKILL)  # run.py and its tracking process
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)
    killed = load(tmp_path).trials
    assert [t.state for t in killed] == [S.COMPLETE, S.RUNNING]
    from mlflow.tracking import MlflowClient
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    before = trial_runs(client)
    assert before[1].info.status == "RUNNING"  # nobody left to close it

    rerun = run_py(tmp_path, *command)
    assert rerun.returncode == 0, explain(rerun)
    study = load(tmp_path)
    trials = study.trials
    assert len(trials) == 3 and sorted(t.number for t in trials) == [0, 1, 2]
    assert all(t.state in FINISHED for t in trials), [t.state for t in trials]
    assert snapshot(trials[:1]) == snapshot(killed[:1])
    assert trials[1].state == S.FAIL and "fail_reason" not in trials[1].user_attrs  # the dead process's trial
    assert count_failures(study) == 0  # a kill is not the config's failure: max_failures does not count it
    after = trial_runs(client)
    assert sorted(after) == [0, 1, 2]
    assert after[1].info.run_id == before[1].info.run_id and after[1].info.status == "KILLED"
    assert "killed" in after[1].data.tags["killed_reason"]
    for run in (before[0], after[0]):  # the trial finished before the kill: its run untouched
        assert run.info.status == "FINISHED"
    assert (after[0].info.run_id, after[0].info.end_time, after[0].data.metrics, after[0].data.params) == \
        (before[0].info.run_id, before[0].info.end_time, before[0].data.metrics, before[0].data.params)
    assert after[2].info.status in ("FINISHED", "KILLED") and "killed_reason" not in after[2].data.tags


def trial_runs(client, experiment: str = "moons-quick") -> dict:
    """{trial number: its run}, asserting one run per trial under one parent run."""
    exp = client.get_experiment_by_name(experiment)
    runs = client.search_runs([exp.experiment_id], max_results=1000)
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    assert len(parents) == 1
    children = [r for r in runs if r not in parents]
    numbers = [int(r.data.tags["optuna.trial_number"]) for r in children]
    assert len(set(numbers)) == len(numbers) and all(r.data.tags["mlflow.parentRunId"] == parents[0].info.run_id
                                                     for r in children)
    return dict(zip(numbers, children))


def test_a_diverging_trial_is_recorded_and_the_sweep_finishes(tmp_path):
    proc = run_py(tmp_path, *QUICK, SGD_LR, "sweep.n_trials=6")
    assert proc.returncode == 0, explain(proc)
    trials = load(tmp_path).trials
    assert len(trials) == 6 and all(t.state in FINISHED for t in trials)
    failed = [t for t in trials if t.state == S.FAIL]
    assert failed and all("diverged" in t.user_attrs["fail_reason"] for t in failed)
    assert all(t.params["optimizer.lr"] > 1 for t in failed)
    assert any(t.state == S.COMPLETE for t in trials)
    assert f"{len(failed)} failed" in proc.stdout
    for trial in failed[:3]:  # the summary names them with their reason
        assert f"failed trial #{trial.number}: {trial.user_attrs['fail_reason']}\n" in proc.stdout, explain(proc)


def test_a_sweep_whose_every_trial_fails_names_three_and_counts_the_rest(tmp_path):
    proc = run_py(tmp_path, *QUICK, SGD_HUGE_LR, "sweep.n_trials=5", "sweep.max_failures=10")
    assert proc.returncode == 1, explain(proc)
    assert "no trial completed" in proc.stderr, explain(proc)
    named = [line for line in proc.stdout.splitlines() if line.startswith("failed trial #")]
    assert len(named) == 3 and all("diverged" in line for line in named), explain(proc)
    assert "  and 2 more failed trials (each with its fail_reason)" in proc.stdout, explain(proc)


def test_max_failures_stops_the_sweep_early(tmp_path):
    proc = run_py(tmp_path, *QUICK, SGD_HUGE_LR, "sweep.n_trials=8", "sweep.max_failures=1")
    assert proc.returncode != 0, explain(proc)
    trials = load(tmp_path).trials
    assert [t.state for t in trials] == [S.FAIL, S.FAIL]  # stopped at the second failure, not after 8
    assert all("diverged" in t.user_attrs["fail_reason"] for t in trials)
    assert "the sweep stopped after 2 failed trials (sweep.max_failures=1)" in proc.stderr, explain(proc)


def test_two_workers_share_one_study_exactly(tmp_path):
    proc = run_py(tmp_path, *QUICK, "sweep.n_trials=8", "sweep.n_workers=2")
    assert proc.returncode == 0, explain(proc)
    trials = load(tmp_path).trials
    assert sorted(t.number for t in trials) == list(range(8))
    assert all(t.state in FINISHED for t in trials)
    pids = {t.user_attrs["pid"] for t in trials}
    assert 1 <= len(pids) <= 2 and os.getpid() not in pids  # trials ran in the worker processes


def test_a_study_refuses_another_space_or_direction(tmp_path):
    first = run_py(tmp_path, *QUICK, "sweep.n_trials=2")
    assert first.returncode == 0, explain(first)
    maximize = ["sweep.objective.metrics=[val_accuracy]", "sweep.objective.directions=[maximize]"]
    other_space, other_direction, last_epoch, renamed = run_many(
        tmp_path,
        [*QUICK, "sweep.n_trials=4", 'sweep.params={optimizer.lr: "interval(0.01, 0.1)"}'],
        [*QUICK, "sweep.n_trials=4", *maximize],
        [*QUICK, "sweep.n_trials=4", "train.restore_best=false"],  # the objective: the last epoch's val_cost
        [*QUICK, "sweep.n_trials=1", *maximize, "study_name=other"],  # what the message advises
    )
    for proc in (other_space, other_direction, last_epoch):
        assert proc.returncode != 0, explain(proc)
        lines = [line for line in proc.stderr.splitlines() if "study_name=NEW_NAME" in line]
        assert len(lines) == 1 and "'moons-quick'" in lines[0], explain(proc)
    assert len(load(tmp_path).trials) == 2  # nothing ran
    assert renamed.returncode == 0, explain(renamed)
    assert load(tmp_path, "other").direction == optuna.study.StudyDirection.MAXIMIZE


@pytest.mark.parametrize("overrides, difference", [
    (['sweep.params={optimizer.lr: "interval(0.01, 0.1)"}'],
     "optimizer.lr=interval(0.01, 0.1) here, tag(log, interval(0.001, 0.5)) in the study"),
    (["~sweep.params.optimizer"], "optimizer=choice(sgd, adam) in the study, not here"),
    (['+sweep.params={model.depth: "range(1, 3)"}'], "model.depth=range(1, 3) here, not in the study"),
    (["sweep.objective.metrics=[train_cost]"],
     "sweep.objective=['train_cost']:['minimize'] here, ['val_cost']:['minimize'] in the study"),
    (["train.restore_best=false"], "train.restore_best=false here, true in the study"),
    (["sweep.objective.window=3", "train.restore_best=false"],
     "sweep.objective=['val_cost']:['minimize']:window=3 here, ['val_cost']:['minimize'] in the study; "
     "train.restore_best=false here, true in the study"),
])
def test_a_worker_with_another_space_or_objective_is_refused_naming_the_difference(hydra_conf, overrides,
                                                                                    difference):
    open_study(plan_for(*QUICK))
    with pytest.raises(SweepError) as refused:
        open_study(plan_for(*QUICK, *overrides))
    message = str(refused.value)
    assert "\n" not in message and "'moons-quick'" in message and "study_name=NEW_NAME" in message
    assert f"objective: {difference};" in message


def test_a_worker_of_another_commit_is_warned_or_refused_with_allow_code_mismatch_false(hydra_conf):
    study = open_study(plan_for(*QUICK))
    mine = code_version()
    assert mine is not None and study.user_attrs[CODE_VERSION] == mine  # the first worker's commit
    assert code_mismatch(study) is None
    study.set_user_attr(CODE_VERSION, "0" * 40)  # as if the first worker ran another commit
    assert code_mismatch(study) == f"code_version={mine[:12]} here, the study's first worker ran 000000000000"
    open_study(plan_for(*QUICK))  # the default: a warning (run.py prints it), not a refusal
    with pytest.raises(SweepError, match=r"code_version=\w{12} here, the study's first worker ran 000000000000 "
                                         r"\(sweep.allow_code_mismatch=false\)"):
        open_study(plan_for(*QUICK, "sweep.allow_code_mismatch=false"))
    assert load(hydra_conf).user_attrs[CODE_VERSION] == "0" * 40  # the first worker's stays


def test_run_py_warns_of_another_commit_and_refuses_it_in_one_error_line_with_allow_code_mismatch_false(tmp_path):
    first = run_py(tmp_path, *QUICK, "sweep.n_trials=1")
    assert first.returncode == 0, explain(first)
    load(tmp_path).set_user_attr(CODE_VERSION, "0" * 40)  # the study's first worker ran another commit
    warned = run_py(tmp_path, *QUICK, "sweep.n_trials=2")
    assert warned.returncode == 0, explain(warned)
    lines = [line for line in warned.stderr.splitlines() if "code_version=" in line]
    assert len(lines) == 1 and lines[0].startswith("warning: code_version=") and "000000000000" in lines[0]
    refused = run_py(tmp_path, *QUICK, "sweep.n_trials=3", "sweep.allow_code_mismatch=false")
    assert refused.returncode == 2, explain(refused)
    errors = [line for line in refused.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "sweep.allow_code_mismatch=false" in errors[0] and "000000000000" in errors[0]
    assert len(load(tmp_path).trials) == 2  # nothing ran


class RecordingTracker(NullTracker):
    """A tracker that keeps what it was told: trials ``started``, ``epochs`` logged and ``ended`` (state, reason)."""

    def __init__(self):
        self.started, self.epochs, self.ended = [], [], []

    def start_trial(self, number, cfg, values) -> None:
        self.started.append(number)

    def log_epoch(self, metrics, step) -> None:
        self.epochs.append(step)

    def end_trial(self, state, final, result=None, reason=None) -> None:
        self.ended.append((state, reason))


def heartbeat_plan(folder: Path, *overrides: str):
    """A plan on a SQLite study with heartbeats every second (grace 2 s), as on a database."""
    url = f"sqlite:///{folder / 'study.db'}?heartbeat_interval=1&grace_period=2"
    return plan_for(*QUICK, f"sweep.storage='{url}'", *overrides)


@pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")  # Optuna's retry callback
def test_a_trial_whose_worker_died_claiming_it_is_failed_and_retried_by_the_next_claim(hydra_conf):
    plan = heartbeat_plan(hydra_conf, "sweep.n_trials=2")
    storage = connect(plan)
    study = open_study(plan, storage=storage)
    orphan = study.ask()  # its worker died before it recorded its pid and first heartbeat (Optuna never fails it)
    values = suggest(orphan, plan.space)
    retry = claim_trial(study, plan, Heartbeats(storage, study.study_name))
    assert study.trials[0].state == S.FAIL and retry.number == 1 and suggest(retry, plan.space) == values
    assert study.trials[1].system_attrs["retry_history"] == [0] and retry.user_attrs["pid"] == os.getpid()


@pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")
def test_a_worker_whose_trial_was_failed_for_a_stale_heartbeat_stops_training_it(hydra_conf):
    plan = heartbeat_plan(hydra_conf, 'sweep.params={train.epochs: "choice(60)"}', "data.n_samples=4000",
                          "train.batch_size=4")  # 60 epochs, ~10 s
    storage = connect(plan)
    study = open_study(plan, storage=storage)
    heartbeats, tracker = Heartbeats(storage, study.study_name), RecordingTracker()
    trial = claim_trial(study, plan, heartbeats)
    outcome = []

    def worker() -> None:
        with heartbeats.beating(trial.number) as taken:
            outcome.append(run_trial(study, trial, plan, tracker, taken))

    thread = threading.Thread(target=worker)
    thread.start()
    while not tracker.epochs:
        time.sleep(0.05)
    study.tell(trial.number, state=S.FAIL)  # another worker took its heartbeat for stale
    thread.join(60)
    assert outcome == ["retried"] and tracker.ended == [("retried", TAKEN_OVER)]
    assert len(tracker.epochs) < 60  # it stopped within a heartbeat and an epoch
    assert study.trials[0].state == S.FAIL and "fail_reason" not in study.trials[0].user_attrs


def other_worker(plan) -> optuna.Study:
    """The study as another worker's process opens it: a storage and a sampler of its own."""
    return optuna.load_study(study_name=plan.cfg.study_name, storage=connect(plan))


@pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")
def test_a_trial_failed_by_another_worker_after_its_last_epoch_is_let_go(hydra_conf, monkeypatch):
    plan = heartbeat_plan(hydra_conf)
    study = open_study(plan, storage=connect(plan))
    trial, tracker = claim_trial(study, plan), RecordingTracker()
    trained = sweep_module.train_config

    def train_then_lose_it(*args):  # the heartbeat went stale after the last epoch's look
        result = trained(*args)
        other_worker(plan).tell(trial.number, state=S.FAIL)
        return result

    monkeypatch.setattr(sweep_module, "train_config", train_then_lose_it)
    assert run_trial(study, trial, plan, tracker) == "retried"
    assert tracker.ended == [("retried", TAKEN_OVER)]
    assert study.trials[0].state == S.FAIL and "train_cost" not in study.trials[0].user_attrs


@pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")
def test_only_the_worker_whose_write_failed_a_dead_trial_queues_its_retry(hydra_conf):
    plan = heartbeat_plan(hydra_conf)
    storage = connect(plan)
    study = open_study(plan, storage=storage)
    dead = study.ask()
    raced = []

    def another_worker_first(*args) -> None:  # between this worker's read of the trial and its write
        raced.append(fail_and_retry(other_worker(plan), dead.number, storage))

    study.sampler.after_trial = another_worker_first
    assert fail_and_retry(study, dead.number, storage) is False and raced == [True]
    assert fail_and_retry(study, dead.number, storage) is False  # failed long ago: nothing to do
    assert [t.state for t in study.trials] == [S.FAIL, S.WAITING]  # one retry, not one per worker


def test_ctrl_c_while_a_trial_is_set_up_acts_once_its_run_is_open(hydra_conf, monkeypatch):
    plan = plan_for(*QUICK)
    study = open_study(plan)
    trial, tracker = claim_trial(study, plan), RecordingTracker()
    composed = sweep_module.compose_trial

    def compose_under_ctrl_c(*args):
        signal.raise_signal(signal.SIGINT)
        return composed(*args)

    monkeypatch.setattr(sweep_module, "compose_trial", compose_under_ctrl_c)
    with pytest.raises(KeyboardInterrupt):
        run_trial(study, trial, plan, tracker)
    assert tracker.started == [trial.number] and tracker.ended == [("failed", INTERRUPTED)]
    assert study.trials[0].state == S.FAIL and study.trials[0].user_attrs["fail_reason"] == INTERRUPTED


@pytest.mark.parametrize("pruned", [False, True])
def test_ctrl_c_while_a_trained_trial_is_told_acts_once_the_study_and_its_run_have_its_end(hydra_conf, pruned):
    prune = ["sweep.pruner.name=median", "sweep.pruner.n_startup_trials=0", "sweep.pruner.n_warmup_steps=0"]
    plan = plan_for(*QUICK, *(prune if pruned else []))
    study = open_study(plan)
    if pruned:  # a finished trial far better at every epoch: the median pruner stops the next one at once
        study.add_trial(optuna.trial.create_trial(
            params={}, distributions={}, value=0.0, intermediate_values={e: 0.0 for e in range(1, 50)}))
    trial, tracker = claim_trial(study, plan), RecordingTracker()
    study.sampler.after_trial = lambda *args: signal.raise_signal(signal.SIGINT)  # inside the study's tell
    with pytest.raises(KeyboardInterrupt):
        run_trial(study, trial, plan, tracker)
    state = S.PRUNED if pruned else S.COMPLETE
    assert study.trials[trial.number].state == state
    assert [ended for ended, _ in tracker.ended] == [state.name.lower()]


def test_a_claimed_trial_failed_before_its_pid_is_recorded_is_let_go_and_the_claim_made_again(hydra_conf):
    plan = heartbeat_plan(hydra_conf, "sweep.n_trials=3")
    study = open_study(plan, storage=connect(plan))
    asked = study.ask

    def ask_and_lose_it():  # the claim lock's connection dropped: another worker failed it as unclaimed
        trial = asked()
        if trial.number == 0:
            other_worker(plan).tell(trial.number, state=S.FAIL)
        return trial

    study.ask = ask_and_lose_it
    trial = claim_trial(study, plan)
    assert trial.number == 1 and study.trials[1].state == S.RUNNING
    assert study.trials[1].user_attrs["pid"] == os.getpid() and "pid" not in study.trials[0].user_attrs


@pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")  # Optuna's retry callback
def test_a_queued_retry_is_claimed_with_its_parameters_and_takes_the_place_of_its_trial(hydra_conf):
    plan = plan_for(*QUICK, "sweep.n_trials=2")
    study = open_study(plan)
    first = claim_trial(study, plan)
    values = suggest(first, plan.space)
    study.tell(first, state=S.FAIL)  # its worker died; on a database the heartbeat check then does:
    Retry(max_retry=1)(study, study.trials[0])
    assert [t.state for t in study.trials] == [S.FAIL, S.WAITING] and "pid" not in study.trials[1].user_attrs
    retry = claim_trial(study, plan)  # the study counts 1 of 2 trials: the queued retry comes first
    assert retry.number == 1 and suggest(retry, plan.space) == values
    assert retry.user_attrs["pid"] == os.getpid()
    study.tell(retry, 0.5)
    last = claim_trial(study, plan)
    study.tell(last, 0.4)
    assert claim_trial(study, plan) is None
    assert counted(study.trials) == 2 and len(study.trials) == 3
    assert study_counts(study) == {"complete": 2, "pruned": 0, "failed": 0, "running": 0, "waiting": 0, "retried": 1}


# ---------------------------------------------------------------------------- grid sampler
def test_grid_study_stops_at_the_grid_size(hydra_conf):
    plan = plan_for(*QUICK, *GRID, "sweep.n_trials=20")
    work(plan)  # Optuna's GridSampler would call study.stop() after the last point and raise here
    study = load(hydra_conf)
    assert len(study.trials) == 12
    assert len({tuple(sorted(t.params.items())) for t in study.trials}) == 12  # every point once
    work(plan)  # resuming a finished grid runs nothing
    assert len(load(hydra_conf).trials) == 12


def test_grid_study_with_two_workers_visits_each_point_once(hydra_conf):
    plan = plan_for(*QUICK, *GRID, "sweep.n_trials=12", "sweep.n_workers=2")
    run_workers(plan, lambda study, state=None: None)
    trials = load(hydra_conf).trials
    assert len(trials) == 12 and all(t.state in FINISHED for t in trials)
    assert len({tuple(sorted(t.params.items())) for t in trials}) == 12


def test_order_seed_keeps_the_initial_weights_and_data_seed_keeps_the_split():
    from experiments.config import split_seed
    from experiments.data import load_dataset
    from experiments.trainer import train_config

    def config(*overrides):
        register_configs()
        with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
            return compose(config_name="config", overrides=["data=iris", "train.epochs=3", "mode=train", *overrides])

    runs = {}
    for name, overrides in {"plain": [], "order 1": ["train.order_seed=1"], "order 2": ["train.order_seed=2"],
                            "seed 5": ["train.seed=5", "data.seed=0"]}.items():
        cfg = config(*overrides)
        runs[name] = (split_seed(cfg), train_config(cfg, load_dataset(cfg.data, split_seed(cfg))))
    (_, plain), (_, one), (_, two) = runs["plain"], runs["order 1"], runs["order 2"]
    assert (plain.initial_params == one.initial_params).all() and (one.initial_params == two.initial_params).all()
    assert not np.array_equal(one.net.params, two.net.params) and not np.array_equal(plain.net.params, one.net.params)
    seed, other = runs["seed 5"]
    assert seed == 0 and not np.array_equal(other.initial_params, plain.initial_params)  # same split, other weights


@pytest.mark.parametrize("restore_best", [True, False])
def test_restore_best_ends_on_the_epoch_of_lowest_val_cost_and_says_so_every_epoch(hydra_conf, restore_best):
    from experiments.trainer import train_config

    cfg = compose(config_name="config", overrides=["data=iris", "train.epochs=20", "mode=train", "optimizer=sgd",
                                                   "optimizer.lr=0.3", f"train.restore_best={restore_best}"])
    data = load_dataset(cfg.data, split_seed(cfg))
    kept_each_epoch = []
    result = train_config(cfg, data, lambda metrics, kept: kept_each_epoch.append(kept.epoch))
    curve = [m.val_cost for m in result.history.epochs]
    assert len(curve) == 20 and int(np.argmin(curve)) + 1 < 20  # the curve rises after its lowest point
    assert any(b > a for a, b in zip(curve, curve[1:]))
    running_best = [int(np.argmin(curve[:epoch])) + 1 for epoch in range(1, 21)]
    assert kept_each_epoch == (running_best if restore_best else list(range(1, 21)))
    kept = kept_each_epoch[-1]
    assert result.final["val_cost"] == curve[kept - 1] and result.final["epochs_run"] == 20
    assert result.final.get("restored_epoch") == (kept if restore_best else None)
    val = result.evaluate(data.X_val, data.y_val, "cross_entropy", "val")  # the net holds the kept weights
    assert val["val_cost"] == pytest.approx(curve[kept - 1], rel=1e-5)


def test_restore_best_without_a_validation_cost_keeps_the_last_epoch():
    import nncore
    from experiments.trainer import KeptEpoch

    net = nncore.Network([2, 3, 1], "tanh", "identity", rng=np.random.default_rng(0))
    kept = KeptEpoch(net, restore_best=True)
    for epoch in (1, 2, 3):
        net.params[...] = epoch
        assert kept(nncore.EpochMetrics(epoch, train_cost=1.0 / epoch)).epoch == epoch
    net.params[...] = 0.0
    kept.restore()
    assert (net.params == 3).all()


@pytest.mark.parametrize("restore_best", [True, False])
def test_the_pruner_sees_what_the_trial_would_return_if_it_stopped_then(hydra_conf, restore_best):
    plan = plan_for(*QUICK, "sweep.n_trials=4", "sweep.pruner.name=none", f"train.restore_best={restore_best}",
                    'sweep.params={optimizer: sgd, optimizer.lr: "tag(log, interval(0.3, 1.0))", train.epochs: 20}')
    work(plan)
    trials = load(hydra_conf).trials
    assert [t.state for t in trials] == [S.COMPLETE] * 4
    rises = 0
    for trial in trials:
        reported = [trial.intermediate_values[epoch] for epoch in range(1, 21)]
        assert trial.value == reported[-1]  # the last report is the objective
        rises += any(b > a for a, b in zip(reported, reported[1:]))
    assert rises == 0 if restore_best else rises > 0  # the lowest so far, or each epoch's own


class CurveTracker(NullTracker):
    """Tracking off, but each trial's epochs kept: ``curves[i]`` is the i-th trial's list of epoch metrics."""

    def __init__(self):
        self.curves = []

    def start_trial(self, number, cfg, values):
        self.curves.append([])

    def log_epoch(self, metrics, step):
        self.curves[-1].append(metrics)


def test_an_objective_window_averages_the_last_epochs_for_the_pruner_and_the_result(hydra_conf):
    plan = plan_for(*QUICK, "sweep.n_trials=3", "sweep.pruner.name=none", "train.restore_best=false",
                    "sweep.objective.window=4", "sweep.objective.metrics=[val_accuracy]",
                    "sweep.objective.directions=[maximize]", 'sweep.params={optimizer: sgd, train.epochs: 9}')
    tracker = CurveTracker()
    work(plan, tracker=tracker)
    trials = load(hydra_conf).trials
    assert [t.state for t in trials] == [S.COMPLETE] * 3 and len(tracker.curves) == 3
    for trial, epochs in zip(trials, tracker.curves):
        curve = [e["val_accuracy"] for e in epochs]
        assert len(curve) == 9 and len(set(curve[-4:])) > 1  # the window's epochs differ: a mean is not a last
        for epoch in range(1, 10):
            assert trial.intermediate_values[epoch] == pytest.approx(np.mean(curve[max(0, epoch - 4):epoch]))
        assert trial.value == pytest.approx(np.mean(curve[-4:]))
        assert trial.user_attrs["val_accuracy"] == curve[-1]  # the result: the last epoch's


def test_the_journal_is_fsynced_once_per_trial_state_change_and_holds_every_write(tmp_path, monkeypatch):
    from experiments.storage import open_storage

    synced = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(fd), real_fsync(fd)))
    path = tmp_path / "optuna.journal"
    study = optuna.create_study(study_name="s", storage=open_storage(str(path)))
    created = len(synced)
    trial = study.ask({"x": optuna.distributions.FloatDistribution(0, 1)})
    for epoch in range(5):
        trial.report(epoch / 10, epoch)
    trial.set_user_attr("val_accuracy", 0.9)
    study.tell(trial, 0.5)
    assert len(synced) - created == 2  # the trial's creation and its tell, not its param, reports and attr
    reread = optuna.load_study(study_name="s", storage=JournalStorage(JournalFileBackend(str(path))))
    (done,) = reread.trials
    assert done.intermediate_values == {e: e / 10 for e in range(5)} and done.user_attrs == {"val_accuracy": 0.9}
    assert done.value == 0.5 and "x" in done.params


@pytest.mark.parametrize("synced", [False, True])
def test_ctrl_c_during_a_journal_write_leaves_the_journal_unlocked(tmp_path, synced):
    from optuna.storages.journal._storage import JournalOperation

    from experiments.storage import TrialSyncedJournalBackend

    backend = TrialSyncedJournalBackend(str(tmp_path / "optuna.journal"))
    release = backend._lock.release

    def release_after_ctrl_c():  # Ctrl-C lands as the lock is about to be released
        os.kill(os.getpid(), signal.SIGINT)
        release()

    backend._lock.release = release_after_ctrl_c
    op = JournalOperation.SET_TRIAL_STATE_VALUES if synced else JournalOperation.SET_TRIAL_USER_ATTR
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)  # as in a terminal, even if started ignored
    try:
        with pytest.raises(KeyboardInterrupt):
            backend.append_logs([{"op_code": op, "worker_id": "w", "trial_id": 0}])
    finally:
        signal.signal(signal.SIGINT, previous)
    with open(backend._file_path) as other:  # released: another process's write does not wait
        fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
    assert len(list(backend.read_logs(0))) == 1


def test_a_relative_learning_rate_is_a_factor_of_the_chosen_optimizers_default(hydra_conf):
    from experiments.sweep import trial_values

    plan = plan_for("experiment=mnist1d", "tracking=none")  # optimizer.lr: tag(log, relative, interval(...))
    defaults = {name: compose(config_name="config", overrides=[f"optimizer={name}"]).optimizer.lr
                for name in plan.space["optimizer"].choices}
    assert len(set(defaults.values())) > 2  # the factor means other rates for other optimizers
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(8):
        trial = study.ask()
        values = trial_values(trial, plan)
        cfg = compose_trial(plan, values)
        factor = trial.params["optimizer.lr/default"]
        assert "optimizer.lr" not in trial.params
        assert cfg.optimizer.lr == pytest.approx(factor * defaults[cfg.optimizer.name], rel=1e-12)
        assert trial.user_attrs["optimizer.lr"] == cfg.optimizer.lr
        study.tell(trial, 0.0)
