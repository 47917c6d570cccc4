"""A study's plan and each trial's config: the user's overrides plus the trial's sampled values.

Hydra composes the config of each combination of sampled config groups (``optimizer=adam``) once
per process (~0.1 s each, as much as a short trial); the sampled plain values are then set on a
copy as Hydra sets them. ``prestart`` lets run.py fork a process that composes every such
combination while run.py itself still starts up; the trials then read them from a folder.
This module imports neither scikit-learn nor the tracking code: run.py loads it before forking.
"""

from __future__ import annotations

import atexit
import hashlib
import itertools
import multiprocessing
import os
import pickle
import shutil
import signal
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from hydra import compose
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import ConfigCompositionException, HydraException
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import ConfigAttributeError, ConfigKeyError, OmegaConfBaseException
from optuna.distributions import CategoricalDistribution

from .config import validate
from .search_space import SearchSpaceError, as_overrides, grid_of, parse_search_space

MAX_PRECOMPOSED = 32  # combinations of group options composed ahead; a larger product is left to the trials


class SweepError(RuntimeError):
    """A sweep that cannot start or must stop; the message is one line."""


@dataclass
class SweepPlan:
    """What every worker needs to run trials of one study (picklable)."""

    cfg: DictConfig                # the composed base config
    base_overrides: list[str]      # the user's overrides, minus the searched keys
    space: dict                    # key -> optuna distribution
    fixed: dict[str, str] = field(default_factory=dict)
    via_hydra: dict[str, bool] = field(default_factory=dict)  # searched key -> set by Hydra's composition
    precomposed: str | None = None  # the folder the prestarted composer writes to (None: compose here)
    composed: dict = field(default_factory=dict, repr=False)  # group overrides -> pickled config, per process
    parsed: dict = field(default_factory=dict, repr=False)     # override text -> Hydra's parse (cache)

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
    plan = SweepPlan(cfg, kept, space, fixed, {key: _via_hydra(key) for key in space})
    if cfg.sweep.sampler.name == "grid":
        grid_of(space)
    if len(plan.metrics) > 1 and cfg.sweep.pruner.name != "none":
        raise SweepError("pruning needs a single objective: set sweep.pruner.name=none for several metrics")
    if _prestarted is not None and _prestarted.overrides == overrides:
        plan.precomposed = _prestarted.folder
    return plan


def compose_trial(plan: SweepPlan, values: dict) -> DictConfig:
    """The validated config of one trial: base overrides + fixed + sampled values.

    Equal to Hydra's composition of all of them: the sampled group choices (and any ``+key``,
    ``~key`` or sweep) are composed by Hydra, once per combination; the sampled plain values are
    set with ``OmegaConf.update(merge=True)``, as Hydra sets an override.
    """
    groups, settings = [], []
    for key, value in values.items():
        if key not in plan.via_hydra:  # a key from outside the space
            plan.via_hydra[key] = _via_hydra(key)
        text = as_overrides({key: value})[0]
        if type(value) in (int, float) and not plan.via_hydra[key]:
            settings.append((key, value, text))  # a number parses back to itself: no parsing needed
            continue
        override = _parse(plan, text)
        if plan.via_hydra[key] or override.is_sweep_override():
            groups.append(override.input_line)
        else:
            settings.append((override.key_or_group, override.value(), override.input_line))
    key = tuple(groups)
    if key not in plan.composed:
        plan.composed[key] = _precomposed(plan, key) or pickle.dumps(compose(config_name="config",
                                                                             overrides=_overrides(plan, key)))
    cfg = pickle.loads(plan.composed[key])  # a deep copy at a third of copy.deepcopy's cost
    for name, value, line in settings:
        try:
            OmegaConf.update(cfg, name, value, merge=True)
        except (ConfigAttributeError, ConfigKeyError) as err:
            raise ConfigCompositionException(f"Could not override '{name}'.") from err
        except OmegaConfBaseException as err:
            raise ConfigCompositionException(f"Error merging override {line}") from err
    validate(cfg)
    return cfg


def _parse(plan: SweepPlan, text: str):
    if text not in plan.parsed:
        plan.parsed[text] = OverridesParser.create().parse_override(text)
    return plan.parsed[text]


def _via_hydra(key: str) -> bool:
    """Whether a searched key needs Hydra's composition: a config group, or ``+key``/``~key``/``++key``."""
    override = OverridesParser.create().parse_override(f"{key}=0")
    group = bool(GlobalHydra.instance().config_loader().get_group_options(override.key_or_group))
    return group or override.is_add() or override.is_delete() or override.is_force_add()


def _overrides(plan: SweepPlan, groups: tuple[str, ...]) -> list[str]:
    return plan.base_overrides + as_overrides(plan.fixed) + list(groups)


def _file_name(overrides: list[str]) -> str:
    return hashlib.sha256("\n".join(overrides).encode()).hexdigest()[:32] + ".pkl"


def _precomposed(plan: SweepPlan, groups: tuple[str, ...]) -> bytes | None:
    """The pickled config the prestarted composer wrote for these group choices, if it has yet."""
    if plan.precomposed is None:
        return None
    try:
        return (Path(plan.precomposed) / _file_name(_overrides(plan, groups))).read_bytes()
    except FileNotFoundError:
        return None


def group_choices(plan: SweepPlan) -> list[tuple[str, ...]]:
    """Every combination of the options of the searched config groups, as ``compose_trial`` keys
    (``[("optimizer=sgd",), ...]`` for the default space; ``[()]`` when no group is searched)."""
    options = []
    for key, dist in plan.space.items():
        if plan.via_hydra[key]:
            if not isinstance(dist, CategoricalDistribution):
                return []
            options.append([as_overrides({key: choice})[0] for choice in dist.choices])
    return list(itertools.product(*options))


# ---------------------------------------------------------------------------- composing ahead
@dataclass
class Composer:
    """The prestarted composing process and the folder it writes to."""

    overrides: list[str]
    folder: str
    process: multiprocessing.Process
    owner: int
    done: object  # a multiprocessing.Event, set when the process has composed everything it will

    def end(self) -> None:
        """Stop the process if it still runs and remove its folder (only the launching process)."""
        if self.owner != os.getpid():
            return
        if self.process.is_alive():
            self.process.terminate()
        self.process.join()
        shutil.rmtree(self.folder, ignore_errors=True)


_prestarted: Composer | None = None


def prestart(cfg: DictConfig, overrides: list[str]) -> None:
    """Fork a process that composes the config of every combination of the searched groups' options
    (at most ``MAX_PRECOMPOSED``) for this run's study; ``make_plan`` with the same overrides reads them.
    Nothing for ``mode=train``. The folder goes at exit."""
    global _prestarted
    if cfg.mode != "sweep" or cfg.get("replay"):
        return
    if _prestarted is not None:  # a --multirun job before this one
        _prestarted.end()
    folder, ctx = tempfile.mkdtemp(prefix="run-py-configs-"), multiprocessing.get_context("fork")
    done = ctx.Event()
    process = ctx.Process(target=_compose_ahead, args=(cfg, overrides, folder, done), name="composer", daemon=True)
    process.start()
    _prestarted = Composer(list(overrides), folder, process, os.getpid(), done)
    atexit.unregister(_end_prestarted)  # registered once
    atexit.register(_end_prestarted)


def composing():
    """The prestarted composer's ``done`` event (``multiprocessing.Event``); None without one."""
    return None if _prestarted is None else _prestarted.done


def _end_prestarted() -> None:
    global _prestarted
    if _prestarted is not None:
        _prestarted.end()
        _prestarted = None


def _compose_ahead(cfg: DictConfig, overrides: list[str], folder: str, done) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the launching process's to handle
    try:
        _compose_all(cfg, overrides, folder)
    finally:
        done.set()


def _compose_all(cfg: DictConfig, overrides: list[str], folder: str) -> None:
    try:
        plan = make_plan(cfg, overrides)
    except (SearchSpaceError, SweepError, HydraException):
        return  # the launching process makes the same plan and reports the error
    for groups in group_choices(plan)[:MAX_PRECOMPOSED]:
        try:
            composed = compose(config_name="config", overrides=_overrides(plan, groups))
        except (HydraException, OmegaConfBaseException):
            continue  # a trial that draws this combination composes it again and reports the error
        path = Path(folder) / _file_name(_overrides(plan, groups))
        partial = path.with_suffix(".part")
        partial.write_bytes(pickle.dumps(composed))
        partial.rename(path)  # whole or absent: a trial never reads half a file
