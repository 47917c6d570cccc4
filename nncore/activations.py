"""Activation functions applied in place, with derivatives expressed through the output.

Every hidden activation here has a derivative that is a function of its output
``a = σ(z)``, so backpropagation only keeps the activations, never ``z``.
Arrays are ``(batch, width)``.
"""

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

LEAKY_SLOPE = 0.01  # PyTorch's default negative_slope


def _sigmoid(z: np.ndarray) -> None:
    # σ(z) = (1 + tanh(z/2)) / 2: the same function, and it cannot overflow.
    z *= 0.5
    np.tanh(z, out=z)
    z += 1.0
    z *= 0.5


def _sigmoid_grad(delta: np.ndarray, a: np.ndarray) -> None:
    delta *= a * (1.0 - a)


def _relu(z: np.ndarray) -> None:
    np.maximum(z, 0.0, out=z)


def _relu_grad(delta: np.ndarray, a: np.ndarray) -> None:
    np.multiply(delta, a > 0, out=delta)


def _tanh(z: np.ndarray) -> None:
    np.tanh(z, out=z)


def _tanh_grad(delta: np.ndarray, a: np.ndarray) -> None:
    delta *= 1.0 - a * a


def _leaky_relu(z: np.ndarray) -> None:
    np.maximum(z, z * LEAKY_SLOPE, out=z)


def _leaky_relu_grad(delta: np.ndarray, a: np.ndarray) -> None:
    delta *= np.where(a > 0, 1.0, LEAKY_SLOPE).astype(delta.dtype, copy=False)


def _identity(z: np.ndarray) -> None:
    """Leaves ``z`` as it is."""


def _softmax(z: np.ndarray) -> None:
    z -= z.max(axis=1, keepdims=True)
    np.exp(z, out=z)
    z /= z.sum(axis=1, keepdims=True)


@dataclass(frozen=True)
class Activation:
    """``apply(z)`` turns pre-activations into activations in place;
    ``backward(delta, a)`` multiplies ``dC/da`` by ``σ'`` in place, given ``a = σ(z)``."""

    name: str
    apply: Callable[[np.ndarray], None]
    backward: Callable[[np.ndarray, np.ndarray], None]


HIDDEN_ACTIVATIONS = {
    "sigmoid": Activation("sigmoid", _sigmoid, _sigmoid_grad),
    "relu": Activation("relu", _relu, _relu_grad),
    "tanh": Activation("tanh", _tanh, _tanh_grad),
    "leaky_relu": Activation("leaky_relu", _leaky_relu, _leaky_relu_grad),
}

OUTPUT_ACTIVATIONS = {
    "softmax": _softmax,
    "sigmoid": _sigmoid,
    "identity": _identity,
}


def hidden_activation(name: str) -> Activation:
    """The hidden activation called ``name``; ``ValueError`` if there is none."""
    try:
        return HIDDEN_ACTIVATIONS[name]
    except (KeyError, TypeError):
        raise ValueError(
            f"unknown activation {name!r}; choose one of: {', '.join(sorted(HIDDEN_ACTIVATIONS))}"
        ) from None


def check_output(name: str) -> str:
    """``name`` if it is an output activation; ``ValueError`` otherwise."""
    if name not in OUTPUT_ACTIVATIONS:
        raise ValueError(
            f"unknown output {name!r}; choose one of: {', '.join(sorted(OUTPUT_ACTIVATIONS))}"
        )
    return name
