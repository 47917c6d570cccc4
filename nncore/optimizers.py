"""Seven first-order optimizers in PyTorch's ``torch.optim`` conventions, float64-exact.

Each rule reads as shared/REFERENCE.md's optimizer table (t counts steps from 1; g = grads + λ·params,
L2 ``weight_decay`` λ) and updates one array ``params`` in place from ``grads``, allocating nothing
parameter-sized: each operation is one ufunc pass with ``out=``. An exponential average is stored without
its (1-β) factor, ``m̃ = m/(1-β)``, one pass fewer per update (:func:`_decay`; benchmarks/bench_core.py);
``torch_state()`` gives PyTorch's convention.
"""

import inspect
import math
import numbers
from collections.abc import Sequence

import numpy as np

_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def _number(name: str, value, rule: str = "> 0") -> float:
    """``value`` as a finite float obeying ``rule`` ("> 0", ">= 0" or "in [0, 1)"), else ValueError."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a real number, got {value!r}")
    x = float(value)
    if not (math.isfinite(x) and {"> 0": x > 0, ">= 0": x >= 0, "in [0, 1)": 0.0 <= x < 1.0}[rule]):
        raise ValueError(f"{name} must be {rule if math.isfinite(x) else 'finite'}, got {x!r}")
    return x


def _betas(value) -> tuple[float, float]:
    pair = list(value) if isinstance(value, (Sequence, np.ndarray)) and not isinstance(value, str) else None
    if pair is None or len(pair) != 2:
        raise ValueError(f"betas must be two values in [0, 1), got {value!r}")
    return _number("betas[0]", pair[0], "in [0, 1)"), _number("betas[1]", pair[1], "in [0, 1)")


# ------------------------------------------------------ the in-place passes the rules are written in
def _decay(avg: np.ndarray, beta: float, x: np.ndarray) -> None:
    """``avg = β avg + x`` (2 passes): an average kept without its (1-β) factor, or SGD's buffer."""
    np.multiply(avg, beta, out=avg)
    np.add(avg, x, out=avg)


def _descend(p: np.ndarray, rate: float, x: np.ndarray, out: np.ndarray) -> None:
    """``θ -= rate · x`` (1 pass when rate is 1, else 2; ``out`` may be ``x``)."""
    if rate != 1.0:
        x = np.multiply(x, rate, out=out)
    np.subtract(p, x, out=p)


def _descend_rms(p: np.ndarray, rate: float, x: np.ndarray, sq: np.ndarray, eps: float, s: np.ndarray) -> None:
    """``θ -= rate · x / (√sq + ε)`` through the scratch array ``s`` (5 passes, 4 when rate is 1)."""
    np.add(np.sqrt(sq, out=s), eps, out=s)
    _descend(p, rate, np.divide(x, s, out=s), s)


class Optimizer:
    """Argument checks, state, weight decay, step counter. A subclass names its state arrays in ``_state_names``
    (torch names, factors: ``_torch_names``); ``_update(params, grads, scratch, *state)`` applies its rule."""

    name = "optimizer"
    _state_names: tuple[str, ...] = ()
    _uses_scratch = True  # the rule needs the scratch array even without weight decay

    def __init__(self, lr, weight_decay=0.0, **unknown):
        if unknown:
            accepted = [p for p in inspect.signature(type(self).__init__).parameters if p not in ("self", "unknown")]
            raise ValueError(f"unknown argument{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))} for "
                             f"optimizer {self.name!r}; accepted: {', '.join(accepted)}")
        if lr is None:
            raise ValueError(f"lr is required for {self.name}")
        self.lr = _number("lr", lr)
        self.weight_decay = _number("weight_decay", weight_decay, ">= 0")
        self._torch_names: dict[str, tuple[str, float]] = {}  # state name: (torch name, factor)
        self.reset()

    def reset(self) -> None:
        """Forget the state: ``t = 0``, state and scratch arrays dropped (reallocated by the next step)."""
        self.t = 0
        self.state: dict[str, np.ndarray] = {}
        self._scratch: np.ndarray | None = None
        self._layout: tuple | None = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}(lr={self.lr!r}, weight_decay={self.weight_decay!r}, t={self.t})"

    def step(self, params: np.ndarray, grads: np.ndarray) -> None:
        """Update ``params`` in place from ``grads`` (same shape and dtype, float32 or float64); ``grads``
        is working space, unspecified afterwards. The first step allocates the state and scratch arrays."""
        self._check(params, grads)
        if self._layout is None:
            self._layout = (params.shape, params.dtype)
            self.state = {k: np.zeros(params.shape, params.dtype) for k in self._state_names}
            if self._uses_scratch or self.weight_decay:
                self._scratch = np.empty(params.shape, params.dtype)
        self.t += 1
        if self.weight_decay:  # g += λ θ (2 passes)
            np.add(grads, np.multiply(params, self.weight_decay, out=self._scratch), out=grads)
        self._update(params, grads, self._scratch, *(self.state[k] for k in self._state_names))

    def torch_state(self) -> dict:
        """The state in ``torch.optim``'s names and convention, as copies (for inspection only)."""
        arrays = {name: self.state[k] * factor for k, (name, factor) in self._torch_names.items() if k in self.state}
        return {"step": self.t, **arrays}

    def _check(self, params, grads) -> None:
        if not isinstance(params, np.ndarray) or not isinstance(grads, np.ndarray):
            raise ValueError(f"params and grads must be NumPy arrays, got {type(params).__name__} "
                             f"and {type(grads).__name__}")
        if params.dtype not in _DTYPES:
            raise ValueError(f"params dtype must be float32 or float64, got {params.dtype}")
        if grads.dtype != params.dtype or grads.shape != params.shape:
            raise ValueError(f"grads must match params, got {grads.dtype}{list(grads.shape)} for "
                             f"params {params.dtype}{list(params.shape)}")
        if not (params.flags.writeable and grads.flags.writeable):
            raise ValueError("params and grads must be writeable, got a read-only array")
        if np.may_share_memory(params, grads) and np.shares_memory(params, grads):
            raise ValueError("grads must not share memory with params, got overlapping arrays")
        if self._layout is not None and self._layout != (params.shape, params.dtype):
            raise ValueError(f"params changed from {self._layout[1]}{list(self._layout[0])} to "
                             f"{params.dtype}{list(params.shape)}; call reset() first")


# ------------------------------------------------------------------------------------------ the rules
class SGD(Optimizer):
    """SGD with optional (Nesterov) momentum, no dampening: ``b = μ b + g`` (``b₁ = g``),
    ``θ -= η (g + μ b)`` with nesterov, else ``θ -= η b``; without momentum ``θ -= η g``."""

    name = "sgd"

    def __init__(self, lr=None, *, momentum=0.0, nesterov=False, weight_decay=0.0, **unknown):
        super().__init__(lr, weight_decay=weight_decay, **unknown)
        self.momentum = _number("momentum", momentum, "in [0, 1)")
        if not isinstance(nesterov, (bool, np.bool_)):
            raise ValueError(f"nesterov must be True or False, got {nesterov!r}")
        self.nesterov = bool(nesterov)
        if self.nesterov and self.momentum == 0:
            raise ValueError(f"nesterov=True requires momentum > 0, got momentum={self.momentum!r}")
        self._state_names = ("b",) if self.momentum else ()
        self._torch_names = {"b": ("momentum_buffer", 1.0)}
        self._uses_scratch = self.nesterov

    def _update(self, p, g, s, b=None):
        mu = self.momentum
        if not mu:
            return _descend(p, self.lr, g, g)                      # θ -= η g
        if self.t == 1:
            np.copyto(b, g)                                        # b₁ = g
        else:
            _decay(b, mu, g)                                       # b = μ b + g
        if self.nesterov:
            _descend(p, self.lr, np.add(g, np.multiply(b, mu, out=s), out=g), g)  # θ -= η (g + μ b)
        else:
            _descend(p, self.lr, b, g)                             # θ -= η b


class RMSprop(Optimizer):
    """RMSprop: ``v = α v + (1-α) g²;  θ -= η g / (√v + ε)`` (ε outside the root)."""

    name = "rmsprop"
    _state_names = ("v",)

    def __init__(self, lr=0.01, *, alpha=0.99, eps=1e-8, weight_decay=0.0, **unknown):
        super().__init__(lr, weight_decay=weight_decay, **unknown)
        self.alpha = _number("alpha", alpha, "in [0, 1)")
        self.eps = _number("eps", eps)
        self._torch_names = {"v": ("square_avg", 1.0 - self.alpha)}

    def _update(self, p, g, s, v):
        _decay(v, self.alpha, np.square(g, out=s))                 # ṽ = α ṽ + g²,  v = (1-α) ṽ
        c = math.sqrt(1.0 - self.alpha)                            # √v = c √ṽ
        _descend_rms(p, self.lr / c, g, v, self.eps / c, s)        # θ -= η g / (√v + ε)


class Adagrad(Optimizer):
    """Adagrad: ``s = s + g²;  θ -= η g / (√s + ε)``."""

    name = "adagrad"
    _state_names = ("s",)

    def __init__(self, lr=0.01, *, eps=1e-10, weight_decay=0.0, **unknown):
        super().__init__(lr, weight_decay=weight_decay, **unknown)
        self.eps = _number("eps", eps)
        self._torch_names = {"s": ("sum", 1.0)}

    def _update(self, p, g, w, s):
        np.add(s, np.square(g, out=w), out=s)                      # s = s + g²
        _descend_rms(p, self.lr, g, s, self.eps, w)                # θ -= η g / (√s + ε)


class Adadelta(Optimizer):
    """Adadelta: ``v = ρ v + (1-ρ) g²;  Δ = √(u+ε)/√(v+ε) · g;  u = ρ u + (1-ρ) Δ²;  θ -= η Δ``."""

    name = "adadelta"
    _state_names = ("v", "u")

    def __init__(self, lr=1.0, *, rho=0.9, eps=1e-6, weight_decay=0.0, **unknown):
        super().__init__(lr, weight_decay=weight_decay, **unknown)
        self.rho = _number("rho", rho, "in [0, 1)")
        self.eps = _number("eps", eps)
        self._torch_names = {"v": ("square_avg", 1.0 - self.rho), "u": ("acc_delta", 1.0 - self.rho)}

    def _update(self, p, g, s, v, u):
        rho, eps = self.rho, self.eps / (1.0 - self.rho)           # ṽ = v/(1-ρ), ũ = u/(1-ρ), ε/(1-ρ):
        _decay(v, rho, np.square(g, out=s))                        # ṽ = ρ ṽ + g²   (1-ρ) cancels in Δ
        np.divide(g, np.sqrt(np.add(v, eps, out=s), out=s), out=g)                 # g / √(v + ε)
        delta = np.multiply(np.sqrt(np.add(u, eps, out=s), out=s), g, out=s)      # Δ = √(u + ε) · that
        _decay(u, rho, np.square(delta, out=g))                    # ũ = ρ ũ + Δ²
        _descend(p, self.lr, delta, delta)                         # θ -= η Δ


class _AdamFamily(Optimizer):
    """Adam's hyperparameters and moments (``m̃ = m/(1-β₁)``, ``ṽ = v/(1-β₂)``), shared by Adam, Adamax, NAdam."""

    def __init__(self, lr, betas, eps, weight_decay, **unknown):
        super().__init__(lr, weight_decay=weight_decay, **unknown)
        self.betas = _betas(betas)
        self.eps = _number("eps", eps)
        self._torch_names = {"m": ("exp_avg", 1.0 - self.betas[0]), "v": ("exp_avg_sq", 1.0 - self.betas[1]),
                             "u": ("exp_inf", 1.0)}

    def _moments(self, g, s, m, v) -> float:
        """``m`` and ``v = β₂ v + (1-β₂) g²`` (as ``ṽ = v/(1-β₂)``); returns ``k`` with ``√v̂ = k √ṽ``."""
        b1, b2 = self.betas
        _decay(m, b1, g)                                           # m̃ = β₁ m̃ + g
        _decay(v, b2, np.square(g, out=s))                         # ṽ = β₂ ṽ + g²
        return math.sqrt((1.0 - b2) / (1.0 - b2 ** self.t))


class Adam(_AdamFamily):
    """Adam: ``m = β₁m + (1-β₁)g;  v = β₂v + (1-β₂)g²;  θ -= η m̂ / (√v̂ + ε)`` (ε outside the root)."""

    name = "adam"
    _state_names = ("m", "v")

    def __init__(self, lr=1e-3, *, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, **unknown):
        super().__init__(lr, betas, eps, weight_decay, **unknown)

    def _update(self, p, g, s, m, v):
        k = self._moments(g, s, m, v)
        b1 = self.betas[0]                                         # m̂ = (1-β₁) m̃ / (1-β₁ᵗ)
        _descend_rms(p, self.lr * (1.0 - b1) / ((1.0 - b1 ** self.t) * k), m, v, self.eps / k, s)


class Adamax(_AdamFamily):
    """Adamax: ``m`` as adam; ``u = max(β₂u, |g| + ε);  θ -= η/(1-β₁ᵗ) · m/u``."""

    name = "adamax"
    _state_names = ("m", "u")

    def __init__(self, lr=2e-3, *, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, **unknown):
        super().__init__(lr, betas, eps, weight_decay, **unknown)

    def _update(self, p, g, s, m, u):
        b1, b2 = self.betas
        _decay(m, b1, g)                                           # m̃ = β₁ m̃ + g
        np.maximum(np.multiply(u, b2, out=u), np.add(np.absolute(g, out=g), self.eps, out=g), out=u)
        _descend(p, self.lr * (1.0 - b1) / (1.0 - b1 ** self.t), np.divide(m, u, out=s), s)


class NAdam(_AdamFamily):
    """NAdam (PyTorch's, with momentum decay ψ): ``μₜ = β₁(1 - ½·0.96^(tψ))``, ``m``, ``v`` as adam,
    ``θ -= η [(1-μₜ) g/(1-Πᵢ≤ₜ μᵢ) + μₜ₊₁ m/(1-Πᵢ≤ₜ₊₁ μᵢ)] / (√v̂ + ε)``; Πᵢ≤ₜ μᵢ is ``mu_product``."""

    name = "nadam"
    _state_names = ("m", "v")

    def __init__(self, lr=2e-3, *, betas=(0.9, 0.999), eps=1e-8, momentum_decay=4e-3, weight_decay=0.0,
                 **unknown):
        super().__init__(lr, betas, eps, weight_decay, **unknown)
        self.momentum_decay = _number("momentum_decay", momentum_decay, ">= 0")

    def reset(self) -> None:
        super().reset()
        self.mu_product = 1.0

    def _update(self, p, g, s, m, v):
        k = self._moments(g, s, m, v)
        mu, mu_next = (self.betas[0] * (1.0 - 0.5 * 0.96 ** (t * self.momentum_decay)) for t in (self.t, self.t + 1))
        self.mu_product *= mu
        prod, prod_next = self.mu_product, self.mu_product * mu_next
        # [(1-μₜ)/(1-Πₜ)] (g + r m̃) with r = μₜ₊₁ (1-β₁)(1-Πₜ) / ((1-μₜ)(1-Πₜ₊₁))
        r = mu_next * (1.0 - self.betas[0]) * (1.0 - prod) / ((1.0 - mu) * (1.0 - prod_next))
        np.add(g, np.multiply(m, r, out=s), out=g)
        _descend_rms(p, self.lr * (1.0 - mu) / ((1.0 - prod) * k), g, v, self.eps / k, s)

    def torch_state(self):
        return {**super().torch_state(), **({"mu_product": self.mu_product} if self.state else {})}


OPTIMIZERS: dict[str, type[Optimizer]] = {c.name: c for c in (SGD, RMSprop, Adagrad, Adadelta, Adam, Adamax, NAdam)}


def make_optimizer(name: str, **hyper) -> Optimizer:
    """The optimizer registered as ``name`` (case-insensitive), built with ``hyper``."""
    key = name.strip().lower() if isinstance(name, str) else None
    if key not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {name!r}; choose one of: {', '.join(sorted(OPTIMIZERS))}")
    return OPTIMIZERS[key](**hyper)
