"""The Optuna study: claim trials up to ``sweep.n_trials``, train each, report, prune, record.

Every trial turns its sampled values into Hydra overrides and composes its own validated
config, so ``optimizer=adam`` brings Adam's defaults along. Workers are processes (forked
from the launching one, so data are loaded once); any number of ``run.py`` processes can
share one study: a lock around "count, then ask" keeps the study's total exact.
"""

import copy
import fcntl
import math
import multiprocessing
import os
import socket
import time
import traceback
from contextlib import contextmanager
from dataclasses import dataclass, field

import optuna
from hydra import compose
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import ConfigCompositionException
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import ConfigAttributeError, ConfigKeyError, OmegaConfBaseException
from threadpoolctl import threadpool_limits

import nncore

from .config import ConfigError, validate
from .data import load_dataset
from .search_space import SearchSpaceError, as_overrides, grid_of, parse_search_space, suggest
from .storage import describe, is_rdb, open_storage
from .tracking import make_tracker
from .trainer import train_config

INTERRUPTED = "interrupted (Ctrl-C)"
FINISHED = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED, optuna.trial.TrialState.FAIL)


class SweepError(RuntimeError):
    """A sweep that cannot start or must stop; the message is one line."""


@dataclass
class SweepPlan:
    """What every worker needs to run trials of one study (picklable)."""

    cfg: DictConfig                # the composed base config
    base_overrides: list[str]      # the user's overrides, minus the searched keys
    space: dict                    # key -> optuna distribution
    fixed: dict[str, str] = field(default_factory=dict)
    composed: dict = field(default_factory=dict, repr=False)  # compose_trial's cache, per process
    groups: dict = field(default_factory=dict, repr=False)    # key -> is a config group (cache)

    @property
    def directions(self) -> list[str]:
        return list(self.cfg.sweep.objective.directions)

    @property
    def metrics(self) -> list[str]:
        return list(self.cfg.sweep.objective.metrics)


def make_plan(cfg: DictConfig, overrides: list[str]) -> SweepPlan:
    """Parse the search space and keep the user's overrides that the space does not sample."""
    space, fixed = parse_search_space(OmegaConf.to_container(cfg.sweep.params, resolve=True))
    parser = OverridesParser.create()
    parsed = [parser.parse_override(o) for o in overrides]
    if any(o.key_or_group == "sweep.params" and not o.is_delete() and o.value() == {} for o in parsed):
        raise SearchSpaceError("sweep.params={}: an empty search space cannot be searched (and Hydra merges {} into "
                               "the configured space, changing nothing); name at least one key to search")
    searched = set(space) | set(fixed)
    kept = [o for o, p in zip(overrides, parsed) if p.key_or_group not in searched]
    plan = SweepPlan(cfg, kept, space, fixed)
    if cfg.sweep.sampler.name == "grid":
        grid_of(space)
    if len(plan.metrics) > 1 and cfg.sweep.pruner.name != "none":
        raise SweepError("pruning needs a single objective: set sweep.pruner.name=none for several metrics")
    return plan


def compose_trial(plan: SweepPlan, values: dict) -> DictConfig:
    """The validated config of one trial: base overrides + fixed + sampled values.

    Hydra composes base + fixed + the sampled group choices (``optimizer=adam``) once per
    combination of choices (a composition costs ~0.1 s, as much as a short trial); the sampled
    plain values are then set on a copy as Hydra sets them, with ``OmegaConf.update(merge=True)``.
    """
    parser = OverridesParser.create()
    groups, settings = [], []
    for text in as_overrides(values):
        override = parser.parse_override(text)
        name = override.key_or_group
        if name not in plan.groups:
            plan.groups[name] = bool(GlobalHydra.instance().config_loader().get_group_options(name))
        via_hydra = (plan.groups[name] or override.is_sweep_override() or override.is_add() or override.is_delete()
                     or override.is_force_add())
        (groups if via_hydra else settings).append(override)
    key = tuple(o.input_line for o in groups)
    if key not in plan.composed:
        plan.composed[key] = compose(config_name="config", overrides=plan.base_overrides + as_overrides(plan.fixed)
                                     + list(key))
    cfg = copy.deepcopy(plan.composed[key])
    for override in settings:
        try:
            OmegaConf.update(cfg, override.key_or_group, override.value(), merge=True)
        except (ConfigAttributeError, ConfigKeyError) as err:
            raise ConfigCompositionException(f"Could not override '{override.key_or_group}'.") from err
        except OmegaConfBaseException as err:
            raise ConfigCompositionException(f"Error merging override {override.input_line}") from err
    validate(cfg)
    return cfg


def make_sampler(cfg: DictConfig, plan: SweepPlan, worker: int) -> optuna.samplers.BaseSampler:
    """The configured sampler; each worker gets its own seed so they do not sample in lockstep,
    except grid, whose workers must share one: it shuffles the grid that trial numbers index."""
    s = cfg.sweep.sampler
    seed = None if s.seed is None else int(s.seed) + (0 if s.name == "grid" else worker)
    if s.name == "tpe":
        return optuna.samplers.TPESampler(seed=seed, n_startup_trials=s.n_startup_trials,
                                          multivariate=True, constant_liar=cfg.sweep.n_workers > 1)
    if s.name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if s.name == "grid":
        return _GridSampler(grid_of(plan.space), seed=seed)
    if s.name == "cmaes":
        return optuna.samplers.CmaEsSampler(seed=seed, n_startup_trials=s.n_startup_trials,
                                            warn_independent_sampling=False)
    return optuna.samplers.QMCSampler(seed=seed, warn_independent_sampling=False)


class _GridSampler(optuna.samplers.GridSampler):
    """Optuna's GridSampler minus its ``study.stop()`` after the last grid point: Optuna allows that
    call only inside ``study.optimize``, which the sweep does not use (claim_trial stops at the grid's size)."""

    def after_trial(self, study, trial, state, values) -> None:
        return None


def grid_size(plan: SweepPlan) -> int | None:
    """Points in the grid of a grid-sampler study; None for other samplers."""
    if plan.cfg.sweep.sampler.name != "grid":
        return None
    return math.prod(len(values) for values in grid_of(plan.space).values())


def make_pruner(cfg: DictConfig) -> optuna.pruners.BasePruner:
    """The configured pruner (``none`` never prunes)."""
    p = cfg.sweep.pruner
    if p.name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=p.n_startup_trials, n_warmup_steps=p.n_warmup_steps)
    if p.name == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=max(1, p.n_warmup_steps))
    return optuna.pruners.NopPruner()


def space_signature(plan: SweepPlan) -> str:
    """The search space and objective as text, stored with the study to refuse mixing."""
    parts = [f"{k}={optuna.distributions.distribution_to_json(d)}" for k, d in sorted(plan.space.items())]
    parts += [f"{k}={v}" for k, v in sorted(plan.fixed.items())]
    return "; ".join(parts + [f"objective={plan.metrics}:{plan.directions}"])


def open_study(plan: SweepPlan, worker: int = 0) -> optuna.Study:
    """Create the study or load it; refuse one made with another space or direction."""
    cfg = plan.cfg
    try:
        storage = open_storage(cfg.sweep.storage)
        study = optuna.create_study(study_name=cfg.study_name, storage=storage, load_if_exists=True,
                                    directions=plan.directions, sampler=make_sampler(cfg, plan, worker),
                                    pruner=make_pruner(cfg))
    except ValueError as err:
        if "direction" in str(err).lower():
            raise SweepError(f"study {cfg.study_name!r} in {describe(cfg.sweep.storage)} was made with other "
                             f"directions than {plan.directions}; start a new study with study_name=NEW_NAME") from None
        raise
    except Exception as err:  # unreachable server, bad URL, unreadable file
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise SweepError(f"cannot open sweep.storage={describe(cfg.sweep.storage)}: {reason}") from None
    signature = space_signature(plan)
    stored = study.user_attrs.get("search_space")
    if stored is None:
        study.set_user_attr("search_space", signature)
    elif stored != signature:
        raise SweepError(f"study {cfg.study_name!r} in {describe(cfg.sweep.storage)} was made with another search "
                         f"space or objective; start a new study with study_name=NEW_NAME (or restore the space)")
    return study


@contextmanager
def claim_lock(storage_url: str):
    """A lock shared by every process of this machine that claims trials in this storage."""
    path = os.path.abspath(os.path.expanduser(storage_url)) if not is_rdb(storage_url) else None
    if path is None and storage_url.startswith("sqlite:///"):
        path = os.path.abspath(storage_url[len("sqlite:///"):])
    if path is None:  # a server: its own transactions; the rare surplus trial is failed, see claim_trial
        yield
        return
    with open(path + ".claim-lock", "a") as handle:  # not ".lock": Optuna's journal uses that name
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def fail_dead_trials(study: optuna.Study) -> int:
    """Fail RUNNING trials whose process on this host is gone (a kill -9); returns how many."""
    host, failed = socket.gethostname(), 0
    for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        pid = t.user_attrs.get("pid")
        if t.user_attrs.get("host") == host and pid is not None and not _alive(int(pid)):
            study.tell(t.number, state=optuna.trial.TrialState.FAIL)
            failed += 1
    return failed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def claim_trial(study: optuna.Study, plan: SweepPlan):
    """A new trial if the study holds fewer than ``sweep.n_trials``; None when it is full."""
    limit = min(plan.cfg.sweep.n_trials, grid_size(plan) or plan.cfg.sweep.n_trials)
    with claim_lock(str(plan.cfg.sweep.storage)):
        if len(study.get_trials(deepcopy=False)) >= limit:
            return None
        trial = study.ask()
    trial.set_user_attr("host", socket.gethostname())
    trial.set_user_attr("pid", os.getpid())
    return trial


def count_failures(study: optuna.Study) -> int:
    """Failed trials that count against ``sweep.max_failures``: crashes and divergence
    (a trial whose process was killed or interrupted has no reason or an excused one)."""
    return sum(1 for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.FAIL,))
               if t.user_attrs.get("fail_reason") not in (None, INTERRUPTED))


def run_trial(study: optuna.Study, trial: optuna.Trial, plan: SweepPlan, tracker) -> str:
    """Train one trial and tell the study; returns "complete", "pruned" or "failed"."""
    values = suggest(trial, plan.space)
    metric = plan.metrics[0]  # once: reading the config costs ~0.2 ms, an epoch on digits ~10 ms
    single = len(plan.metrics) == 1 and metric != "n_params"
    pruned_at = []
    try:
        cfg = compose_trial(plan, values)
        tracker.start_trial(trial.number, cfg, values)
        data = load_dataset(cfg.data, cfg.train.seed)
        trial.set_user_attr("seed", int(cfg.train.seed))

        def on_epoch(metrics: nncore.EpochMetrics) -> bool:
            tracker.log_epoch(metrics.as_dict(), metrics.epoch)
            if not single:
                return False
            trial.report(getattr(metrics, metric), metrics.epoch)
            if trial.should_prune():
                pruned_at.append(metrics.epoch)
            return bool(pruned_at)

        result = train_config(cfg, data, on_epoch)
    except (nncore.DivergenceError, ConfigError, ValueError, FloatingPointError) as err:
        return _fail(study, trial, tracker, str(err).splitlines()[0])
    except KeyboardInterrupt:
        _fail(study, trial, tracker, INTERRUPTED)
        raise
    except Exception as err:
        return _fail(study, trial, tracker, f"{type(err).__name__}: {err}".splitlines()[0],
                     traceback.format_exc())
    final = result.final
    for key, value in final.items():
        trial.set_user_attr(key, value)
    if pruned_at:
        reason = f"pruned at epoch {pruned_at[0]} by the {plan.cfg.sweep.pruner.name} pruner"
        trial.set_user_attr("prune_reason", reason)
        study.tell(trial, state=optuna.trial.TrialState.PRUNED)
        tracker.end_trial("pruned", final, result, trial.user_attrs["prune_reason"])
        return "pruned"
    objective = [float(final[m]) for m in plan.metrics]
    study.tell(trial, objective)
    tracker.end_trial("complete", final, result)
    return "complete"


def _fail(study, trial, tracker, reason: str, details: str | None = None) -> str:
    trial.set_user_attr("fail_reason", reason[:1000])
    study.tell(trial, state=optuna.trial.TrialState.FAIL)
    tracker.end_trial("failed", {}, None, reason if details is None else f"{reason}\n{details}")
    return "failed"


def work(plan: SweepPlan, worker: int = 0, on_done=None, tracker=None) -> None:
    """Claim and run trials until the study holds ``n_trials`` or failures pass the bound.

    ``tracker``: a started tracker (experiments.tracking) to record into; None: one of its own.
    """
    cfg = plan.cfg
    with threadpool_limits(cfg.train.threads):
        study = open_study(plan, worker)
        own = tracker is None
        if own:
            tracker = make_tracker(cfg)
            tracker.start_study(study, cfg)
        try:
            deadline = None if cfg.sweep.timeout is None else time.monotonic() + cfg.sweep.timeout
            while deadline is None or time.monotonic() < deadline:
                if count_failures(study) > cfg.sweep.max_failures:
                    break
                trial = claim_trial(study, plan)
                if trial is None:
                    break
                state = run_trial(study, trial, plan, tracker)
                if on_done is not None:
                    on_done(study, state)
        finally:
            if own:
                tracker.close()


def _work_in_child(plan: SweepPlan, worker: int, tracker=None) -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        work(plan, worker, tracker=tracker)
    except KeyboardInterrupt:
        pass


def run_workers(plan: SweepPlan, on_progress, tracker=None) -> None:
    """``sweep.n_workers`` forked processes on the study; the caller's process watches.

    ``tracker``: a started tracker the workers inherit and record into (None: one each)."""
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_work_in_child, args=(plan, w, tracker), name=f"sweep-worker-{w}")
             for w in range(plan.cfg.sweep.n_workers)]
    for p in procs:
        p.start()
    study = open_study(plan)
    try:
        while any(p.is_alive() for p in procs):
            on_progress(study)
            time.sleep(0.5)
    finally:
        for p in procs:
            p.join()
    on_progress(study)
    crashed = [p.name for p in procs if p.exitcode not in (0, None)]
    if crashed:
        raise SweepError(f"{', '.join(crashed)} exited with an error; the study keeps every finished trial")


def study_counts(study: optuna.Study) -> dict[str, int]:
    """Trials by state: complete, pruned, failed, running."""
    states = [t.state for t in study.get_trials(deepcopy=False)]
    S = optuna.trial.TrialState
    return {"complete": states.count(S.COMPLETE), "pruned": states.count(S.PRUNED),
            "failed": states.count(S.FAIL), "running": states.count(S.RUNNING)}
