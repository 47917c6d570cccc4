"""A fully connected network ``a⁽ˡ⁺¹⁾ = σ(W⁽ˡ⁾ a⁽ˡ⁾ + b⁽ˡ⁾)`` over whole mini-batches.

All weights and biases live in one flat vector ``params`` (``(n_params,)``) with per-layer
views ``weights[l]`` ``(n_out, n_in)`` and ``biases[l]`` ``(n_out,)``; the gradients live in a
flat ``grads`` with the same layout. An optimizer updates the flat vector in one call, and the
analysis gets a flat weight vector for free. A batch ``X`` is ``(batch, n_in)``, so a layer
computes ``Z = X Wᵀ + b``.
"""

import numpy as np

from .activations import OUTPUT_ACTIVATIONS, check_output, hidden_activation
from .costs import check_cost, cost_sum, output_delta
from .initializers import default_init, initializer

EVAL_CHUNK = 2048  # rows per forward pass when evaluating a whole set


def check_dtype(dtype) -> np.dtype:
    """float32 or float64 as a NumPy dtype; ``ValueError`` otherwise."""
    try:
        dt = np.dtype(dtype)
    except TypeError:
        dt = None
    if dt not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise ValueError(f"dtype must be float32 or float64, got {dtype!r}")
    return dt


def check_dropout(dropout) -> float:
    """A dropout rate in [0, 1); ``ValueError`` otherwise."""
    if not isinstance(dropout, (int, float, np.floating)) or not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
    return float(dropout)


def check_sizes(sizes) -> tuple:
    """Layer widths ``(n_in, *hidden, n_out)``, each ≥ 1; ``ValueError`` otherwise."""
    sizes = tuple(sizes) if sizes is not None else ()
    if len(sizes) < 2:
        raise ValueError(f"sizes needs the input and output widths at least (no layers), got {list(sizes)}")
    for i, s in enumerate(sizes):
        if isinstance(s, bool) or not isinstance(s, (int, np.integer)) or s < 1:
            raise ValueError(f"sizes[{i}] (a layer width) must be an integer >= 1, got {s!r}")
    return tuple(int(s) for s in sizes)


class Network:
    """A multilayer perceptron with one flat parameter vector.

    sizes: ``(n_in, *hidden, n_out)``. activation: hidden ``sigmoid | relu | tanh | leaky_relu``.
    output: ``softmax | sigmoid | identity``. dropout: inverted-dropout rate of hidden units.
    init: ``glorot_uniform | he_normal | auto``. rng: a ``numpy.random.Generator`` or a seed.
    """

    def __init__(self, sizes, activation="relu", output="softmax", dropout=0.0,
                 init="auto", dtype="float32", rng=0):
        self.sizes = check_sizes(sizes)
        self.activation = hidden_activation(activation).name
        self.output = check_output(output)
        self.dropout = check_dropout(dropout)
        self.dtype = check_dtype(dtype)
        self.init = default_init(self.activation) if init == "auto" else init
        draw = initializer(self.init)
        self._act = hidden_activation(self.activation)
        self._out = OUTPUT_ACTIVATIONS[self.output]
        self.n_params = sum(o * i + o for i, o in zip(self.sizes, self.sizes[1:]))
        self.params = np.zeros(self.n_params, self.dtype)
        self.grads = np.zeros(self.n_params, self.dtype)
        self.weights, self.biases = self._layer_views(self.params)
        self.weight_grads, self.bias_grads = self._layer_views(self.grads)
        rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
        for w in self.weights:
            w[...] = draw(rng, *w.shape)
        self._capacity = 0

    @property
    def n_layers(self) -> int:
        """Number of weight layers (hidden layers + 1)."""
        return len(self.sizes) - 1

    def _layer_views(self, flat: np.ndarray):
        weights, biases, at = [], [], 0
        for n_in, n_out in zip(self.sizes, self.sizes[1:]):
            weights.append(flat[at:at + n_out * n_in].reshape(n_out, n_in))
            at += n_out * n_in
            biases.append(flat[at:at + n_out])
            at += n_out
        return weights, biases

    def _workspace(self, n: int) -> None:
        """Buffers for ``n`` rows: activations, dropped activations, deltas, output ``z``."""
        if n <= self._capacity:
            return
        self._capacity = n
        widths = self.sizes[1:]
        self._acts = [np.empty((n, w), self.dtype) for w in widths]
        self._dropped = [np.empty((n, w), self.dtype) for w in widths[:-1]]
        self._deltas = [np.empty((n, w), self.dtype) for w in widths]
        self._z_out = np.empty((n, widths[-1]), self.dtype)

    def draw_masks(self, n: int, rng: np.random.Generator):
        """Inverted-dropout masks for a batch of ``n``: one ``(n, width)`` array per hidden
        layer holding 0 or ``1/(1-p)``; ``None`` when dropout is off."""
        if self.dropout == 0.0:
            return None
        keep = 1.0 - self.dropout
        return [np.multiply(rng.random((n, w), dtype=self.dtype) < keep, 1.0 / keep, dtype=self.dtype)
                for w in self.sizes[1:-1]]

    def _forward(self, X: np.ndarray, masks=None):
        """Forward one batch ``X`` ``(n, n_in)`` of ``self.dtype``; returns the inputs each
        layer saw, and the output ``z`` and ``a`` ``(n, n_out)`` (views of the workspace)."""
        n = X.shape[0]
        self._workspace(n)
        inputs, a = [X], X
        last = self.n_layers - 1
        for l, (w, b) in enumerate(zip(self.weights, self.biases)):
            z = self._z_out[:n] if l == last else self._acts[l][:n]
            np.matmul(a, w.T, out=z)
            z += b
            if l == last:
                a = self._acts[l][:n]
                np.copyto(a, z)
                self._out(a)
                break
            self._act.apply(z)
            a = z
            if masks is not None:
                a = np.multiply(z, masks[l], out=self._dropped[l][:n])
            inputs.append(a)
        return inputs, self._z_out[:n], a

    def _backward(self, inputs, a_out, Y, cost: str, masks=None) -> None:
        """Fill ``grads`` from one forward pass's ``inputs`` and output ``a_out``."""
        n = a_out.shape[0]
        delta = output_delta(cost, self.output, a_out, Y, out=self._deltas[-1][:n])
        for l in range(self.n_layers - 1, -1, -1):
            np.matmul(delta.T, inputs[l], out=self.weight_grads[l])
            np.sum(delta, axis=0, out=self.bias_grads[l])
            if l == 0:
                break
            d_a = np.matmul(delta, self.weights[l], out=self._deltas[l - 1][:n])
            if masks is not None:
                d_a *= masks[l - 1]
            self._act.backward(d_a, self._acts[l - 1][:n])
            delta = d_a

    def backprop(self, X: np.ndarray, Y: np.ndarray, cost: str, masks=None) -> None:
        """Gradients of the batch-mean cost into ``grads``. X ``(n, n_in)`` and Y ``(n, n_out)``
        of ``self.dtype``; masks from :meth:`draw_masks` (training) or ``None``."""
        inputs, _, a_out = self._forward(X, masks)
        self._backward(inputs, a_out, Y, cost, masks)

    def loss_and_grad(self, X: np.ndarray, Y: np.ndarray, cost: str, masks=None) -> float:
        """The batch-mean cost (float) and its gradients into ``grads``, in one pass."""
        check_cost(cost, self.output)
        X, Y = self._cast(X), self._cast(Y)
        inputs, z_out, a_out = self._forward(X, masks)
        value = cost_sum(cost, self.output, z_out, a_out, Y) / X.shape[0]
        self._backward(inputs, a_out, Y, cost, masks)
        return value

    def loss(self, X: np.ndarray, Y: np.ndarray, cost: str, masks=None) -> float:
        """The mean cost over all rows of X ``(N, n_in)`` against Y ``(N, n_out)``."""
        check_cost(cost, self.output)
        if masks is not None:
            _, z_out, a_out = self._forward(self._cast(X), masks)
            return cost_sum(cost, self.output, z_out, a_out, self._cast(Y)) / X.shape[0]
        return self.evaluate(X, Y, cost)[0]

    def evaluate(self, X: np.ndarray, Y: np.ndarray, cost: str):
        """Mean cost and outputs ``(N, n_out)`` over a whole set, dropout off, in chunks."""
        total, outputs = 0.0, np.empty((X.shape[0], self.sizes[-1]), self.dtype)
        for lo in range(0, X.shape[0], EVAL_CHUNK):
            hi = lo + EVAL_CHUNK
            _, z_out, a_out = self._forward(self._cast(X[lo:hi]))
            total += cost_sum(cost, self.output, z_out, a_out, self._cast(Y[lo:hi]))
            outputs[lo:hi] = a_out
        return total / max(X.shape[0], 1), outputs

    def predict_output(self, X: np.ndarray) -> np.ndarray:
        """Output activations ``(N, n_out)``, dropout off."""
        outputs = np.empty((X.shape[0], self.sizes[-1]), self.dtype)
        for lo in range(0, X.shape[0], EVAL_CHUNK):
            outputs[lo:lo + EVAL_CHUNK] = self._forward(self._cast(X[lo:lo + EVAL_CHUNK]))[2]
        return outputs

    def layer_activations(self, X: np.ndarray) -> list[np.ndarray]:
        """The activations of every layer, dropout off: ``[(N, sizes[1]), ..., (N, sizes[-1])]``
        (hidden layers, then the output), new arrays."""
        layers = [np.empty((X.shape[0], w), self.dtype) for w in self.sizes[1:]]
        for lo in range(0, X.shape[0], EVAL_CHUNK):
            inputs, _, a_out = self._forward(self._cast(X[lo:lo + EVAL_CHUNK]))
            for layer, a in zip(layers, [*inputs[1:], a_out]):
                layer[lo:lo + EVAL_CHUNK] = a
        return layers

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Class labels ``(N,)`` (argmax, or ``a > 0.5`` for one sigmoid output)."""
        out = self.predict_output(X)
        if out.shape[1] == 1:
            return (out[:, 0] > 0.5).astype(np.int64)
        return out.argmax(axis=1)

    def _cast(self, A: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(A, dtype=self.dtype)

    def copy(self) -> "Network":
        """An independent network with the same architecture and parameters."""
        twin = Network(self.sizes, self.activation, self.output, self.dropout, self.init, self.dtype)
        twin.params[...] = self.params
        return twin

    def arrays(self) -> dict[str, np.ndarray]:
        """The architecture and the flat parameters ``(n_params,)``, as :meth:`save` writes them."""
        return {"params": self.params, "sizes": np.asarray(self.sizes, np.int64),
                "activation": np.str_(self.activation), "output": np.str_(self.output),
                "dropout": np.float64(self.dropout), "init": np.str_(self.init)}

    def save(self, path) -> None:
        """Write the architecture and the flat parameters to an ``.npz`` file (:meth:`load` reads it)."""
        np.savez(path, **self.arrays())

    @classmethod
    def load(cls, path) -> "Network":
        """A network read from :meth:`save`'s ``.npz`` (``allow_pickle=False``)."""
        with np.load(path, allow_pickle=False) as f:
            params = f["params"]
            net = cls(f["sizes"].tolist(), str(f["activation"]), str(f["output"]),
                      float(f["dropout"]), str(f["init"]), params.dtype)
            if params.shape != net.params.shape:
                raise ValueError(f"{path}: params has shape {params.shape}, expected {net.params.shape}")
            net.params[...] = params
        return net
