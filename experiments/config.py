"""Config schemas, their registration in Hydra's ConfigStore, and value checks.

The dataclasses below are the schemas of the groups in ``conf/``. Each YAML option
names its schema first in its defaults list (``defaults: [base_adam, _self_]``), so a
misspelt key, a wrong type or an unknown option fails when Hydra composes the config.
``validate`` then checks what types cannot express (ranges, option names, pairs of
fields that must agree) and raises ``ConfigError`` with a one-line message.
"""

from __future__ import annotations

import copy
import functools
import inspect
import math
from dataclasses import dataclass, field, make_dataclass
from typing import Any

import yaml
from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf

import nncore
from nncore import make_optimizer

# ---------------------------------------------------------------------------- choices
MODES = ("sweep", "train")
DATASETS = (
    "digits", "iris", "wine", "breast_cancer", "diabetes",
    "moons", "circles", "classification", "csv", "mnist1d",
)
GENERATORS = ("moons", "circles", "classification")
REGRESSION_DATASETS = ("diabetes",)
TASKS = ("classification", "regression")
AUTO = "auto"  # output, init, cost: chosen from the task and activation (experiments.trainer)
ACTIVATIONS = tuple(nncore.HIDDEN_ACTIVATIONS)
OUTPUTS = (AUTO, *nncore.OUTPUT_ACTIVATIONS)
INITS = (AUTO, *nncore.INITIALIZERS)
COSTS = (AUTO, *nncore.COSTS)
DTYPES = ("float32", "float64")
OPTIMIZERS = tuple(nncore.OPTIMIZERS)  # sgd, rmsprop, adagrad, adadelta, adam, adamax, nadam
SAMPLERS = ("tpe", "random", "grid", "cmaes", "qmc")
PRUNERS = ("median", "percentile", "hyperband", "successive_halving", "none")
METRICS = ("val_cost", "val_accuracy", "train_cost", "n_params")
# the experiments of conf/experiment/ whose findings analysis/folklore writes
FOLKLORE = ("activations", "batch_size", "minibatch_vs_fullbatch", "optimizers", "dropout", "local_minima",
            "hidden_layers", "mnist1d_paper", "mode_connectivity")
# their variants on another data set than the preset's: findings.name of conf/experiment/<name>.yaml
FOLKLORE_VARIANTS = {"batch_size_mnist1d": "batch_size", "optimizers_mnist1d": "optimizers",
                     "dropout_mnist1d": "dropout", "local_minima_mnist1d": "local_minima"}
DIRECTIONS = ("minimize", "maximize")
YAML_DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)  # libyaml when PyYAML has it: 5x faster


class ConfigError(ValueError):
    """A composed config holds a value that cannot be run; the message is one line."""


# ---------------------------------------------------------------------------- schemas
@dataclass
class Mnist1dConfig:
    """MNIST-1D's own options (``mnist1d.data.get_dataset_args``; the rest stay the package's)."""

    shuffle_seq: bool = False  # the paper's spatially shuffled variant: one fixed permutation of the 40 positions


@dataclass
class DataConfig:
    """Which data set, how it is split and scaled; generator and csv fields."""

    name: str = "digits"
    seed: int | None = None  # the split's (and a generator's) seed; None: train.seed
    val_fraction: float = 0.2
    test_fraction: float = 0.2
    scale: bool = True
    clip: float | None = None  # with scale: clip standardised features to [-clip, clip]; None: no clipping
    # sklearn generators (moons, circles: n_samples, noise; classification: the rest)
    n_samples: int = 1000
    noise: float = 0.2
    n_features: int = 20
    n_informative: int = 5
    n_classes: int = 2
    # csv / parquet file
    path: str | None = None
    target: str | None = None
    task: str = "classification"
    features: list[str] | None = None  # None: every column but the target
    # mnist1d: its fixed 4000/1000 train/test rows (test_fraction unused; val_fraction may be 0: no validation split)
    mnist1d: Mnist1dConfig = field(default_factory=Mnist1dConfig)


@dataclass
class ModelConfig:
    """A dense network. ``depth`` and ``width``, when set, replace ``hidden``."""

    hidden: list[int] = field(default_factory=lambda: [64])
    depth: int | None = None  # 0: no hidden layer
    width: int | None = None
    activation: str = "relu"
    output: str = "auto"
    init: str = "auto"
    dropout: float = 0.0


@dataclass
class OptimizerConfig:
    """Fields every optimizer has; each optimizer's schema adds its own."""

    name: str = MISSING
    lr: float = MISSING
    weight_decay: float = 0.0


def optimizer_schema(name: str) -> type:
    """The schema of optimizer ``name``, made from its nncore constructor: one field per keyword with
    nncore's default (the one home of every optimizer default; a tuple becomes a list), ``name`` set,
    and a required ``lr`` (SGD's) left MISSING for its YAML to give. Class name: ``<Optimizer>Config``."""
    cls = nncore.OPTIMIZERS[name]
    fields = [("name", str, field(default=name))]
    for p in inspect.signature(cls.__init__).parameters.values():
        if p.name == "self" or p.kind is p.VAR_KEYWORD:
            continue
        if p.default is inspect.Parameter.empty or p.default is None:
            fields.append((p.name, float, field(default=MISSING)))
        elif isinstance(p.default, tuple):
            fields.append((p.name, list[float], field(default_factory=functools.partial(list, p.default))))
        else:
            fields.append((p.name, type(p.default), field(default=p.default)))
    schema = make_dataclass(f"{cls.__name__}Config", fields, bases=(OptimizerConfig,))
    schema.__module__ = __name__  # pickled by name: configs cross into forked processes
    return schema


OPTIMIZER_SCHEMAS: dict[str, type] = {name: optimizer_schema(name) for name in OPTIMIZERS}
globals().update({schema.__name__: schema for schema in OPTIMIZER_SCHEMAS.values()})  # found by pickle


@dataclass
class EarlyStoppingConfig:
    patience: int = 0  # epochs without improvement of val_cost; 0 = off
    min_delta: float = 0.0


@dataclass
class TrainConfig:
    epochs: int = 20
    batch_size: int = 32
    cost: str = "auto"
    seed: int = 0  # initial weights, mini-batch order, dropout masks (and the data split: data.seed)
    order_seed: int | None = None  # mini-batch order and dropout only; None: continue train.seed's stream
    dtype: str = "float32"
    early_stopping: EarlyStoppingConfig = field(default_factory=EarlyStoppingConfig)
    restore_best: bool = True  # end on the weights of the epoch of lowest val_cost; False: the last epoch's
    threads: int = 1  # BLAS threads per worker (a trial: one process)


@dataclass
class SamplerConfig:
    name: str = "tpe"
    seed: int | None = 0
    n_startup_trials: int = 10


@dataclass
class PrunerConfig:
    name: str = "median"
    n_startup_trials: int = 5
    n_warmup_steps: int = 3
    percentile: float = 25.0  # percentile pruner: prune below the best this percentile of the trials at a step
    interval_steps: int = 1  # median, percentile: epochs between two checks, the first at n_warmup_steps
    min_resource: int = 1  # successive_halving, hyperband: rungs at min_resource * reduction_factor**k epochs
    reduction_factor: int = 3  # successive_halving, hyperband: 1 / the share of a rung's trials promoted
    min_early_stopping_rate: int = 0  # successive_halving: its first rung is k = this


@dataclass
class ObjectiveConfig:
    metrics: list[str] = field(default_factory=lambda: ["val_cost"])
    directions: list[str] = field(default_factory=lambda: ["minimize"])
    window: int = 1  # a trial's objective: each metric's mean over its last `window` epochs (1: the last's)


@dataclass
class SweepConfig:
    """An Optuna study. ``params`` maps dotted config keys to Hydra sweeper grammar."""

    n_trials: int = 50
    n_workers: int = 1
    storage: str = "optuna.journal"  # a journal file path, or an RDB URL with "://"
    max_failures: int = 10
    timeout: float | None = None  # seconds
    allow_code_mismatch: bool = True  # False: refuse a worker whose git commit is not the study's first worker's
    sampler: SamplerConfig = field(default_factory=SamplerConfig)
    pruner: PrunerConfig = field(default_factory=PrunerConfig)
    objective: ObjectiveConfig = field(default_factory=ObjectiveConfig)
    params: dict[str, str] = field(default_factory=dict)


@dataclass
class TrackingConfig:
    enabled: bool = True
    uri: str = "sqlite:///mlflow.db"
    experiment: str | None = None  # None: the study name (mode=train runs: <study_name>-train)
    log_weights: bool = True
    log_plots: bool = True
    flush_seconds: float = 10.0


@dataclass
class FindingsConfig:
    """What a folklore experiment (``conf/experiment/``) computes from its study once the sweep
    is over (``analysis/folklore``): a findings table (CSV, Markdown) and figures."""

    experiment: str | None = None  # one of FOLKLORE; None: no findings
    name: str | None = None  # a variant's (FOLKLORE_VARIANTS): its preset and findings folder; None: experiment
    out: str = "findings"  # folder, relative to the launch directory: <out>/<experiment>/
    seeds: int = 3  # runs per setting (the sweep's train.seed range)
    orders: int = 0  # local_minima: data orders per initial weights (train.order_seed range)
    threshold: float = 0.2  # τ: epochs (and seconds) to val_cost ≤ τ
    train_threshold: float | None = None  # the same for train_cost; None: threshold
    samples: int = 256  # batch_size: mini-batch gradients drawn per batch size


@dataclass
class Config:
    mode: str = "sweep"
    study_name: str = "digits-default"
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    optimizer: OptimizerConfig = MISSING
    train: TrainConfig = field(default_factory=TrainConfig)
    sweep: SweepConfig = field(default_factory=SweepConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    findings: FindingsConfig = field(default_factory=FindingsConfig)
    replay: str | None = None  # an MLflow run id: retrain that run's logged config (experiments.cli.replay)


SCHEMA_PREFIX = "base_"  # the ConfigStore names of the schemas: no option a user chooses


def register_configs() -> None:
    """Store the schemas in Hydra's ConfigStore (idempotent: storing again replaces).

    Names: ``base_config`` (root), ``data/base_data``, ``model/base_model``,
    ``optimizer/base_<name>``, ``train/base_train``, ``sweep/base_sweep``,
    ``tracking/base_tracking``.
    """
    cs = ConfigStore.instance()
    cs.store(name="base_config", node=Config)
    cs.store(group="data", name="base_data", node=DataConfig)
    cs.store(group="model", name="base_model", node=ModelConfig)
    for name, schema in OPTIMIZER_SCHEMAS.items():
        cs.store(group="optimizer", name=f"base_{name}", node=schema)
    cs.store(group="train", name="base_train", node=TrainConfig)
    cs.store(group="sweep", name="base_sweep", node=SweepConfig)
    cs.store(group="tracking", name="base_tracking", node=TrackingConfig)


# ---------------------------------------------------------------------------- derived
def split_seed(cfg: Any) -> int:
    """The seed of the data split (and of a generator): ``data.seed``, or ``train.seed`` when None."""
    cfg = _as_config(cfg)
    return int(cfg.train.seed if cfg.data.get("seed") is None else cfg.data.seed)


def _as_config(cfg: Any) -> DictConfig:
    """A DictConfig as is; a dict or dataclass as a DictConfig."""
    return cfg if isinstance(cfg, DictConfig) else OmegaConf.create(cfg)


def resolve_task(data_cfg: Any) -> str:
    """"classification" or "regression", from the data set's name (csv: ``data.task``)."""
    data_cfg = _as_config(data_cfg)
    if data_cfg.name == "csv":
        return str(data_cfg.task)
    return "regression" if data_cfg.name in REGRESSION_DATASETS else "classification"


def resolve_model(cfg: Any) -> list[int]:
    """The hidden-layer widths: ``[width] * depth`` when either is set, else ``hidden``.

    Accepts the root config or its ``model`` node (DictConfig or dicts). When only one of depth/width is set,
    the other comes from ``hidden`` (depth = len(hidden), width = hidden[0]).
    """
    model = cfg["model"] if "model" in cfg else cfg  # a DictConfig or plain dicts alike
    hidden = [int(w) for w in model["hidden"]]
    depth, width = model.get("depth"), model.get("width")
    if depth is None and width is None:
        return hidden
    depth = len(hidden) if depth is None else int(depth)
    if width is not None:
        width = int(width)
    elif hidden:
        width = hidden[0]
    else:
        raise ConfigError("model.width must be set when model.hidden is empty")
    return [width] * depth


def _yaml_text(value: Any) -> str:
    """A list as one line of flow-style YAML, e.g. "[64, 32]"."""
    return yaml.dump(value, Dumper=YAML_DUMPER, default_flow_style=True, width=10**9).strip()


def flatten(cfg: Any) -> dict[str, Any]:
    """The resolved config as flat dotted keys: ``{"optimizer.lr": 0.001, ...}``.

    ``model.hidden`` holds the widths after depth/width; lists become their YAML text
    ("[64, 32]"), None becomes "null"; keys of ``sweep.params`` keep their dots
    ("sweep.params.optimizer.lr"). Values are str, int, float or bool (MLflow params).
    """
    container = copy.deepcopy(cfg) if isinstance(cfg, dict) else OmegaConf.to_container(_as_config(cfg), resolve=True)
    if "model" in container:
        container["model"]["hidden"] = resolve_model(container["model"])
    flat: dict[str, Any] = {}

    def walk(node: dict[str, Any], prefix: str) -> None:
        for key, value in node.items():
            dotted = f"{prefix}{key}"
            if isinstance(value, dict):
                walk(value, dotted + ".")
            elif isinstance(value, (list, tuple)):
                flat[dotted] = _yaml_text(list(value))
            elif value is None:
                flat[dotted] = "null"
            else:
                flat[dotted] = value

    walk(container, "")
    return flat


# ---------------------------------------------------------------------------- checks
def _fail(message: str) -> None:
    raise ConfigError(message)


def _check_choice(key: str, value: Any, choices: tuple) -> None:
    if value not in choices:
        _fail(f"{key} must be one of {', '.join(choices)}; got {value!r}")


def _check_min(key: str, value: Any, low: float, strict: bool = False) -> None:
    """``value >= low`` (``> low`` when strict); NaN always fails."""
    ok = value > low if strict else value >= low
    if not ok or (isinstance(value, float) and math.isnan(value)):
        _fail(f"{key} must be {'>' if strict else '>='} {low:g}, got {value!r}")


def _check_unit(key: str, value: float, closed_high: bool = False) -> None:
    """``value`` in [0, 1) (or [0, 1] when closed_high)."""
    ok = 0.0 <= value <= 1.0 if closed_high else 0.0 <= value < 1.0
    if not ok:
        _fail(f"{key} must be in [0, 1{']' if closed_high else ')'}, got {value!r}")


def _validate_data(data: Any) -> None:
    _check_choice("data.name", data.name, DATASETS)
    fixed_test = data.name == "mnist1d"  # its own test rows: test_fraction unused, val_fraction 0 = no validation
    if fixed_test:
        _check_unit("data.val_fraction", data.val_fraction)
    for key in ("test_fraction",) if fixed_test else ("val_fraction", "test_fraction"):
        value = data[key]
        if not 0.0 < value < 1.0:
            _fail(f"data.{key} must be in (0, 1), got {value!r}")
    if data.get("seed") is not None:
        _check_min("data.seed", data.seed, 0)
    if data.get("clip") is not None:
        _check_min("data.clip", data.clip, 0.0, strict=True)
    total = data.val_fraction + data.test_fraction
    if total >= 1.0 and not fixed_test:
        _fail(
            "data.val_fraction + data.test_fraction must be < 1, "
            f"got {data.val_fraction!r} + {data.test_fraction!r} = {total:g}"
        )
    if data.name in GENERATORS:
        _check_min("data.n_samples", data.n_samples, 10)
        _check_min("data.noise", data.noise, 0.0)
    if data.name == "classification":
        _check_min("data.n_features", data.n_features, 1)
        _check_min("data.n_informative", data.n_informative, 1)
        _check_min("data.n_classes", data.n_classes, 2)
        if data.n_informative > data.n_features:
            _fail(
                f"data.n_informative must be <= data.n_features ({data.n_features}), "
                f"got {data.n_informative}"
            )
        if 2 * data.n_classes > 2**data.n_informative:  # 2 clusters per class
            _fail(
                f"data.n_classes must be <= 2**data.n_informative / 2 "
                f"({2**data.n_informative // 2}), got {data.n_classes}"
            )
    if data.name == "csv":
        _check_choice("data.task", data.task, TASKS)
        if not data.path:
            _fail(f"data.path is required when data.name is 'csv', got {data.path!r}")
        if not data.target:
            _fail(f"data.target is required when data.name is 'csv', got {data.target!r}")
        if data.features is not None and len(data.features) == 0:
            _fail("data.features must not be empty (null: every column but the target), got []")


def _validate_model(model: Any) -> None:
    if model.depth is None and model.width is None and len(model.hidden) == 0:
        _fail("model.hidden must not be empty")
    for i, width in enumerate(model.hidden):
        _check_min(f"model.hidden[{i}]", width, 1)
    if model.depth is not None:
        _check_min("model.depth", model.depth, 0)  # 0: no hidden layer (logistic regression with softmax)
    if model.width is not None:
        _check_min("model.width", model.width, 1)
    if model.width is None and model.depth is not None and len(model.hidden) == 0:
        _fail("model.width must be set when model.hidden is empty, got None")
    _check_choice("model.activation", model.activation, ACTIVATIONS)
    _check_choice("model.output", model.output, OUTPUTS)
    _check_choice("model.init", model.init, INITS)
    _check_unit("model.dropout", model.dropout)


def _validate_optimizer(opt: Any) -> None:
    _check_choice("optimizer.name", opt.name, OPTIMIZERS)
    schema = OmegaConf.get_type(opt)
    if schema in OPTIMIZER_SCHEMAS.values() and schema is not OPTIMIZER_SCHEMAS[opt.name]:
        _fail(
            f"optimizer.name must match the selected optimizer group option "
            f"({schema.__name__}), got {opt.name!r}; select it with optimizer={opt.name}"
        )
    hyper = OmegaConf.to_container(opt, resolve=True)
    hyper.pop("name")
    try:  # the optimizer's own checks, so config and core never disagree
        make_optimizer(opt.name, **hyper)
    except ValueError as err:
        _fail(f"optimizer.{err}")


def _validate_train(train: Any, task: str) -> None:
    _check_min("train.epochs", train.epochs, 1)
    _check_min("train.batch_size", train.batch_size, 1)
    _check_choice("train.cost", train.cost, COSTS)
    _check_choice("train.dtype", train.dtype, DTYPES)
    _check_min("train.threads", train.threads, 1)
    if train.order_seed is not None:
        _check_min("train.order_seed", train.order_seed, 0)
    _check_min("train.early_stopping.patience", train.early_stopping.patience, 0)
    _check_min("train.early_stopping.min_delta", train.early_stopping.min_delta, 0.0)
    if task == "regression" and train.cost == "cross_entropy":
        _fail("train.cost must not be cross_entropy for a regression data set, got 'cross_entropy'")


def _validate_sweep(sweep: Any) -> None:
    _check_min("sweep.n_trials", sweep.n_trials, 1)
    _check_min("sweep.n_workers", sweep.n_workers, 1)
    _check_min("sweep.max_failures", sweep.max_failures, 0)
    if sweep.timeout is not None:
        _check_min("sweep.timeout", sweep.timeout, 0.0, strict=True)
    if not sweep.storage:
        _fail(f"sweep.storage must not be empty, got {sweep.storage!r}")
    _check_choice("sweep.sampler.name", sweep.sampler.name, SAMPLERS)
    _check_min("sweep.sampler.n_startup_trials", sweep.sampler.n_startup_trials, 0)
    _check_choice("sweep.pruner.name", sweep.pruner.name, PRUNERS)
    _check_min("sweep.pruner.n_startup_trials", sweep.pruner.n_startup_trials, 0)
    _check_min("sweep.pruner.n_warmup_steps", sweep.pruner.n_warmup_steps, 0)
    _check_min("sweep.pruner.interval_steps", sweep.pruner.interval_steps, 1)
    _check_min("sweep.pruner.min_resource", sweep.pruner.min_resource, 1)
    _check_min("sweep.pruner.reduction_factor", sweep.pruner.reduction_factor, 2)
    _check_min("sweep.pruner.min_early_stopping_rate", sweep.pruner.min_early_stopping_rate, 0)
    if not 0 < sweep.pruner.percentile < 100:
        _fail(f"sweep.pruner.percentile must be between 0 and 100 (exclusive), got {sweep.pruner.percentile}")
    metrics, directions = list(sweep.objective.metrics), list(sweep.objective.directions)
    if not metrics:
        _fail("sweep.objective.metrics must not be empty")
    for i, metric in enumerate(metrics):
        _check_choice(f"sweep.objective.metrics[{i}]", metric, METRICS)
    for i, direction in enumerate(directions):
        _check_choice(f"sweep.objective.directions[{i}]", direction, DIRECTIONS)
    if len(metrics) != len(directions):
        _fail(
            "sweep.objective.directions must have one entry per metric "
            f"({len(metrics)}), got {directions}"
        )
    _check_min("sweep.objective.window", sweep.objective.window, 1)
    if len(metrics) > 1 and sweep.pruner.name != "none":
        _fail(
            f"sweep.pruner.name must be none with {len(metrics)} objectives "
            f"(Optuna cannot prune multi-objective studies), got {sweep.pruner.name!r}"
        )
    if len(metrics) > 1 and sweep.sampler.name == "cmaes":
        _fail(
            f"sweep.sampler.name must not be cmaes with {len(metrics)} objectives "
            "(CMA-ES is single-objective), got 'cmaes'"
        )


def _validate_tracking(tracking: Any) -> None:
    if tracking.enabled and not tracking.uri:
        _fail(f"tracking.uri must not be empty when tracking is enabled, got {tracking.uri!r}")
    _check_min("tracking.flush_seconds", tracking.flush_seconds, 0.0)


def _validate_findings(findings: Any) -> None:
    if findings.experiment is not None:
        _check_choice("findings.experiment", findings.experiment, FOLKLORE)
    if findings.name is not None:
        _check_choice("findings.name", findings.name, tuple(FOLKLORE_VARIANTS))
        if FOLKLORE_VARIANTS[findings.name] != findings.experiment:
            _fail(f"findings.name={findings.name} is a variant of findings.experiment="
                  f"{FOLKLORE_VARIANTS[findings.name]}, got findings.experiment={findings.experiment}")
    if not findings.out:
        _fail(f"findings.out must not be empty, got {findings.out!r}")
    _check_min("findings.seeds", findings.seeds, 1)
    _check_min("findings.orders", findings.orders, 0)
    _check_min("findings.threshold", findings.threshold, 0.0, strict=True)
    if findings.train_threshold is not None:
        _check_min("findings.train_threshold", findings.train_threshold, 0.0, strict=True)
    _check_min("findings.samples", findings.samples, 1)


def _validate_without_validation(cfg: Any) -> None:
    """data.val_fraction=0 (mnist1d: train on every training row): nothing may read a validation cost."""
    if cfg.train.early_stopping.patience > 0:
        _fail(f"train.early_stopping.patience needs a validation split (data.val_fraction=0), "
              f"got {cfg.train.early_stopping.patience}")
    if cfg.mode == "sweep":
        for i, metric in enumerate(cfg.sweep.objective.metrics):
            if metric.startswith("val_"):
                _fail(f"sweep.objective.metrics[{i}] needs a validation split (data.val_fraction=0); "
                      f"use train_cost, got {metric!r}")


def validate(cfg: Any) -> None:
    """Check the values of a composed config; raise ``ConfigError`` at the first bad one.

    ``cfg``: the composed root config (a DictConfig, or a dict of the same shape).
    The search-space strings in ``sweep.params`` are not checked here.
    """
    cfg = _as_config(cfg)
    _check_choice("mode", cfg.mode, MODES)
    if not cfg.study_name:
        _fail(f"study_name must not be empty, got {cfg.study_name!r}")
    _validate_data(cfg.data)
    task = resolve_task(cfg.data)
    _validate_model(cfg.model)
    if task == "regression" and cfg.model.output == "softmax":
        _fail("model.output must not be softmax for a regression data set, got 'softmax'")
    _validate_optimizer(cfg.optimizer)
    _validate_train(cfg.train, task)
    _validate_sweep(cfg.sweep)
    if cfg.sweep.objective.window > 1 and cfg.train.restore_best:
        _fail(f"sweep.objective.window must be 1 with train.restore_best=true (the objective is then the restored "
              f"epoch's), got {cfg.sweep.objective.window}")
    if cfg.data.val_fraction == 0:
        _validate_without_validation(cfg)
    _validate_tracking(cfg.tracking)
    if "findings" in cfg:
        _validate_findings(cfg.findings)
        if cfg.findings.experiment is not None and not cfg.tracking.enabled:
            _fail(f"findings.experiment={cfg.findings.experiment} reads its study's curves and weights from MLflow: "
                  "it needs tracking (drop tracking=none), got tracking.enabled=false")
