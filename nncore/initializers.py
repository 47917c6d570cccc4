"""Weight initialisers; biases always start at zero.

- ``glorot_uniform``: ``U(±√(6/(n_in+n_out)))``, for sigmoid and tanh.
- ``he_normal``: ``N(0, 2/n_in)``, for ReLU and leaky ReLU.
Draws are made in float64 from the run's generator, then cast, so a float32 and a float64
network built from the same seed start from the same weights up to rounding.
"""

import numpy as np


def glorot_uniform(rng: np.random.Generator, n_out: int, n_in: int) -> np.ndarray:
    """Weights ``(n_out, n_in)`` from ``U(±√(6/(n_in+n_out)))``."""
    limit = np.sqrt(6.0 / (n_in + n_out))
    return rng.uniform(-limit, limit, size=(n_out, n_in))


def he_normal(rng: np.random.Generator, n_out: int, n_in: int) -> np.ndarray:
    """Weights ``(n_out, n_in)`` from ``N(0, 2/n_in)``."""
    return rng.normal(0.0, np.sqrt(2.0 / n_in), size=(n_out, n_in))


INITIALIZERS = {"glorot_uniform": glorot_uniform, "he_normal": he_normal}


def default_init(activation: str) -> str:
    """He for the rectifiers, Glorot for the squashing functions."""
    return "he_normal" if activation in ("relu", "leaky_relu") else "glorot_uniform"


def initializer(name: str):
    """The initialiser called ``name``; ``ValueError`` if there is none."""
    try:
        return INITIALIZERS[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown init {name!r}; choose one of: {', '.join(sorted(INITIALIZERS))}") from None
