"""Seven first-order optimizers in PyTorch's ``torch.optim`` conventions, float64-exact.

An optimizer updates one parameter array ``params`` in place from ``grads`` (same shape and
dtype; any shape, in practice the network's flat ``(n_params,)`` float32/float64 vector). With
t counting steps from 1 and g = grads + λ·params (L2 ``weight_decay`` λ, added into ``grads``):

    sgd       b = μ b + g (b₁ = g);  θ -= η (g + μ b) if nesterov else η b;  μ = 0: θ -= η g
    rmsprop   v = α v + (1-α) g²;  θ -= η g / (√v + ε)
    adagrad   s = s + g²;  θ -= η g / (√s + ε)
    adadelta  v = ρ v + (1-ρ) g²;  Δ = √(u + ε) / √(v + ε) · g;  u = ρ u + (1-ρ) Δ²;  θ -= η Δ
    adam      m = β₁ m + (1-β₁) g;  v = β₂ v + (1-β₂) g²;  θ -= η m̂ / (√v̂ + ε),
              m̂ = m / (1-β₁ᵗ),  v̂ = v / (1-β₂ᵗ)
    adamax    m as adam;  u = max(β₂ u, |g| + ε);  θ -= η / (1-β₁ᵗ) · m / u
    nadam     μₜ = β₁ (1 - ½·0.96^(t ψ));  m, v as adam;
              θ -= η [(1-μₜ) g / (1 - Πᵢ≤ₜ μᵢ) + μₜ₊₁ m / (1 - Πᵢ≤ₜ₊₁ μᵢ)] / (√v̂ + ε)

This is the training hot path, so a step allocates no parameter-sized array: every elementwise
operation is one in-place ufunc pass (``out=``) into the params, the grads (which are used as
working space: their contents are unspecified after ``step``), the state arrays or one scratch
array owned by the optimizer. Per-step scalars (bias corrections, step sizes) are Python floats
computed once in ``step``. Exponential averages are stored without their (1-β) factor
(``m̃ = m / (1-β₁)`` obeys ``m̃ = β₁ m̃ + g``, one pass fewer per average) and the factor is
folded into the step size; ``torch_state()`` gives the state in PyTorch's convention.
With ``n_threads > 1`` and at least ``PARALLEL_MIN_SIZE`` elements, the passes run on
contiguous chunks in a thread pool (NumPy ufuncs release the GIL); results are bitwise equal
to one thread.
"""

import inspect
import math
import numbers
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor, wait

import numpy as np

# Elements; smaller arrays are updated by the calling thread alone. Below a few million, the
# ~10 short ufunc calls per chunk spend their time handing the GIL over (benchmarks/bench_core.py:
# a 235k-parameter Adam step takes as long with 2 threads as with 1).
PARALLEL_MIN_SIZE = 1 << 21
_ALIGN = 64  # chunk boundaries are multiples of this many elements (whole cache lines)
_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


# ---------------------------------------------------------------------------------- validation
def _real(name: str, value) -> float:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a real number, got {value!r}")
    return float(value)


def _positive(name: str, value) -> float:
    x = _real(name, value)
    if not x > 0:  # also catches NaN
        raise ValueError(f"{name} must be > 0, got {x!r}")
    if math.isinf(x):
        raise ValueError(f"{name} must be finite, got {x!r}")
    return x


def _non_negative(name: str, value) -> float:
    x = _real(name, value)
    if not x >= 0:
        raise ValueError(f"{name} must be >= 0, got {x!r}")
    if math.isinf(x):
        raise ValueError(f"{name} must be finite, got {x!r}")
    return x


def _unit(name: str, value) -> float:
    x = _real(name, value)
    if not 0.0 <= x < 1.0:
        raise ValueError(f"{name} must be in [0, 1), got {x!r}")
    return x


def _betas(value) -> tuple[float, float]:
    pair = list(value) if isinstance(value, (Sequence, np.ndarray)) and not isinstance(value, str) else None
    if pair is None or len(pair) != 2:
        raise ValueError(f"betas must be two values in [0, 1), got {value!r}")
    return _unit("betas[0]", pair[0]), _unit("betas[1]", pair[1])


def _flag(name: str, value) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def _thread_count(value) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"n_threads must be an integer >= 1, got {value!r}")
    return int(value)


def _overlap(a: np.ndarray, b: np.ndarray) -> bool:
    try:
        return bool(np.shares_memory(a, b, max_work=100_000))
    except np.exceptions.TooHardError:
        return True


# ---------------------------------------------------------------------------------- base class
class Optimizer:
    """Base class: argument checks, state allocation, the step counter and the thread split.

    A subclass names its state arrays in ``_state_names`` (each shaped and typed like params,
    held in ``self.state``), computes its per-step scalars in ``_scalars()`` (called once per
    step, after ``t`` is incremented) and applies its rule to the slice ``[lo:hi]`` of params,
    grads, scratch and state in ``_update(lo, hi, scalars)``.
    """

    name = "optimizer"
    _state_names: tuple[str, ...] = ()
    _uses_scratch = True  # the rule needs the scratch array even without weight decay

    def __init__(self, lr, weight_decay=0.0, n_threads=1, **unknown):
        if unknown:
            accepted = [p for p in inspect.signature(type(self).__init__).parameters if p not in ("self", "unknown")]
            names = ", ".join(repr(k) for k in unknown)
            raise ValueError(f"unknown argument{'s' if len(unknown) > 1 else ''} {names} for optimizer "
                             f"{self.name!r}; accepted: {', '.join(accepted)}")
        if lr is None:
            raise ValueError(f"lr is required for {self.name}")
        self.lr = _positive("lr", lr)
        self.weight_decay = _non_negative("weight_decay", weight_decay)
        self.n_threads = _thread_count(n_threads)
        self._pool: ThreadPoolExecutor | None = None
        self._arrays: list | None = None
        self.reset()

    def reset(self) -> None:
        """Forget the state: ``t = 0``, state and scratch arrays dropped (reallocated by the next step)."""
        self.t = 0
        self.state: dict[str, np.ndarray] = {}
        self._scratch: np.ndarray | None = None
        self._layout: tuple | None = None

    def close(self) -> None:
        """Shut the worker threads down (a later parallel step starts new ones)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None

    def __getstate__(self):
        return {**self.__dict__, "_pool": None, "_arrays": None}

    def __repr__(self) -> str:
        return f"{type(self).__name__}(lr={self.lr!r}, weight_decay={self.weight_decay!r}, t={self.t})"

    # ------------------------------------------------------------------------------ public
    def step(self, params: np.ndarray, grads: np.ndarray) -> None:
        """Update ``params`` in place from ``grads`` (same shape and dtype, float32 or float64).

        ``grads`` is used as working space: its contents are unspecified afterwards. The state
        and scratch arrays are allocated on the first call and updated in place afterwards.
        """
        self._check(params, grads)
        if self._layout is None:
            self._allocate(params)
        self.t += 1
        scalars = self._scalars()
        flat = params.flags.c_contiguous and grads.flags.c_contiguous
        arrays = [params, grads, self._scratch, *(self.state[k] for k in self._state_names)]
        # C-contiguous arrays are sliced as flat views; otherwise one call on the whole arrays
        # ([0:size] along the first axis covers all of an array with ndim >= 1).
        self._arrays = [a.reshape(-1) if flat and a is not None else a for a in arrays]
        try:
            if flat and self.n_threads > 1 and params.size >= PARALLEL_MIN_SIZE:
                self._run_parallel(params.size, scalars)
            else:
                self._chunk(0, params.size, scalars)
        finally:
            self._arrays = None

    def torch_state(self) -> dict:
        """The state in ``torch.optim``'s names and convention, as copies (for inspection only)."""
        return {"step": self.t}

    # ------------------------------------------------------------------------------ internals
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
        if np.may_share_memory(params, grads) and _overlap(params, grads):
            raise ValueError("grads must not share memory with params, got overlapping arrays")
        if self._layout is not None and self._layout != (params.shape, params.dtype):
            raise ValueError(f"params changed from {self._layout[1]}{list(self._layout[0])} to "
                             f"{params.dtype}{list(params.shape)}; call reset() first")

    def _allocate(self, params: np.ndarray) -> None:
        self._layout = (params.shape, params.dtype)
        self.state = {k: np.zeros(params.shape, params.dtype) for k in self._state_names}
        if self._uses_scratch or self.weight_decay:
            self._scratch = np.empty(params.shape, params.dtype)

    def _run_parallel(self, size: int, scalars: tuple) -> None:
        n = self.n_threads
        bounds = [0, *((size * i // n) // _ALIGN * _ALIGN for i in range(1, n)), size]
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=n - 1, thread_name_prefix=f"nncore-{self.name}")
        futures = [self._pool.submit(self._chunk, bounds[i], bounds[i + 1], scalars) for i in range(1, n)]
        try:
            self._chunk(bounds[0], bounds[1], scalars)
        finally:
            wait(futures)
        for future in futures:
            future.result()  # re-raise a worker's exception

    def _slices(self, lo: int, hi: int) -> list:
        """Views ``[lo:hi]`` of params, grads, scratch and the state arrays, in that order."""
        return [None if a is None else a[lo:hi] for a in self._arrays]

    def _chunk(self, lo: int, hi: int, scalars: tuple) -> None:
        if self.weight_decay:  # g += λ θ (2 passes)
            p, g, s = self._slices(lo, hi)[:3]
            np.multiply(p, self.weight_decay, out=s)
            np.add(g, s, out=g)
        self._update(lo, hi, scalars)

    def _scalars(self) -> tuple:
        return ()

    def _update(self, lo: int, hi: int, scalars: tuple) -> None:
        raise NotImplementedError


# ---------------------------------------------------------------------------------- the rules
class SGD(Optimizer):
    """Stochastic gradient descent, optionally with (Nesterov) momentum, PyTorch style.

    ``b = μ b + g`` with ``b₁ = g`` (no dampening); ``θ -= η (g + μ b)`` with nesterov, else
    ``θ -= η b``; without momentum ``θ -= η g``. State ``b`` (momentum buffer, like params)
    only when μ > 0. Passes per step: 2 without momentum, 4 with, 6 with nesterov (one fewer
    when η = 1, one fewer on the first momentum step).
    """

    name = "sgd"

    def __init__(self, lr=None, *, momentum=0.0, nesterov=False, weight_decay=0.0, n_threads=1, **unknown):
        super().__init__(lr, weight_decay=weight_decay, n_threads=n_threads, **unknown)
        self.momentum = _unit("momentum", momentum)
        self.nesterov = _flag("nesterov", nesterov)
        if self.nesterov and self.momentum == 0:
            raise ValueError(f"nesterov=True requires momentum > 0, got momentum={self.momentum!r}")
        self._state_names = ("b",) if self.momentum else ()
        self._uses_scratch = self.nesterov

    def _scalars(self) -> tuple:
        return (self.t == 1,)

    def _update(self, lo, hi, scalars):
        (first,) = scalars
        p, g, s, *b = self._slices(lo, hi)
        lr, mu = self.lr, self.momentum
        d = g
        if mu:
            (b,) = b
            if first:
                np.copyto(b, g)
            else:
                np.multiply(b, mu, out=b)
                np.add(b, g, out=b)
            if self.nesterov:
                np.multiply(b, mu, out=s)
                np.add(g, s, out=g)
            else:
                d = b
        if lr != 1.0:
            np.multiply(d, lr, out=g)
            d = g
        np.subtract(p, d, out=p)

    def torch_state(self):
        out = super().torch_state()
        if "b" in self.state:
            out["momentum_buffer"] = self.state["b"].copy()
        return out


class RMSprop(Optimizer):
    """RMSprop: ``v = α v + (1-α) g²;  θ -= η g / (√v + ε)`` (ε outside the root).

    State ``v`` (like params) holds ``square_avg / (1-α)``, so ``v = α v + g²`` and
    ``θ -= η' g / (√v + ε')`` with ``c = √(1-α)``, ``η' = η/c``, ``ε' = ε/c``. 8 passes per step.
    """

    name = "rmsprop"
    _state_names = ("v",)

    def __init__(self, lr=0.01, *, alpha=0.99, eps=1e-8, weight_decay=0.0, n_threads=1, **unknown):
        super().__init__(lr, weight_decay=weight_decay, n_threads=n_threads, **unknown)
        self.alpha = _unit("alpha", alpha)
        self.eps = _positive("eps", eps)

    def _scalars(self):
        c = math.sqrt(1.0 - self.alpha)
        return self.lr / c, self.eps / c

    def _update(self, lo, hi, scalars):
        step, eps = scalars
        p, g, s, v = self._slices(lo, hi)
        np.multiply(g, g, out=s)
        np.multiply(v, self.alpha, out=v)
        np.add(v, s, out=v)
        np.sqrt(v, out=s)
        np.add(s, eps, out=s)
        np.divide(g, s, out=g)
        if step != 1.0:
            np.multiply(g, step, out=g)
        np.subtract(p, g, out=p)

    def torch_state(self):
        out = super().torch_state()
        if self.state:
            out["square_avg"] = self.state["v"] * (1.0 - self.alpha)
        return out


class Adagrad(Optimizer):
    """Adagrad: ``s = s + g²;  θ -= η g / (√s + ε)``. State ``s`` (like params). 7 passes per step."""

    name = "adagrad"
    _state_names = ("s",)

    def __init__(self, lr=0.01, *, eps=1e-10, weight_decay=0.0, n_threads=1, **unknown):
        super().__init__(lr, weight_decay=weight_decay, n_threads=n_threads, **unknown)
        self.eps = _positive("eps", eps)

    def _update(self, lo, hi, scalars):
        p, g, w, s = self._slices(lo, hi)
        np.multiply(g, g, out=w)
        np.add(s, w, out=s)
        np.sqrt(s, out=w)
        np.add(w, self.eps, out=w)
        np.divide(g, w, out=g)
        if self.lr != 1.0:
            np.multiply(g, self.lr, out=g)
        np.subtract(p, g, out=p)

    def torch_state(self):
        out = super().torch_state()
        if self.state:
            out["sum"] = self.state["s"].copy()
        return out


class Adadelta(Optimizer):
    """Adadelta: ``v = ρ v + (1-ρ) g²;  Δ = √(u+ε)/√(v+ε) · g;  u = ρ u + (1-ρ) Δ²;  θ -= η Δ``.

    States ``v``, ``u`` (like params) hold ``square_avg / (1-ρ)`` and ``acc_delta / (1-ρ)``, so
    both averages are ``x = ρ x + y`` and ``Δ = √(u + ε') / √(v + ε') · g`` with ``ε' = ε/(1-ρ)``
    (the (1-ρ) factors cancel in the ratio). 13 passes per step (14 when η ≠ 1).
    """

    name = "adadelta"
    _state_names = ("v", "u")

    def __init__(self, lr=1.0, *, rho=0.9, eps=1e-6, weight_decay=0.0, n_threads=1, **unknown):
        super().__init__(lr, weight_decay=weight_decay, n_threads=n_threads, **unknown)
        self.rho = _unit("rho", rho)
        self.eps = _positive("eps", eps)

    def _scalars(self):
        return (self.eps / (1.0 - self.rho),)

    def _update(self, lo, hi, scalars):
        (eps,) = scalars
        rho = self.rho
        p, g, s, v, u = self._slices(lo, hi)
        np.multiply(g, g, out=s)
        np.multiply(v, rho, out=v)
        np.add(v, s, out=v)
        np.add(v, eps, out=s)
        np.sqrt(s, out=s)
        np.divide(g, s, out=g)           # g / √(v+ε)
        np.add(u, eps, out=s)
        np.sqrt(s, out=s)
        np.multiply(s, g, out=s)         # Δ
        np.multiply(s, s, out=g)         # Δ²
        np.multiply(u, rho, out=u)
        np.add(u, g, out=u)
        if self.lr != 1.0:
            np.multiply(s, self.lr, out=s)
        np.subtract(p, s, out=p)

    def torch_state(self):
        out = super().torch_state()
        if self.state:
            out["square_avg"] = self.state["v"] * (1.0 - self.rho)
            out["acc_delta"] = self.state["u"] * (1.0 - self.rho)
        return out


class Adam(Optimizer):
    """Adam: ``m = β₁m + (1-β₁)g;  v = β₂v + (1-β₂)g²;  θ -= η m̂ / (√v̂ + ε)`` (ε outside the root).

    States ``m``, ``v`` (like params) hold ``exp_avg / (1-β₁)`` and ``exp_avg_sq / (1-β₂)``; with
    ``k = √((1-β₂)/(1-β₂ᵗ))`` the step is ``θ -= [η (1-β₁) / ((1-β₁ᵗ) k)] · m / (√v + ε/k)``,
    equal to the rule up to rounding. 10 passes per step.
    """

    name = "adam"
    _state_names = ("m", "v")

    def __init__(self, lr=1e-3, *, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, n_threads=1, **unknown):
        super().__init__(lr, weight_decay=weight_decay, n_threads=n_threads, **unknown)
        self.betas = _betas(betas)
        self.eps = _positive("eps", eps)

    def _scalars(self):
        b1, b2 = self.betas
        k = math.sqrt((1.0 - b2) / (1.0 - b2 ** self.t))
        return self.lr * (1.0 - b1) / ((1.0 - b1 ** self.t) * k), self.eps / k

    def _update(self, lo, hi, scalars):
        step, eps = scalars
        b1, b2 = self.betas
        p, g, s, m, v = self._slices(lo, hi)
        np.multiply(m, b1, out=m)
        np.add(m, g, out=m)
        np.multiply(g, g, out=s)
        np.multiply(v, b2, out=v)
        np.add(v, s, out=v)
        np.sqrt(v, out=s)
        np.add(s, eps, out=s)
        np.divide(m, s, out=s)
        np.multiply(s, step, out=s)
        np.subtract(p, s, out=p)

    def torch_state(self):
        out = super().torch_state()
        if self.state:
            out["exp_avg"] = self.state["m"] * (1.0 - self.betas[0])
            out["exp_avg_sq"] = self.state["v"] * (1.0 - self.betas[1])
        return out


class Adamax(Optimizer):
    """Adamax: ``m`` as adam; ``u = max(β₂u, |g| + ε);  θ -= η/(1-β₁ᵗ) · m/u``.

    States ``m`` (``exp_avg / (1-β₁)``) and ``u`` (``exp_inf``), like params; the step is
    ``θ -= [η (1-β₁)/(1-β₁ᵗ)] · m / u``. 9 passes per step.
    """

    name = "adamax"
    _state_names = ("m", "u")

    def __init__(self, lr=2e-3, *, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, n_threads=1, **unknown):
        super().__init__(lr, weight_decay=weight_decay, n_threads=n_threads, **unknown)
        self.betas = _betas(betas)
        self.eps = _positive("eps", eps)

    def _scalars(self):
        b1 = self.betas[0]
        return (self.lr * (1.0 - b1) / (1.0 - b1 ** self.t),)

    def _update(self, lo, hi, scalars):
        (step,) = scalars
        b1, b2 = self.betas
        p, g, s, m, u = self._slices(lo, hi)
        np.multiply(m, b1, out=m)
        np.add(m, g, out=m)
        np.absolute(g, out=g)
        np.add(g, self.eps, out=g)
        np.multiply(u, b2, out=u)
        np.maximum(u, g, out=u)
        np.divide(m, u, out=s)
        np.multiply(s, step, out=s)
        np.subtract(p, s, out=p)

    def torch_state(self):
        out = super().torch_state()
        if self.state:
            out["exp_avg"] = self.state["m"] * (1.0 - self.betas[0])
            out["exp_inf"] = self.state["u"].copy()
        return out


class NAdam(Optimizer):
    """NAdam (PyTorch's, with momentum decay ψ): ``μₜ = β₁(1 - ½·0.96^(tψ))``, ``m``, ``v`` as adam,
    ``θ -= η [(1-μₜ) g/(1-Πᵢ≤ₜ μᵢ) + μₜ₊₁ m/(1-Πᵢ≤ₜ₊₁ μᵢ)] / (√v̂ + ε)``.

    States ``m``, ``v`` (like params) as in :class:`Adam`; the running product Πᵢ≤ₜ μᵢ is a
    Python float updated once per step. With ``k = √((1-β₂)/(1-β₂ᵗ))``, ``a = η(1-μₜ)/((1-Πₜ)k)``
    and ``r = μₜ₊₁(1-β₁)(1-Πₜ) / ((1-μₜ)(1-Πₜ₊₁))`` the step is
    ``θ -= a (g + r m) / (√v + ε/k)``. 12 passes per step.
    """

    name = "nadam"
    _state_names = ("m", "v")

    def __init__(self, lr=2e-3, *, betas=(0.9, 0.999), eps=1e-8, momentum_decay=4e-3, weight_decay=0.0,
                 n_threads=1, **unknown):
        super().__init__(lr, weight_decay=weight_decay, n_threads=n_threads, **unknown)
        self.betas = _betas(betas)
        self.eps = _positive("eps", eps)
        self.momentum_decay = _non_negative("momentum_decay", momentum_decay)

    def reset(self) -> None:
        super().reset()
        self.mu_product = 1.0

    def _mu(self, t: int) -> float:
        return self.betas[0] * (1.0 - 0.5 * 0.96 ** (t * self.momentum_decay))

    def _scalars(self):
        b1, b2 = self.betas
        t = self.t
        mu, mu_next = self._mu(t), self._mu(t + 1)
        self.mu_product *= mu
        prod, prod_next = self.mu_product, self.mu_product * mu_next
        k = math.sqrt((1.0 - b2) / (1.0 - b2 ** t))
        a = self.lr * (1.0 - mu) / ((1.0 - prod) * k)
        r = mu_next * (1.0 - b1) * (1.0 - prod) / ((1.0 - mu) * (1.0 - prod_next))
        return a, r, self.eps / k

    def _update(self, lo, hi, scalars):
        a, r, eps = scalars
        b1, b2 = self.betas
        p, g, s, m, v = self._slices(lo, hi)
        np.multiply(m, b1, out=m)
        np.add(m, g, out=m)
        np.multiply(g, g, out=s)
        np.multiply(v, b2, out=v)
        np.add(v, s, out=v)
        np.multiply(m, r, out=s)
        np.add(g, s, out=g)
        np.sqrt(v, out=s)
        np.add(s, eps, out=s)
        np.divide(g, s, out=g)
        np.multiply(g, a, out=g)
        np.subtract(p, g, out=p)

    def torch_state(self):
        out = super().torch_state()
        if self.state:
            out["exp_avg"] = self.state["m"] * (1.0 - self.betas[0])
            out["exp_avg_sq"] = self.state["v"] * (1.0 - self.betas[1])
            out["mu_product"] = self.mu_product
        return out


OPTIMIZERS: dict[str, type[Optimizer]] = {
    cls.name: cls for cls in (SGD, RMSprop, Adagrad, Adadelta, Adam, Adamax, NAdam)
}


def make_optimizer(name: str, **hyper) -> Optimizer:
    """The optimizer registered as ``name`` (case-insensitive), built with ``hyper``."""
    key = name.strip().lower() if isinstance(name, str) else None
    if key not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {name!r}; choose one of: {', '.join(sorted(OPTIMIZERS))}")
    return OPTIMIZERS[key](**hyper)
