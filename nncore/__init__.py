"""nncore: a NumPy-only multilayer perceptron, the maths of the slides made runnable.

Public API::

    net = Network([n_in, 64, 32, n_out], activation="relu", output="softmax",
                  dropout=0.1, dtype="float32", rng=np.random.default_rng(seed))
    opt = make_optimizer("adam", lr=1e-3)
    history = fit(net, X, y, optimizer=opt, epochs=20, batch_size=32, rng=rng,
                  X_val=X_val, y_val=y_val, callback=lambda m: m.val_cost < 0.05)
    net.save("weights.npz"); Network.load("weights.npz")

Registries map config strings to implementations: ``HIDDEN_ACTIVATIONS``,
``OUTPUT_ACTIVATIONS``, ``COSTS``, ``INITIALIZERS``, ``OPTIMIZERS``.
"""

from .activations import HIDDEN_ACTIVATIONS, OUTPUT_ACTIVATIONS
from .costs import COSTS
from .initializers import INITIALIZERS
from .network import Network
from .optimizers import OPTIMIZERS, Optimizer, make_optimizer
from .training import (
    DivergenceError,
    EpochMetrics,
    History,
    accuracy,
    check_inputs,
    default_cost,
    encode_targets,
    fit,
    train_epoch,
)

__all__ = [
    "COSTS", "HIDDEN_ACTIVATIONS", "INITIALIZERS", "OPTIMIZERS", "OUTPUT_ACTIVATIONS",
    "DivergenceError", "EpochMetrics", "History", "Network", "Optimizer",
    "accuracy", "check_inputs", "default_cost", "encode_targets", "fit", "make_optimizer",
    "train_epoch",
]
