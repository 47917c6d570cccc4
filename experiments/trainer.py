"""One training run from a composed config: build the network and optimizer, fit, evaluate.

Both the sweep's trials and ``mode=train`` go through :func:`train_config`, so a trial can be
replayed bit for bit from its resolved config.
"""

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from omegaconf import DictConfig, OmegaConf

import nncore

from .config import resolve_model
from .data import Dataset


@dataclass
class TrainResult:
    """A finished (or stopped) run: the trained net (the kept epoch's weights), its starting weights and its curves."""

    net: nncore.Network
    initial_params: np.ndarray  # (n_params,)
    history: nncore.History
    final: dict  # the kept epoch's metrics (restored_epoch), epochs_run, n_params

    def evaluate(self, X: np.ndarray, y: np.ndarray, cost: str, prefix: str) -> dict:
        """``{prefix_cost, prefix_accuracy}`` on another split (dropout off)."""
        X, Y = nncore.check_inputs(self.net, X, y)
        value, outputs = self.net.evaluate(X, Y, cost)
        metrics = {f"{prefix}_cost": value}
        if np.asarray(y).ndim == 1 and np.asarray(y).dtype.kind == "i":
            metrics[f"{prefix}_accuracy"] = nncore.accuracy(outputs, np.asarray(y))
        return metrics

    def test_metrics(self, cfg: DictConfig, data: Dataset) -> dict:
        """``{test_cost, test_accuracy}`` on ``data``'s held-out test split, with ``cfg``'s cost."""
        return self.evaluate(data.X_test, data.y_test, output_and_cost(cfg, data.task)[1], "test")


def output_and_cost(cfg: DictConfig, task: str) -> tuple[str, str]:
    """The output activation and cost, with ``auto`` resolved for the task."""
    output = cfg.model.output
    if output == "auto":
        output = "softmax" if task == "classification" else "identity"
    cost = cfg.train.cost
    if cost == "auto":
        cost = "cross_entropy" if task == "classification" else "squared_error"
    return output, cost


def build_network(cfg: DictConfig, data: Dataset, rng: np.random.Generator) -> nncore.Network:
    """The network the config describes, sized for the data."""
    output, _ = output_and_cost(cfg, data.task)
    n_out = data.n_classes if data.task == "classification" else data.y_train.reshape(len(data.y_train), -1).shape[1]
    return nncore.Network([data.X_train.shape[1], *resolve_model(cfg), n_out], cfg.model.activation, output,
                          dropout=cfg.model.dropout, init=cfg.model.init, dtype=cfg.train.dtype, rng=rng)


def build_optimizer(cfg: DictConfig) -> nncore.Optimizer:
    """The optimizer of ``cfg.optimizer`` with its own hyperparameters."""
    hyper = OmegaConf.to_container(cfg.optimizer, resolve=True)
    name = hyper.pop("name")
    return nncore.make_optimizer(name, **hyper)


class EarlyStopping:
    """Stops when the validation cost has not improved by ``min_delta`` for ``patience`` epochs."""

    def __init__(self, patience: int, min_delta: float):
        self.patience, self.min_delta = patience, min_delta
        self.best, self.waited = np.inf, 0

    def __call__(self, metrics: nncore.EpochMetrics) -> bool:
        if self.patience <= 0 or metrics.val_cost is None:
            return False
        if metrics.val_cost < self.best - self.min_delta:
            self.best, self.waited = metrics.val_cost, 0
            return False
        self.waited += 1
        return self.waited >= self.patience


class KeptEpoch:
    """The epoch a run ends on if it stops now: with ``restore_best``, the one of lowest validation
    cost so far, whose weights it keeps a copy of (Keras' ``restore_best_weights``); else the last."""

    def __init__(self, net: nncore.Network, restore_best: bool):
        self.net = net
        self.params = np.empty_like(net.params) if restore_best else None  # (n_params,)
        self.metrics: nncore.EpochMetrics | None = None

    def __call__(self, metrics: nncore.EpochMetrics) -> nncore.EpochMetrics:
        """Take the epoch that just ended; return the kept one."""
        if (self.metrics is None or metrics.val_cost is None  # no validation split: the last epoch
                or self.params is None or metrics.val_cost < self.metrics.val_cost):
            self.metrics = metrics
            if self.params is not None:
                self.params[...] = self.net.params
        return self.metrics

    def restore(self) -> None:
        """Put the kept epoch's weights back into the network."""
        if self.params is not None and self.metrics is not None:
            self.net.params[...] = self.params


def train_config(cfg: DictConfig, data: Dataset,
                 on_epoch: Callable[[nncore.EpochMetrics, nncore.EpochMetrics], bool] | None = None) -> TrainResult:
    """Train the network of ``cfg`` on ``data``; ``on_epoch(metrics, kept)`` may stop it (pruning).

    ``kept`` is the epoch the run would end on if it stopped now (``train.restore_best``: the
    lowest validation cost so far). The result's net, ``final`` metrics (with ``restored_epoch``)
    and the test metrics are that epoch's; ``history`` holds every epoch.
    Raises ``nncore.DivergenceError`` when a cost turns non-finite.
    """
    rng = np.random.default_rng(cfg.train.seed)
    net = build_network(cfg, data, rng)
    initial = net.params.copy()
    if cfg.train.get("order_seed") is not None:  # same initial weights, another data order
        rng = np.random.default_rng([cfg.train.order_seed, 1])
    early = EarlyStopping(cfg.train.early_stopping.patience, cfg.train.early_stopping.min_delta)
    restore_best = bool(cfg.train.restore_best)
    kept = KeptEpoch(net, restore_best)

    def callback(metrics: nncore.EpochMetrics) -> bool:
        now = kept(metrics)
        stop = bool(on_epoch(metrics, now)) if on_epoch is not None else False
        return early(metrics) or stop

    _, cost = output_and_cost(cfg, data.task)
    X_val, y_val = (data.X_val, data.y_val) if len(data.X_val) else (None, None)  # data.val_fraction=0: none
    with np.errstate(over="ignore", invalid="ignore"):  # a diverging run ends in DivergenceError, not warnings
        history = nncore.fit(net, data.X_train, data.y_train, optimizer=build_optimizer(cfg), epochs=cfg.train.epochs,
                             batch_size=cfg.train.batch_size, rng=rng, cost=cost, X_val=X_val, y_val=y_val,
                             callback=callback)
    kept.restore()
    final = kept.metrics.as_dict() if kept.metrics is not None else {}
    if restore_best and kept.metrics is not None:
        final["restored_epoch"] = kept.metrics.epoch
    final.pop("epoch", None)
    final.pop("time", None)
    final["epochs_run"] = len(history.epochs)
    final["n_params"] = net.n_params
    return TrainResult(net, initial, history, final)
