"""The training loop: learning, reproducibility, dtypes, callbacks, divergence, bad input."""

import numpy as np
import pytest
from sklearn.datasets import load_digits, make_moons

from nncore import DivergenceError, Network, fit, make_optimizer


def train(X, y, hidden, *, out, seed=0, dtype="float64", epochs=100, batch=16, opt="adam", lr=0.01,
          activation="tanh", n_out=None, **kw):
    if n_out is None:
        n_out = int(y.max()) + 1 if y.ndim == 1 and y.dtype.kind == "i" else y.reshape(len(y), -1).shape[1]
    rng = np.random.default_rng(seed)
    net = Network([X.shape[1], *hidden, n_out], activation, out, dtype=dtype, rng=rng)
    history = fit(net, X, y, optimizer=make_optimizer(opt, lr=lr), epochs=epochs, batch_size=batch,
                  rng=rng, **kw)
    return net, history


def test_learns_xor():
    X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], float)
    y = np.array([0, 1, 1, 0])
    net, history = train(X, y, [8], out="softmax", epochs=300, batch=4, lr=0.05)
    assert history.epochs[-1].train_accuracy == 1.0
    np.testing.assert_array_equal(net.predict(X), y)


def test_learns_moons_to_97_percent():
    X, y = make_moons(600, noise=0.1, random_state=0)
    Xv, yv = make_moons(300, noise=0.1, random_state=1)
    _, history = train(X, y, [32, 32], out="softmax", epochs=60, activation="relu", X_val=Xv, y_val=yv)
    assert history.epochs[-1].val_accuracy >= 0.97


def test_learns_sin_regression_with_the_squared_error():
    rng = np.random.default_rng(0)
    X = rng.uniform(-np.pi, np.pi, size=(400, 1))
    y = np.sin(X[:, 0])
    _, history = train(X, y, [32, 32], out="identity", epochs=150, batch=32, cost="squared_error")
    assert history.epochs[0].train_cost > 0.05
    assert history.epochs[-1].train_cost < 2e-3


def test_sigmoid_output_binary_classification():
    X, y = make_moons(400, noise=0.1, random_state=0)
    net, history = train(X, y, [16], out="sigmoid", epochs=80, activation="relu", n_out=1)
    assert net.sizes[-1] == 1
    assert history.epochs[-1].train_accuracy >= 0.95


def test_same_seed_is_bitwise_identical_and_another_seed_differs():
    X, y = make_moons(200, noise=0.2, random_state=0)
    kw = dict(out="softmax", epochs=5)
    a_net, a = train(X, y, [16], seed=3, **kw)
    b_net, b = train(X, y, [16], seed=3, **kw)
    c_net, c = train(X, y, [16], seed=4, **kw)
    np.testing.assert_array_equal(a.curve("train_cost"), b.curve("train_cost"))
    np.testing.assert_array_equal(a_net.params, b_net.params)
    assert not np.array_equal(a.curve("train_cost"), c.curve("train_cost"))
    assert not np.array_equal(a_net.params, c_net.params)


def test_dropout_runs_are_reproducible_too():
    X, y = make_moons(200, noise=0.2, random_state=0)
    runs = []
    for _ in range(2):
        rng = np.random.default_rng(7)
        net = Network([2, 32, 2], "relu", "softmax", dropout=0.3, rng=rng)
        fit(net, X, y, optimizer=make_optimizer("sgd", lr=0.1, momentum=0.9), epochs=3, batch_size=8, rng=rng)
        runs.append(net.params.copy())
    np.testing.assert_array_equal(*runs)


def test_float32_trains_digits_like_float64():
    X, y = load_digits(return_X_y=True)
    X = X / 16.0
    accuracies = {}
    for dtype in ("float32", "float64"):
        net, history = train(X[:1400], y[:1400], [64], out="softmax", dtype=dtype, epochs=15, batch=32,
                             activation="relu", lr=3e-3, X_val=X[1400:], y_val=y[1400:])
        assert net.params.dtype == np.dtype(dtype)
        accuracies[dtype] = history.epochs[-1].val_accuracy
    assert accuracies["float64"] >= 0.9
    assert abs(accuracies["float32"] - accuracies["float64"]) <= 0.02


def test_epoch_metrics_and_the_callback_can_stop():
    X, y = make_moons(100, noise=0.2, random_state=0)
    seen = []

    def stop_after_three(m):
        seen.append(m)
        return m.epoch == 3

    _, history = train(X, y, [8], out="softmax", epochs=10, X_val=X[:20], y_val=y[:20], callback=stop_after_three)
    assert [m.epoch for m in seen] == [1, 2, 3] and history.stopped_early
    m = seen[-1]
    assert set(m.as_dict()) == {"epoch", "train_cost", "val_cost", "train_accuracy", "val_accuracy", "time"}
    assert m.time > 0 and 0 <= m.val_accuracy <= 1


def test_metrics_are_whole_set_costs_at_the_end_of_the_epoch():
    X, y = make_moons(100, noise=0.2, random_state=0)
    net, history = train(X, y, [8], out="softmax", epochs=2, X_val=X[:30], y_val=y[:30])
    from nncore import encode_targets
    assert history.epochs[-1].train_cost == pytest.approx(net.loss(X, encode_targets(net, y), "cross_entropy"))
    assert history.epochs[-1].val_cost == pytest.approx(net.loss(X[:30], encode_targets(net, y[:30]), "cross_entropy"))


def test_the_last_smaller_batch_is_trained():
    """10 samples in batches of 4: three optimizer steps per epoch (4, 4, 2)."""
    X, y = make_moons(10, noise=0.2, random_state=0)
    steps = []

    class Counting:
        def __init__(self):
            self.inner = make_optimizer("sgd", lr=0.1)

        def step(self, params, grads):
            steps.append(1)
            self.inner.step(params, grads)

    net = Network([2, 4, 2], rng=0)
    fit(net, X, y, optimizer=Counting(), epochs=2, batch_size=4, rng=np.random.default_rng(0))
    assert len(steps) == 6


def test_shuffling_changes_every_epoch():
    X = np.arange(8, dtype=float).reshape(8, 1)
    y = np.zeros(8, dtype=int)
    net = Network([1, 2], rng=0)
    batches = []
    original = net.backprop

    def record(Xb, Yb, cost, masks=None):
        batches.append(Xb[:, 0].copy())
        original(Xb, Yb, cost, masks)

    net.backprop = record
    fit(net, X, y, optimizer=make_optimizer("sgd", lr=0.01), epochs=2, batch_size=8, rng=np.random.default_rng(0))
    assert sorted(batches[0]) == list(range(8))
    assert not np.array_equal(batches[0], batches[1])


def test_divergence_raises_with_the_epoch():
    X, y = make_moons(100, noise=0.2, random_state=0)
    with pytest.raises(DivergenceError) as err:
        train(X * 1e3, y.astype(float), [16], out="identity", epochs=20, opt="sgd", lr=10.0, activation="relu")
    assert err.value.epoch >= 1
    assert f"diverged at epoch {err.value.epoch}" in str(err.value)


BAD = [
    (dict(X=[[np.nan, 1.0]]), "X contains NaN or inf"),
    (dict(X=[[np.inf, 1.0]]), "X contains NaN or inf"),
    (dict(y=[0, 1, 5]), "label 5"),
    (dict(y=[0, 1]), "different lengths: 3 and 2"),
    (dict(X=[[1.0], [2.0], [3.0]]), "X must have shape (N, 2)"),
    (dict(epochs=0), "epochs must be an integer >= 1, got 0"),
    (dict(batch_size=0), "batch_size must be an integer >= 1, got 0"),
    (dict(cost="hinge"), "unknown cost 'hinge'"),
    (dict(y_val=[0, 1, 9]), "y_val has label 9"),
    (dict(X_val=[[np.nan, 0.0], [0, 0], [0, 0]]), "X_val contains NaN or inf"),
]


@pytest.mark.parametrize("change,message", BAD)
def test_bad_input_is_refused(change, message):
    args = dict(X=[[0.0, 1.0], [1.0, 0.0], [1.0, 1.0]], y=[0, 1, 2], epochs=1, batch_size=2, cost=None,
                X_val=[[0.0, 1.0], [1.0, 0.0], [1.0, 1.0]], y_val=[0, 1, 2])
    args.update(change)
    net = Network([2, 4, 3], rng=0)
    with pytest.raises(ValueError) as err:
        fit(net, np.asarray(args.pop("X")), np.asarray(args.pop("y")), optimizer=make_optimizer("adam"),
            rng=np.random.default_rng(0), X_val=np.asarray(args.pop("X_val")), y_val=np.asarray(args.pop("y_val")),
            **args)
    assert message in str(err.value)
