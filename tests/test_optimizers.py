"""Optimizers: hand-computed updates, dtypes, in-place state, allocations, bad input, PyTorch."""

import math
import pickle
import tracemalloc

import numpy as np
import pytest

from nncore import optimizers
from nncore.optimizers import OPTIMIZERS, Optimizer, make_optimizer

NAMES = ["adadelta", "adagrad", "adam", "adamax", "nadam", "rmsprop", "sgd"]

THETA0 = [0.5, -1.25, 2.0, -0.75]
# one gradient per step; the tiny entries make ε's place (inside/outside the root) visible
GRADS = [
    [0.3, -0.2, 1e-3, 2.5],
    [-0.6, 0.15, -2e-3, 1.5],
    [0.9, -0.05, 5e-4, -3.0],
]


# ------------------------------------------------------------------ the formulas, by hand
def hand_sgd(lr, momentum=0.0, nesterov=False, weight_decay=0.0):
    theta, buf, out = list(THETA0), [None] * 4, []
    for grad in GRADS:
        for i in range(4):
            g = grad[i] + weight_decay * theta[i]
            if momentum:
                buf[i] = g if buf[i] is None else momentum * buf[i] + g
                step = g + momentum * buf[i] if nesterov else buf[i]
            else:
                step = g
            theta[i] = theta[i] - lr * step
        out.append(list(theta))
    return out


def hand_rmsprop(lr=0.01, alpha=0.99, eps=1e-8, weight_decay=0.0):
    theta, v, out = list(THETA0), [0.0] * 4, []
    for grad in GRADS:
        for i in range(4):
            g = grad[i] + weight_decay * theta[i]
            v[i] = alpha * v[i] + (1 - alpha) * g * g
            theta[i] = theta[i] - lr * g / (math.sqrt(v[i]) + eps)
        out.append(list(theta))
    return out


def hand_adagrad(lr=0.01, eps=1e-10, weight_decay=0.0):
    theta, s, out = list(THETA0), [0.0] * 4, []
    for grad in GRADS:
        for i in range(4):
            g = grad[i] + weight_decay * theta[i]
            s[i] = s[i] + g * g
            theta[i] = theta[i] - lr * g / (math.sqrt(s[i]) + eps)
        out.append(list(theta))
    return out


def hand_adadelta(lr=1.0, rho=0.9, eps=1e-6, weight_decay=0.0):
    theta, v, u, out = list(THETA0), [0.0] * 4, [0.0] * 4, []
    for grad in GRADS:
        for i in range(4):
            g = grad[i] + weight_decay * theta[i]
            v[i] = rho * v[i] + (1 - rho) * g * g
            delta = math.sqrt(u[i] + eps) / math.sqrt(v[i] + eps) * g
            u[i] = rho * u[i] + (1 - rho) * delta * delta
            theta[i] = theta[i] - lr * delta
        out.append(list(theta))
    return out


def hand_adam(lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
    b1, b2 = betas
    theta, m, v, out = list(THETA0), [0.0] * 4, [0.0] * 4, []
    for t, grad in enumerate(GRADS, start=1):
        for i in range(4):
            g = grad[i] + weight_decay * theta[i]
            m[i] = b1 * m[i] + (1 - b1) * g
            v[i] = b2 * v[i] + (1 - b2) * g * g
            m_hat = m[i] / (1 - b1**t)
            v_hat = v[i] / (1 - b2**t)
            theta[i] = theta[i] - lr * m_hat / (math.sqrt(v_hat) + eps)
        out.append(list(theta))
    return out


def hand_adamax(lr=2e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
    b1, b2 = betas
    theta, m, u, out = list(THETA0), [0.0] * 4, [0.0] * 4, []
    for t, grad in enumerate(GRADS, start=1):
        for i in range(4):
            g = grad[i] + weight_decay * theta[i]
            m[i] = b1 * m[i] + (1 - b1) * g
            u[i] = max(b2 * u[i], abs(g) + eps)
            theta[i] = theta[i] - lr / (1 - b1**t) * m[i] / u[i]
        out.append(list(theta))
    return out


def hand_nadam(lr=2e-3, betas=(0.9, 0.999), eps=1e-8, momentum_decay=4e-3, weight_decay=0.0):
    b1, b2 = betas
    theta, m, v, out = list(THETA0), [0.0] * 4, [0.0] * 4, []
    mu_product = 1.0
    for t, grad in enumerate(GRADS, start=1):
        mu = b1 * (1 - 0.5 * 0.96 ** (t * momentum_decay))
        mu_next = b1 * (1 - 0.5 * 0.96 ** ((t + 1) * momentum_decay))
        mu_product = mu_product * mu            # Π_{i≤t} μ_i
        mu_product_next = mu_product * mu_next  # Π_{i≤t+1} μ_i
        for i in range(4):
            g = grad[i] + weight_decay * theta[i]
            m[i] = b1 * m[i] + (1 - b1) * g
            v[i] = b2 * v[i] + (1 - b2) * g * g
            v_hat = v[i] / (1 - b2**t)
            numerator = (1 - mu) * g / (1 - mu_product) + mu_next * m[i] / (1 - mu_product_next)
            theta[i] = theta[i] - lr * numerator / (math.sqrt(v_hat) + eps)
        out.append(list(theta))
    return out


HAND = {"sgd": hand_sgd, "rmsprop": hand_rmsprop, "adagrad": hand_adagrad, "adadelta": hand_adadelta,
        "adam": hand_adam, "adamax": hand_adamax, "nadam": hand_nadam}

# (name, hyperparameters): spec defaults, non-default values where ε matters, the η = 1 shortcut
HAND_CASES = [
    ("sgd", {"lr": 0.1}),
    ("sgd", {"lr": 0.1, "momentum": 0.9}),
    ("sgd", {"lr": 0.1, "momentum": 0.9, "nesterov": True}),
    ("sgd", {"lr": 1.0, "momentum": 0.5}),
    ("rmsprop", {}),
    ("rmsprop", {"lr": 0.05, "alpha": 0.9, "eps": 1e-3}),
    ("adagrad", {}),
    ("adagrad", {"lr": 0.1, "eps": 1e-3}),
    ("adadelta", {}),
    ("adadelta", {"lr": 0.5, "rho": 0.8, "eps": 1e-3}),
    ("adam", {}),
    ("adam", {"lr": 0.1, "betas": (0.8, 0.9), "eps": 1e-3}),
    ("adamax", {}),
    ("adamax", {"lr": 0.1, "betas": [0.8, 0.9], "eps": 1e-3}),
    ("nadam", {}),
    ("nadam", {"lr": 0.1, "betas": (0.8, 0.9), "eps": 1e-3, "momentum_decay": 0.05}),
]
HAND_CASES += [(name, {**hyper, "weight_decay": 0.05}) for name, hyper in HAND_CASES]


def case_id(name, hyper):
    return name + "".join(f"-{k}={v}" for k, v in hyper.items())


@pytest.mark.parametrize(("name", "hyper"), HAND_CASES, ids=[case_id(*c) for c in HAND_CASES])
def test_three_steps_match_the_formulas(name, hyper):
    expected = HAND[name](**hyper)
    opt = make_optimizer(name, **hyper)
    params = np.array(THETA0)
    for t, (grad, want) in enumerate(zip(GRADS, expected, strict=True), start=1):
        opt.step(params, np.array(grad))
        assert opt.t == t
        np.testing.assert_allclose(params, want, rtol=1e-12, atol=0, err_msg=f"step {t}")
    assert params.tolist() != THETA0


# ------------------------------------------------------------------ dtypes, state, in place
# every rule, plus the sgd variants and weight decay, each with a non-unit lr
VARIANTS = [
    ("sgd", {"lr": 0.1}),
    ("sgd", {"lr": 0.1, "momentum": 0.9}),
    ("sgd", {"lr": 0.1, "momentum": 0.9, "nesterov": True}),
    ("rmsprop", {}),
    ("adagrad", {}),
    ("adadelta", {"lr": 0.5}),
    ("adam", {}),
    ("adamax", {}),
    ("nadam", {}),
    ("adam", {"weight_decay": 0.01}),
    ("sgd", {"lr": 0.1, "momentum": 0.9, "weight_decay": 0.01}),
]
VARIANT_IDS = [case_id(*c) for c in VARIANTS]


def run(opt: Optimizer, params: np.ndarray, grads: list) -> np.ndarray:
    for g in grads:
        opt.step(params, g.copy())
    return params


@pytest.mark.parametrize(("name", "hyper"), VARIANTS, ids=VARIANT_IDS)
def test_float32_params_and_state_stay_float32_and_in_place(name, hyper):
    rng = np.random.default_rng(2)
    params = rng.normal(size=1000).astype(np.float32)
    grads = [rng.normal(size=1000).astype(np.float32) for _ in range(3)]
    reference = run(make_optimizer(name, **hyper), params.astype(np.float64), [g.astype(np.float64) for g in grads])
    opt = make_optimizer(name, **hyper)
    opt.step(params, grads[0].copy())
    state = dict(opt.state)
    scratch = opt._scratch
    for g in grads[1:]:
        opt.step(params, g.copy())
    assert params.dtype == np.float32
    assert opt.state.keys() == state.keys()
    assert (name == "sgd" and "momentum" not in hyper) or state
    for key, array in opt.state.items():
        assert array is state[key], key
        assert array.dtype == np.float32 and array.shape == params.shape
    assert opt._scratch is scratch
    np.testing.assert_allclose(params, reference, rtol=1e-4, atol=1e-5)


def test_non_contiguous_params_are_updated_in_place():
    base = np.stack([THETA0, [9.0] * 4], axis=1)  # (4, 2)
    params = base[:, 0]  # a strided view
    opt = make_optimizer("adam", lr=0.1, betas=(0.8, 0.9), eps=1e-3)
    for g in GRADS:
        opt.step(params, np.array(g))
    np.testing.assert_allclose(base[:, 0], hand_adam(lr=0.1, betas=(0.8, 0.9), eps=1e-3)[-1], rtol=1e-12)
    assert base[:, 1].tolist() == [9.0] * 4


@pytest.mark.parametrize(("name", "hyper"), VARIANTS, ids=VARIANT_IDS)
def test_steps_allocate_no_weight_sized_temporaries(name, hyper):
    size = 1_000_000  # 4 MB of float32
    rng = np.random.default_rng(3)
    params = rng.normal(size=size).astype(np.float32)
    grad = rng.normal(size=size).astype(np.float32)
    work = np.empty_like(grad)
    opt = make_optimizer(name, **hyper)
    np.copyto(work, grad)
    opt.step(params, work)  # step 1 allocates the state and the scratch array
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        for _ in range(4):  # steps 2..5
            np.copyto(work, grad)
            opt.step(params, work)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.reset_peak()
        control = np.empty_like(params)  # proves NumPy allocations are traced
        control_peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert control_peak >= control.nbytes
    assert peak < 100_000, f"{peak} bytes allocated during steps 2..5"


class CountingNumPy:
    """Stands in for ``np`` inside the optimizers module; counts array-sized ufunc passes."""

    def __init__(self, size):
        self.size, self.passes, self.without_out = size, 0, []

    def __getattr__(self, attr):
        obj = getattr(np, attr)
        if not (isinstance(obj, np.ufunc) or attr == "copyto"):
            return obj

        def counted(*args, **kwargs):
            out = args[0] if attr == "copyto" else kwargs.get("out")
            if isinstance(out, np.ndarray) and out.size == self.size:
                self.passes += 1
            elif out is None and any(isinstance(a, np.ndarray) and a.size == self.size for a in args):
                self.without_out.append(attr)
            return obj(*args, **kwargs)

        return counted


# array passes per step after the first; weight decay adds 2
PASSES = [
    ("sgd", {"lr": 0.1}, 2),
    ("sgd", {"lr": 0.1, "momentum": 0.9}, 4),
    ("sgd", {"lr": 0.1, "momentum": 0.9, "nesterov": True}, 6),
    ("rmsprop", {}, 8),
    ("adagrad", {}, 7),
    ("adadelta", {}, 13),
    ("adadelta", {"lr": 0.5}, 14),
    ("adam", {}, 10),
    ("adamax", {}, 9),
    ("nadam", {}, 12),
    ("adam", {"weight_decay": 0.01}, 12),
]


@pytest.mark.parametrize(("name", "hyper", "passes"), PASSES, ids=[case_id(n, h) for n, h, _ in PASSES])
def test_array_passes_per_step(name, hyper, passes, monkeypatch):
    size = 1000
    opt = make_optimizer(name, **hyper)
    params = np.linspace(-1.0, 1.0, size)
    opt.step(params, np.full(size, 0.5))
    counter = CountingNumPy(size)
    monkeypatch.setattr(optimizers, "np", counter)
    opt.step(params, np.full(size, -0.25))
    monkeypatch.undo()
    assert counter.without_out == []
    assert counter.passes == passes
    if name == "adam" and not hyper:
        assert counter.passes <= 11


# ------------------------------------------------------------------ API and bad input
def test_registry_and_defaults():
    assert sorted(OPTIMIZERS) == NAMES
    for name, cls in OPTIMIZERS.items():
        assert cls.name == name and issubclass(cls, Optimizer)
        assert isinstance(make_optimizer(name, lr=0.1), cls)
    assert make_optimizer("Adam").lr == 1e-3
    defaults = {
        "rmsprop": {"lr": 0.01, "alpha": 0.99, "eps": 1e-8},
        "adagrad": {"lr": 0.01, "eps": 1e-10},
        "adadelta": {"lr": 1.0, "rho": 0.9, "eps": 1e-6},
        "adam": {"lr": 1e-3, "betas": (0.9, 0.999), "eps": 1e-8},
        "adamax": {"lr": 2e-3, "betas": (0.9, 0.999), "eps": 1e-8},
        "nadam": {"lr": 2e-3, "betas": (0.9, 0.999), "eps": 1e-8, "momentum_decay": 4e-3},
    }
    for name, values in defaults.items():
        opt = make_optimizer(name)
        assert opt.weight_decay == 0.0
        for key, value in values.items():
            assert getattr(opt, key) == value, (name, key)
    sgd = make_optimizer("sgd", lr=0.1)
    assert (sgd.momentum, sgd.nesterov) == (0.0, False)
    assert make_optimizer("adam", betas=[0.5, 0.6]).betas == (0.5, 0.6)


def test_reset_forgets_the_state():
    opt = make_optimizer("nadam", lr=0.1)
    params = np.array(THETA0)
    run(opt, params, [np.array(g) for g in GRADS])
    opt.reset()
    assert opt.t == 0 and opt.state == {} and opt.mu_product == 1.0
    again = run(opt, np.array(THETA0), [np.array(g) for g in GRADS])
    fresh = run(make_optimizer("nadam", lr=0.1), np.array(THETA0), [np.array(g) for g in GRADS])
    assert np.array_equal(again, fresh)


def test_pickle_round_trip_after_a_step():
    opt = make_optimizer("adam")
    params, grad = np.ones(70000), np.full(70000, 0.5)
    opt.step(params, grad.copy())
    copy = pickle.loads(pickle.dumps(opt))
    a, b = params.copy(), params.copy()
    opt.step(a, grad.copy())
    copy.step(b, grad.copy())
    assert np.array_equal(a, b)


BAD = [
    ("adamw", {}, ["unknown optimizer 'adamw'", "adadelta, adagrad, adam, adamax, nadam, rmsprop, sgd"]),
    ("sgd", {}, ["lr is required for sgd"]),
    ("adam", {"lr": -0.1}, ["lr must be > 0, got -0.1"]),
    ("adam", {"lr": 0}, ["lr must be > 0, got 0"]),
    ("sgd", {"lr": float("nan")}, ["lr", "nan"]),
    ("rmsprop", {"lr": float("inf")}, ["lr", "inf"]),
    ("adam", {"lr": "1e-3"}, ["lr", "'1e-3'"]),
    ("adam", {"weight_decay": -1e-4}, ["weight_decay", "-0.0001"]),
    ("sgd", {"lr": 0.1, "weight_decay": float("nan")}, ["weight_decay", "nan"]),
    ("sgd", {"lr": 0.1, "momentum": 1.0}, ["momentum", "1.0"]),
    ("sgd", {"lr": 0.1, "momentum": -0.5}, ["momentum", "-0.5"]),
    ("sgd", {"lr": 0.1, "nesterov": True}, ["nesterov", "momentum", "0.0"]),
    ("sgd", {"lr": 0.1, "momentum": 0.9, "nesterov": "yes"}, ["nesterov", "'yes'"]),
    ("adam", {"betas": (0.9,)}, ["betas", "(0.9,)"]),
    ("adam", {"betas": (0.9, 0.99, 0.999)}, ["betas", "(0.9, 0.99, 0.999)"]),
    ("adam", {"betas": 0.9}, ["betas", "0.9"]),
    ("nadam", {"betas": "ab"}, ["betas", "'ab'"]),
    ("adamax", {"betas": (0.9, 1.0)}, ["betas[1]", "1.0"]),
    ("adam", {"betas": [-0.1, 0.9]}, ["betas[0]", "-0.1"]),
    ("adam", {"eps": 0.0}, ["eps", "0.0"]),
    ("adagrad", {"eps": -1e-10}, ["eps", "-1e-10"]),
    ("rmsprop", {"alpha": 1.0}, ["alpha", "1.0"]),
    ("rmsprop", {"alpha": -0.1}, ["alpha", "-0.1"]),
    ("adadelta", {"rho": 1.0}, ["rho", "1.0"]),
    ("adadelta", {"rho": 1.5}, ["rho", "1.5"]),
    ("nadam", {"momentum_decay": -1.0}, ["momentum_decay", "-1.0"]),
    ("sgd", {"lr": 0.1, "betas": (0.9, 0.99)}, ["'betas'", "'sgd'"]),
    ("adam", {"momentum": 0.9}, ["'momentum'", "'adam'"]),
    ("rmsprop", {"rho": 0.9, "amsgrad": True}, ["'rho'", "'amsgrad'", "'rmsprop'"]),
]


@pytest.mark.parametrize(("name", "hyper", "fragments"), BAD, ids=[case_id(n, h) for n, h, _ in BAD])
def test_bad_arguments_raise_value_error_naming_them(name, hyper, fragments):
    with pytest.raises(ValueError) as info:
        make_optimizer(name, **hyper)
    message = str(info.value)
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message


def test_bad_step_inputs_raise_value_error():
    opt = make_optimizer("adam")
    cases = [
        (np.zeros(4), np.zeros(5), "grads must match params"),
        (np.zeros(4), np.zeros(4, np.float32), "grads must match params"),
        (np.zeros(4, np.int64), np.zeros(4, np.int64), "params dtype must be float32 or float64, got int64"),
        ([0.0] * 4, np.zeros(4), "must be NumPy arrays, got list"),
    ]
    for params, grads, fragment in cases:
        with pytest.raises(ValueError, match=fragment):
            opt.step(params, grads)
    shared = np.zeros(8)
    for params, grads in [(shared, shared), (shared[:4], shared[2:6])]:
        with pytest.raises(ValueError, match="share memory"):
            opt.step(params, grads)
    opt.step(shared[::2], shared[1::2])  # interleaved but disjoint is fine
    opt.reset()
    frozen = np.zeros(4)
    frozen.flags.writeable = False
    with pytest.raises(ValueError, match="writeable"):
        opt.step(frozen, np.zeros(4))
    assert opt.t == 0
    opt.step(np.zeros(4), np.ones(4))
    with pytest.raises(ValueError, match=r"params changed from float64\[4\] to float64\[5\]; call reset"):
        opt.step(np.zeros(5), np.ones(5))
    opt.reset()
    opt.step(np.zeros(5), np.ones(5))


# ------------------------------------------------------------------ PyTorch cross-check
TORCH_CASES = [
    ("sgd", {"lr": 0.1}),
    ("sgd", {"lr": 0.1, "momentum": 0.9}),
    ("sgd", {"lr": 0.1, "momentum": 0.9, "nesterov": True, "weight_decay": 0.01}),
    ("rmsprop", {"alpha": 0.9}),
    ("adagrad", {"lr": 0.1}),
    ("adadelta", {}),
    ("adam", {"lr": 0.01, "weight_decay": 0.01}),
    ("adamax", {"betas": (0.8, 0.95)}),
    ("nadam", {"lr": 0.01, "momentum_decay": 0.05}),
]


def test_matches_torch_optim():
    torch = pytest.importorskip("torch")
    classes = {"sgd": torch.optim.SGD, "rmsprop": torch.optim.RMSprop, "adagrad": torch.optim.Adagrad,
               "adadelta": torch.optim.Adadelta, "adam": torch.optim.Adam, "adamax": torch.optim.Adamax,
               "nadam": torch.optim.NAdam}
    assert {name for name, _ in TORCH_CASES} == set(OPTIMIZERS)
    rng = np.random.default_rng(4)
    default_dtype = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)  # NAdam keeps its μ product in the default dtype
    try:
        for name, hyper in TORCH_CASES:
            theta0 = rng.normal(size=64)
            grads = [rng.normal(size=64) * 10.0 ** rng.integers(-3, 2, size=64) for _ in range(5)]
            ours = make_optimizer(name, **hyper)
            params = theta0.copy()
            weight = torch.tensor(theta0.copy(), requires_grad=True)
            theirs = classes[name]([weight], **hyper)
            for g in grads:
                ours.step(params, g.copy())
                weight.grad = torch.tensor(g)
                theirs.step()
            np.testing.assert_allclose(params, weight.detach().numpy(), rtol=1e-10, atol=1e-13, err_msg=name)
            state = ours.torch_state()
            for key, value in theirs.state[weight].items():
                value = value.item() if value.ndim == 0 else value.numpy()
                np.testing.assert_allclose(state[key], value, rtol=1e-10, atol=1e-13, err_msg=f"{name} {key}")
    finally:
        torch.set_default_dtype(default_dtype)
