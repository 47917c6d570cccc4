"""The Optuna study: claim trials up to ``sweep.n_trials``, train each, report, prune, record.

Every trial turns its sampled values into Hydra overrides and composes its own validated
config (experiments.composition), so ``optimizer=adam`` brings Adam's defaults along. Workers
are processes (forked from the launching one, so data are loaded once); any number of
``run.py`` processes can share one study, on one machine (journal file) or many (PostgreSQL):
a lock around "count, then ask" (experiments.storage.exclusive) keeps the study's total exact.

Dead workers: on an RDB storage each running trial records a heartbeat (a thread: Optuna
records them only inside ``study.optimize``, the sweep uses ask and tell); before claiming,
a worker fails the trials whose heartbeat stopped and Optuna's retry callback queues each
again (a WAITING trial with the same parameters, which the next ``ask`` pops). How trials
count toward ``sweep.n_trials``: every trial counts except one that was retried, whose
retry takes its place; so a study ends with exactly ``n_trials`` counted trials plus one
FAIL record per retry. A worker with nothing left to claim waits while other trials still
run there, so that the trial of a worker that dies last is retried too.
"""

import collections
import math
import multiprocessing
import os
import socket
import threading
import time
import traceback
import warnings
from contextlib import contextmanager, suppress
from multiprocessing.connection import wait as wait_for
from pathlib import Path

import optuna
from omegaconf import DictConfig
from threadpoolctl import threadpool_limits

import nncore

from .composition import SweepError, SweepPlan, compose_trial, scaled_values
from .config import ConfigError, split_seed
from .data import load_dataset
from .interrupts import sigint_deferred
from .search_space import grid_of, relative_keys, suggest
from .storage import StorageError, claim_lock, describe, has_claim_lock, open_storage, scrub
from .tracking import STUDY_SECONDS, git_commit, make_tracker, window_means
from .trainer import train_config

INTERRUPTED = "interrupted (Ctrl-C)"
FINISHED = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED, optuna.trial.TrialState.FAIL)
S = optuna.trial.TrialState
WAIT_POLL = 1.0  # seconds between looks at the study of a worker waiting for the others' trials to end


def make_sampler(cfg: DictConfig, plan: SweepPlan, worker: int) -> optuna.samplers.BaseSampler:
    """The configured sampler; each worker (``worker``: its stream, see :func:`take_stream`) gets its
    own seed so they do not sample in lockstep, except grid, whose workers must share one: it
    shuffles the grid that trial numbers index. TPE lies about running trials (``constant_liar``) so
    that workers do not propose the same point; alone, a worker has no running trial to lie about."""
    s = cfg.sweep.sampler
    seed = None if s.seed is None else int(s.seed) + (0 if s.name == "grid" else worker)
    if s.name == "tpe":
        return optuna.samplers.TPESampler(seed=seed, n_startup_trials=s.n_startup_trials,
                                          multivariate=True, constant_liar=True)
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


def make_pruner(plan: SweepPlan) -> optuna.pruners.BasePruner:
    """The configured pruner (``none`` never prunes). Successive halving is one bracket of Hyperband.
    Hyperband's largest resource is the most epochs a trial of the plan can run, given rather than
    Optuna's ``"auto"`` (the longest of the first complete trials), which differs between workers and
    runs when the space samples ``train.epochs``; a study whose trials end before the first rung is
    never pruned."""
    p = plan.cfg.sweep.pruner
    if p.name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=p.n_startup_trials, n_warmup_steps=p.n_warmup_steps,
                                           interval_steps=p.interval_steps)
    if p.name == "percentile":
        return optuna.pruners.PercentilePruner(p.percentile, n_startup_trials=p.n_startup_trials,
                                               n_warmup_steps=p.n_warmup_steps, interval_steps=p.interval_steps)
    if p.name == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=p.min_resource, reduction_factor=p.reduction_factor,
                                              max_resource=max(most_epochs(plan), p.min_resource))
    if p.name == "successive_halving":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=p.min_resource, reduction_factor=p.reduction_factor,
                                                      min_early_stopping_rate=p.min_early_stopping_rate)
    return optuna.pruners.NopPruner()


def most_epochs(plan: SweepPlan) -> int:
    """The most epochs a trial of the plan can run: the top of a searched ``train.epochs``, else its value."""
    dist = plan.space.get("train.epochs")
    if dist is None:
        return int(plan.fixed.get("train.epochs", plan.cfg.train.epochs))
    return int(max(dist.choices) if isinstance(dist, optuna.distributions.CategoricalDistribution) else dist.high)


def pruning_checks(p: DictConfig):
    """epoch (1, 2, ...) -> whether the pruner may prune there, so that it is asked only then (an ask
    reads the study): as Optuna's median and percentile pruners, at the first epoch they may look at
    (``n_warmup_steps``, at least 1) and every ``interval_steps`` after; successive halving and hyperband
    at their rungs (``min_resource * reduction_factor**k`` from k = ``min_early_stopping_rate``, and
    from 0 for hyperband: those of every bracket); ``none`` never."""
    if p.name == "none":
        return lambda epoch: False
    if p.name in ("hyperband", "successive_halving"):
        factor = int(p.reduction_factor)
        skipped = int(p.min_early_stopping_rate) if p.name == "successive_halving" else 0
        first = int(p.min_resource) * factor**skipped

        def on_a_rung(epoch: int) -> bool:
            rung = first
            while rung < epoch:
                rung *= factor
            return rung == epoch

        return on_a_rung
    start = int(p.n_warmup_steps)
    every = int(p.interval_steps)

    def asked(epoch: int) -> bool:
        return epoch == max(start, 1) or (epoch > start and (epoch - start) % every == 0)

    return asked


def space_signature(plan: SweepPlan) -> str:
    """The search space and objective as text, stored with the study to refuse mixing. With
    ``train.restore_best`` the objective is the lowest-val_cost epoch's (studies made before it: the last's);
    a window of several epochs is named (one, the default, is not: studies made before it used one)."""
    parts = [f"{k}={optuna.distributions.distribution_to_json(d)}" for k, d in sorted(plan.space.items())]
    parts += [f"{k}={v}" for k, v in sorted(plan.fixed.items())]
    parts.append(f"objective={plan.metrics}:{plan.directions}" + (f":window={plan.window}" if plan.window > 1 else ""))
    if plan.cfg.train.restore_best:
        parts.append("result=the epoch of lowest val_cost")
    return "; ".join(parts)


def connect(plan: SweepPlan) -> optuna.storages.BaseStorage:
    """The study's storage (``sweep.storage``); ``SweepError`` naming it (password masked) when it cannot be used."""
    url = str(plan.cfg.sweep.storage)
    try:
        return open_storage(url)
    except StorageError as err:
        raise SweepError(scrub(str(err), url)) from None
    except Exception as err:  # unreachable server, bad URL, missing driver, unreadable file
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise SweepError(f"cannot open sweep.storage={describe(url)}: {scrub(reason, url)}") from None


def open_study(plan: SweepPlan, worker: int = 0, storage: optuna.storages.BaseStorage | None = None) -> optuna.Study:
    """Create the study or load it; refuse one made with another space or direction.

    ``storage``: an open storage (experiments.storage.open_storage); None: open ``sweep.storage``."""
    cfg = plan.cfg
    url = str(cfg.sweep.storage)
    storage = connect(plan) if storage is None else storage
    try:
        study = optuna.create_study(study_name=cfg.study_name, storage=storage, load_if_exists=True,
                                    directions=plan.directions, sampler=make_sampler(cfg, plan, worker),
                                    pruner=make_pruner(plan))
    except ValueError as err:
        if "direction" in str(err).lower():
            raise SweepError(f"study {cfg.study_name!r} in {describe(url)} was made with other "
                             f"directions than {plan.directions}; start a new study with study_name=NEW_NAME") from None
        raise SweepError(f"cannot open study {cfg.study_name!r} in {describe(url)}: "
                         f"{scrub(str(err).splitlines()[0], url)}") from None
    except Exception as err:  # the server went away between connecting and creating
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise SweepError(f"cannot open sweep.storage={describe(url)}: {scrub(reason, url)}") from None
    signature = space_signature(plan)
    stored = study.user_attrs.get("search_space")
    if stored is None:
        study.set_user_attr("search_space", signature)
    elif stored != signature:
        raise SweepError(f"study {cfg.study_name!r} in {describe(url)} was made with another search space or "
                         f"objective: {signature_difference(stored, signature)}; start a new study with "
                         f"study_name=NEW_NAME (or restore the space)")
    mismatch = code_mismatch(study)
    if mismatch and not cfg.sweep.allow_code_mismatch:
        raise SweepError(f"study {cfg.study_name!r} in {describe(url)}: {mismatch} (sweep.allow_code_mismatch=false); "
                         f"run that commit, or start a new study with study_name=NEW_NAME")
    return study


CODE_VERSION = "code_version"  # the study's user attr: the git commit of its first worker


def code_version() -> str | None:
    """The git commit this code runs from (None outside a git work tree)."""
    return git_commit(Path(__file__).resolve().parents[1])


def code_mismatch(study: optuna.Study) -> str | None:
    """How this worker's commit differs from the study's first worker's, or None. The first worker of a
    study (run from a git work tree) stores its commit as the user attr ``code_version``."""
    mine = code_version()
    stored = study.user_attrs.get(CODE_VERSION)
    if mine is None:
        return None
    if stored is None:
        study.set_user_attr(CODE_VERSION, mine)
        return None
    if stored != mine:
        return f"code_version={mine[:12]} here, the study's first worker ran {stored[:12]}"
    return None


def signature_difference(stored: str, signature: str) -> str:
    """The keys of two :func:`space_signature` texts that differ, for people (at most three)."""
    old, new = (dict(part.split("=", 1) for part in text.split("; ")) for text in (stored, signature))
    names = {"objective": "sweep.objective", "result": "train.restore_best"}
    shown = []
    for key in sorted(old.keys() | new.keys()):
        if old.get(key) == new.get(key):
            continue
        name = names.get(key, key)
        if key == "result":
            shown.append(f"{name}={'true' if key in new else 'false'} here, {'true' if key in old else 'false'} "
                         "in the study")
        elif key not in old:
            shown.append(f"{name}={readable(new[key])} here, not in the study")
        elif key not in new:
            shown.append(f"{name}={readable(old[key])} in the study, not here")
        else:
            shown.append(f"{name}={readable(new[key])} here, {readable(old[key])} in the study")
    return "; ".join(shown[:3]) + (f" (and {len(shown) - 3} more)" if len(shown) > 3 else "")


def readable(text: str) -> str:
    """A stored distribution (Optuna's JSON) in the Hydra sweeper grammar; any other value as it is."""
    try:
        dist = optuna.distributions.json_to_distribution(text)
    except (ValueError, KeyError, TypeError):
        return text
    if isinstance(dist, optuna.distributions.CategoricalDistribution):
        return f"choice({', '.join(map(str, dist.choices))})"
    if isinstance(dist, optuna.distributions.IntDistribution):  # Hydra's range stops before its end
        text = f"range({dist.low}, {dist.high + dist.step}{'' if dist.step == 1 else f', {dist.step}'})"
    else:
        text = f"interval({dist.low}, {dist.high})"
    return f"tag(log, {text})" if dist.log else text


def take_stream(study: optuna.Study, plan: SweepPlan) -> int:
    """A number no other worker of the study holds: 0, 1, 2, ... in the order workers start, on any
    machine (the study's user attr ``sampler_streams`` counts them). It offsets the worker's sampler
    seed: workers in other ``run.py`` processes would otherwise sample the same points."""
    with claim_lock(str(plan.cfg.sweep.storage), study.study_name):
        stream = int(study.user_attrs.get("sampler_streams", 0))
        study.set_user_attr("sampler_streams", stream + 1)
    return stream


def fail_dead_trials(study: optuna.Study, storage: optuna.storages.BaseStorage | None = None) -> int:
    """Fail RUNNING trials whose process on this host is gone (a kill -9); returns how many.

    ``storage``: the study's storage; when it retries dead workers' trials (RDB with heartbeats),
    each failed trial is queued again, as if its heartbeat had stopped."""
    host, failed = socket.gethostname(), 0
    for t in study.get_trials(deepcopy=False, states=(S.RUNNING,)):
        pid = t.user_attrs.get("pid")
        if t.user_attrs.get("host") == host and pid is not None and not _alive(int(pid)):
            failed += fail_and_retry(study, t.number, storage)
    return failed


def fail_unclaimed(study: optuna.Study, trials, storage) -> int:
    """Fail (and queue again) the RUNNING trials without a ``pid``; returns how many. A worker sets it,
    and records the trial's first heartbeat, before it lets go of the claim lock (:func:`claim_trial`),
    so seen under the lock such a trial's worker died claiming it (Optuna never fails a trial that has
    no heartbeat). Call it only under a claim lock that excludes (not MySQL's: see ``has_claim_lock``)."""
    unclaimed = [t.number for t in trials if t.state == S.RUNNING and "pid" not in t.user_attrs]
    return sum(fail_and_retry(study, number, storage) for number in unclaimed)


def fail_and_retry(study: optuna.Study, number: int, storage) -> bool:
    """Fail trial ``number`` for its dead worker; a storage that retries dead workers' trials (RDB with
    heartbeats) queues it again. False when another worker failed it first (and queued its retry): as in
    Optuna's ``fail_stale_trials``, only the worker whose write failed the trial queues the retry."""
    try:
        study.tell(number, state=S.FAIL)
    except (ValueError, optuna.exceptions.UpdateFinishedTrialError):  # finished before the read, or after it
        if not next(t for t in study.get_trials(deepcopy=False) if t.number == number).state.is_finished():
            raise
        return False
    retry = getattr(storage, "get_heartbeat_stale_trial_callback", lambda: None)()
    if retry is not None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            retry(study, next(x for x in study.get_trials(deepcopy=True) if x.number == number))
    return True


def fail_stale_trials(study: optuna.Study) -> None:
    """Fail the trials whose heartbeat stopped and queue their retries (RDB storages; nothing elsewhere)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)


def heartbeat_interval(storage) -> int | None:
    """Seconds between heartbeats of ``storage``, None when it records none (journal file)."""
    get = getattr(storage, "get_heartbeat_interval", None)
    return get() if get is not None else None


class Heartbeats:
    """The heartbeats of one worker's trials in ``storage`` (nothing on a storage without heartbeats).
    ``with heartbeats.beating(number) as taken:`` records trial ``number``'s heartbeat now, then every
    ``heartbeat_interval`` seconds in a daemon thread until the block ends; ``taken`` (an Event) is set
    once the trial is no longer RUNNING there: another worker failed it for a stale heartbeat."""

    def __init__(self, storage, study_name: str):
        self.storage, self.interval = storage, heartbeat_interval(storage)
        self.study_id = storage.get_study_id_from_name(study_name) if self.interval is not None else None

    def record(self, number: int) -> int | None:
        """Record trial ``number``'s heartbeat now; its trial id (None: no heartbeats here)."""
        if self.interval is None:
            return None
        trial_id = self.storage.get_trial_id_from_study_id_trial_number(self.study_id, number)
        self.storage.record_heartbeat(trial_id)
        return trial_id

    @contextmanager
    def beating(self, number: int):
        taken = threading.Event()
        trial_id = self.record(number)
        if trial_id is None:
            yield taken
            return
        stop = threading.Event()
        thread = threading.Thread(target=self._beat, args=(trial_id, stop, taken), name=f"heartbeat-{number}",
                                  daemon=True)
        thread.start()
        try:
            yield taken
        finally:
            stop.set()
            thread.join()

    def _beat(self, trial_id: int, stop: threading.Event, taken: threading.Event) -> None:
        while not stop.wait(self.interval):
            with suppress(Exception):  # the database is away (longer than the storage's reconnects): beat again
                self.storage.record_heartbeat(trial_id)
                if self.storage.get_trial(trial_id).state != S.RUNNING:
                    taken.set()
                    return


def retried_numbers(trials) -> set[int]:
    """Numbers of the trials that were retried (each retry names them in ``retry_history``)."""
    return {n for t in trials for n in t.system_attrs.get("retry_history", ())}


def counted(trials) -> int:
    """Trials that count toward ``sweep.n_trials``: all but those a retry took the place of."""
    return len(trials) - len(retried_numbers(trials))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def claim_trial(study: optuna.Study, plan: SweepPlan, heartbeats: Heartbeats | None = None):
    """A new trial if the study counts fewer than ``sweep.n_trials``, or a queued retry; None when it is full.
    (First, the trials whose heartbeat stopped, or whose worker died claiming them, are failed and queued
    again.) The trial's ``host``, ``pid`` and first heartbeat are recorded before the claim lock is let go.
    A trial failed meanwhile (the lock's database connection dropped, and with it the lock: another worker
    took the trial for unclaimed and queued it again) is let go, and the claim made again."""
    limit = min(plan.cfg.sweep.n_trials, grid_size(plan) or plan.cfg.sweep.n_trials)
    while True:
        with claim_lock(str(plan.cfg.sweep.storage), study.study_name):
            fail_stale_trials(study)
            trials = study.get_trials(deepcopy=False)
            if has_claim_lock(str(plan.cfg.sweep.storage)) and \
                    fail_unclaimed(study, trials, None if heartbeats is None else heartbeats.storage):
                trials = study.get_trials(deepcopy=False)
            waiting = any(t.state == S.WAITING for t in trials)  # a retry: counted already, ask() pops it
            if not waiting and counted(trials) >= limit:
                return None
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used with")
                trial = study.ask()
            try:
                trial.set_user_attr("host", socket.gethostname())  # a retry copied these from the dead trial
                trial.set_user_attr("pid", os.getpid())
            except optuna.exceptions.UpdateFinishedTrialError:
                continue
            if heartbeats is not None:
                heartbeats.record(trial.number)
        return trial


def others_running(study: optuna.Study, storage) -> bool:
    """True when the storage records heartbeats and trials of other workers still run (one may die:
    its retry needs a worker)."""
    if heartbeat_interval(storage) is None:
        return False
    return any(t.state in (S.RUNNING, S.WAITING) for t in study.get_trials(deepcopy=False))


def count_failures(study: optuna.Study) -> int:
    """Failed trials that count against ``sweep.max_failures``: crashes and divergence
    (a trial whose process was killed or interrupted has no reason or an excused one)."""
    return sum(1 for t in study.get_trials(deepcopy=False, states=(S.FAIL,))
               if t.user_attrs.get("fail_reason") not in (None, INTERRUPTED))


class TrialTakenOver(Exception):
    """The trial is no longer this worker's: another failed it for a stale heartbeat and runs it again."""


TAKEN_OVER = "its heartbeat went stale: another worker failed it and runs it again"


def run_trial(study: optuna.Study, trial: optuna.Trial, plan: SweepPlan, tracker,
              taken: threading.Event | None = None) -> str:
    """Train one trial and tell the study; returns "complete", "pruned", "failed" or "retried".

    ``taken``: set when another worker failed the trial for a stale heartbeat (``Heartbeats.beating``):
    the training stops at the next epoch and the trial's run ends KILLED, its retry runs elsewhere."""
    metric = plan.metrics[0]  # once: reading the config costs ~0.2 ms, an epoch on digits ~10 ms
    single = len(plan.metrics) == 1 and metric != "n_params"
    recent = collections.deque(maxlen=plan.window)  # the metric's values of the last `window` epochs
    checks = pruning_checks(plan.cfg.sweep.pruner)
    pruned_at = []
    try:
        with sigint_deferred():  # Ctrl-C here acts once the trial's run is open: the run then ends KILLED
            values = trial_values(trial, plan)
            cfg = compose_trial(plan, values)
            tracker.start_trial(trial.number, cfg, values)
        data = load_dataset(cfg.data, split_seed(cfg))
        trial.set_user_attr("seed", int(cfg.train.seed))
        last = int(cfg.train.epochs)  # a trial that ran every epoch completes: pruning it then saves nothing

        def on_epoch(metrics: nncore.EpochMetrics, kept: nncore.EpochMetrics) -> bool:
            if taken is not None and taken.is_set():
                raise TrialTakenOver(TAKEN_OVER)
            tracker.log_epoch(metrics.as_dict(), metrics.epoch)
            if not single:
                return False
            recent.append(getattr(kept, metric))
            trial.report(sum(recent) / len(recent), metrics.epoch)  # what the trial would return if it stopped now
            if metrics.epoch < last and checks(metrics.epoch) and trial.should_prune():  # the last: nothing to save
                pruned_at.append(metrics.epoch)
            return bool(pruned_at)

        result = train_config(cfg, data, on_epoch)
    except TrialTakenOver:
        return _taken_over(tracker)
    except (nncore.DivergenceError, ConfigError, ValueError, FloatingPointError) as err:
        return _fail(study, trial, tracker, str(err).splitlines()[0])
    except KeyboardInterrupt:
        _fail(study, trial, tracker, INTERRUPTED)
        raise
    except Exception as err:
        return _fail(study, trial, tracker, f"{type(err).__name__}: {err}".splitlines()[0],
                     traceback.format_exc())
    with sigint_deferred():  # Ctrl-C acts after the study and the trial's run both have its end
        try:
            return tell_result(study, trial, plan, tracker, result, pruned_at)
        except optuna.exceptions.UpdateFinishedTrialError:  # failed by another worker since the last epoch
            return _taken_over(tracker)


def tell_result(study: optuna.Study, trial: optuna.Trial, plan: SweepPlan, tracker, result,
                pruned_at: list[int]) -> str:
    """Record a trained trial's final metrics and tell the study it completed (or was pruned at
    ``pruned_at[0]``); "retried" when another worker took it for dead before the tell."""
    final = result.final
    for key, value in final.items():
        trial.set_user_attr(key, value)
    if pruned_at:
        reason = f"pruned at epoch {pruned_at[0]} by the {plan.cfg.sweep.pruner.name} pruner"
        trial.set_user_attr("prune_reason", reason)
        if study.tell(trial, state=S.PRUNED, skip_if_finished=True).state != S.PRUNED:
            return _taken_over(tracker)  # finished already: another worker took it for dead
        tracker.end_trial("pruned", final, result, reason)
        return "pruned"
    objective = objective_values(result, plan)
    told = study.tell(trial, objective, skip_if_finished=True)
    if told.state != S.COMPLETE and all(math.isfinite(v) for v in objective):  # (Optuna fails a NaN itself)
        return _taken_over(tracker)
    tracker.end_trial("complete", final, result)
    return "complete"


def objective_values(result, plan: SweepPlan) -> list[float]:
    """A trained trial's objective: each metric of ``sweep.objective.metrics`` averaged over the last
    ``sweep.objective.window`` epochs run (a window of 1, or ``n_params``: the result's value)."""
    if plan.window == 1:
        return [float(result.final[m]) for m in plan.metrics]
    averaged = window_means([m.as_dict() for m in result.history.epochs], plan.window)
    return [float(result.final[m]) if m == "n_params" else averaged[m] for m in plan.metrics]


def trial_values(trial: optuna.Trial, plan: SweepPlan) -> dict:
    """The trial's sampled values, each ``tag(relative, ...)`` factor scaled by the key's value in the
    trial's config without the sampled plain values (recorded as the user attr ``<key>``)."""
    values = scaled_values(plan, suggest(trial, plan.space))
    for key in relative_keys(plan.space):
        trial.set_user_attr(key, values[key])
    return values


def _fail(study, trial, tracker, reason: str, details: str | None = None) -> str:
    try:
        trial.set_user_attr("fail_reason", reason[:1000])
        study.tell(trial, state=S.FAIL, skip_if_finished=True)
    except optuna.exceptions.UpdateFinishedTrialError:  # failed by another worker that took it for dead
        return _taken_over(tracker)
    tracker.end_trial("failed", {}, None, reason if details is None else f"{reason}\n{details}")
    return "failed"


def _taken_over(tracker) -> str:
    tracker.end_trial("retried", {}, None, TAKEN_OVER)
    return "retried"


def work(plan: SweepPlan, worker: int = 0, on_done=None, tracker=None) -> None:
    """Claim and run trials until the study counts ``n_trials`` or failures pass the bound.

    ``tracker``: a started tracker (experiments.tracking) to record into; None: one of its own.
    On a storage with heartbeats, a worker with nothing to claim waits (looking every ``WAIT_POLL``
    seconds) while other trials run or wait, and runs the retry of any whose worker dies.
    """
    cfg = plan.cfg
    with threadpool_limits(cfg.train.threads):
        storage = connect(plan)
        study = open_study(plan, worker, storage)
        study.sampler = make_sampler(cfg, plan, take_stream(study, plan))
        heartbeats = Heartbeats(storage, study.study_name)
        own = tracker is None
        if own:
            tracker = make_tracker(cfg)
            tracker.start_study(study, cfg)
        try:
            deadline = None if cfg.sweep.timeout is None else time.monotonic() + cfg.sweep.timeout
            while deadline is None or time.monotonic() < deadline:
                if count_failures(study) > cfg.sweep.max_failures:
                    break
                trial = claim_trial(study, plan, heartbeats)
                if trial is None:
                    if not others_running(study, storage):
                        break
                    fail_dead_trials(study, storage)
                    time.sleep(WAIT_POLL)
                    continue
                with heartbeats.beating(trial.number) as taken:
                    state = run_trial(study, trial, plan, tracker, taken)
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
            ended = wait_for([p.sentinel for p in procs if p.is_alive()], timeout=0.5)  # wakes when a worker ends
            for p in procs:
                if p.sentinel in ended:
                    p.join(5)  # its sentinel closes a moment before it can be reaped: no spinning meanwhile
    finally:
        for p in procs:
            p.join()
    on_progress(study)
    crashed = [p.name for p in procs if p.exitcode not in (0, None)]
    if crashed:
        raise SweepError(f"{', '.join(crashed)} exited with an error; the study keeps every finished trial")


def add_study_seconds(study: optuna.Study, plan: SweepPlan, seconds: float) -> float:
    """Add one session's wall time (a ``run.py`` launch, its trials and waits) to the study's own
    time, ``study_seconds``; returns the new total. Concurrent launches add up (worker seconds)."""
    with claim_lock(str(plan.cfg.sweep.storage), study.study_name):
        total = float(study.user_attrs.get(STUDY_SECONDS, 0.0)) + float(seconds)
        study.set_user_attr(STUDY_SECONDS, total)
    return total


def tied_best(study: optuna.Study) -> list[int]:
    """The numbers of the complete trials whose objective equals the best value (single objective);
    more than one: the study cannot tell them apart (e.g. val_cost 0 from saturated outputs)."""
    if len(study.directions) > 1:
        return []
    complete = study.get_trials(deepcopy=False, states=(S.COMPLETE,))
    if not complete:
        return []
    best = study.best_value
    return [t.number for t in complete if t.value == best]


def study_counts(study: optuna.Study) -> dict[str, int]:
    """Trials by state: complete, pruned, failed, running, waiting (queued retries) and retried
    (failed trials whose retry took their place: not in ``failed``)."""
    trials = study.get_trials(deepcopy=False)
    retried = retried_numbers(trials)
    states = [t.state for t in trials if t.number not in retried]
    return {"complete": states.count(S.COMPLETE), "pruned": states.count(S.PRUNED),
            "failed": states.count(S.FAIL), "running": states.count(S.RUNNING),
            "waiting": states.count(S.WAITING), "retried": len(retried)}
