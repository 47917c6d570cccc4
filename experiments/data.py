"""Data sets as train/val/test NumPy arrays, loaded once per process.

``load_dataset(data_cfg, seed)`` reads a bundled scikit-learn data set, draws one from
a scikit-learn generator, reads a csv/parquet table, or builds MNIST-1D (the ``mnist1d`` package,
cached as ``.npz`` under the user's cache directory); splits it (stratified for
classification) and standardises features with the training split's mean and std (then clips them to
``±data.clip`` when set).
Equal (config, seed) pairs return the same cached, read-only ``Dataset``.
"""

from __future__ import annotations

import csv
import dataclasses
import functools
import hashlib
import importlib.metadata
import json
import os
import random
import tempfile
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from hydra.utils import to_absolute_path
from omegaconf import DictConfig, OmegaConf
from sklearn import datasets as skdata
from sklearn.model_selection import train_test_split

from experiments.config import GENERATORS, DataConfig

BUNDLED = {
    "digits": (skdata.load_digits, "classification"),
    "iris": (skdata.load_iris, "classification"),
    "wine": (skdata.load_wine, "classification"),
    "breast_cancer": (skdata.load_breast_cancer, "classification"),
    "diabetes": (skdata.load_diabetes, "regression"),
}
MIN_PER_CLASS = 3  # one sample of each class in each of train, val and test
MNIST1D_MISSING = "data=mnist1d needs the mnist1d package: pip install mnist1d"
CACHE_SUBDIR = "nnsweep"  # <XDG_CACHE_HOME or ~/.cache>/nnsweep/
MNIST1D_ARRAYS = ("x", "y", "x_test", "y_test")


class DataError(ValueError):
    """A data set cannot be loaded or split; the message is one line naming the source."""


@dataclass(frozen=True, eq=False)
class Dataset:
    """Split, scaled arrays of one data set. Arrays are read-only (shared by the cache).

    X_*: (n, n_features) float64. y_*: (n,) int64 labels 0..k-1 for classification,
    (n, n_targets) float64 for regression (standardised when scaled; ``y_mean`` and
    ``y_std``, shape (n_targets,), undo it: y = y_scaled * y_std + y_mean).
    """

    X_train: np.ndarray
    y_train: np.ndarray
    X_val: np.ndarray
    y_val: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    task: str  # "classification" | "regression"
    n_classes: int  # 0 for regression
    feature_names: tuple[str, ...]
    name: str
    class_names: tuple[str, ...] = ()  # label k is class_names[k]; () for regression
    y_mean: np.ndarray | None = None  # (n_targets,) regression only
    y_std: np.ndarray | None = None  # (n_targets,) regression only

    @property
    def n_features(self) -> int:
        return int(self.X_train.shape[1])

    @property
    def n_outputs(self) -> int:
        """Output units a network needs: n_classes, or n_targets for regression."""
        return self.n_classes if self.task == "classification" else int(self.y_train.shape[1])


@dataclass(frozen=True)
class _Spec:
    """The hashable part of a data config that decides the arrays (the cache key)."""

    name: str
    val_fraction: float
    test_fraction: float
    scale: bool
    clip: float | None = None
    generator: tuple[int, float, int, int, int] | None = None  # n_samples, noise, ...
    path: str | None = None  # as given, for messages
    abs_path: str | None = None
    file_stamp: tuple[int, int] | None = None  # (mtime_ns, size): edits reload
    target: str | None = None
    task: str | None = None
    features: tuple[str, ...] | None = None
    shuffle_seq: bool | None = None  # mnist1d


def _as_dict(data_cfg: Any) -> dict[str, Any]:
    """A DictConfig, dict or DataConfig as a plain dict with DataConfig's defaults filled."""
    if isinstance(data_cfg, DictConfig):
        given = OmegaConf.to_container(data_cfg, resolve=True)
    elif dataclasses.is_dataclass(data_cfg):
        given = dataclasses.asdict(data_cfg)
    else:
        given = dict(data_cfg)
    merged = dataclasses.asdict(DataConfig())
    unknown = sorted(set(given) - set(merged))
    if unknown:
        raise DataError(f"data config has unknown keys: {', '.join(unknown)}")
    for key, value in given.items():
        if isinstance(merged[key], dict) and isinstance(value, dict):  # a nested group: fill its defaults too
            unknown = sorted(set(value) - set(merged[key]))
            if unknown:
                raise DataError(f"data.{key} config has unknown keys: {', '.join(unknown)}")
            value = {**merged[key], **value}
        merged[key] = value
    return merged


def _spec(data_cfg: Any) -> _Spec:
    """The cache key of a data config; fields a loader ignores are left out."""
    cfg = _as_dict(data_cfg)
    common = dict(
        name=str(cfg["name"]),
        val_fraction=float(cfg["val_fraction"]),
        test_fraction=float(cfg["test_fraction"]),
        scale=bool(cfg["scale"]),
        clip=None if cfg.get("clip") is None else float(cfg["clip"]),
    )
    if cfg["name"] in GENERATORS:
        generator = (
            int(cfg["n_samples"]), float(cfg["noise"]), int(cfg["n_features"]),
            int(cfg["n_informative"]), int(cfg["n_classes"]),
        )
        return _Spec(**common, generator=generator)
    if cfg["name"] == "mnist1d":
        if not 0.0 <= common["val_fraction"] < 1.0:
            raise DataError(f"data.val_fraction must be in [0, 1) for mnist1d, got {cfg['val_fraction']!r}")
        return _Spec(**{**common, "test_fraction": 0.0}, shuffle_seq=bool(cfg["mnist1d"]["shuffle_seq"]))
    if cfg["name"] != "csv":
        return _Spec(**common)
    path = cfg["path"]
    if not path:
        raise DataError("data.path is required when data.name is 'csv'")
    if not cfg["target"]:
        raise DataError(f"{path}: data.target (the target column) is required")
    abs_path = to_absolute_path(str(path))
    if not os.path.isfile(abs_path):
        raise DataError(f"{path}: data file not found (looked for {abs_path})")
    stat = os.stat(abs_path)
    features = None if cfg["features"] is None else tuple(str(f) for f in cfg["features"])
    return _Spec(
        **common, path=str(path), abs_path=abs_path,
        file_stamp=(stat.st_mtime_ns, stat.st_size),
        target=str(cfg["target"]), task=str(cfg["task"]), features=features,
    )


def load_dataset(data_cfg: Any, seed: int) -> Dataset:
    """Load, split and scale the data set ``data_cfg`` describes (cached per process).

    ``data_cfg``: the ``data`` node of the config (DictConfig, dict or DataConfig).
    ``seed`` drives generators and the split. Raises ``DataError``.
    """
    return _load(_spec(data_cfg), int(seed))


def clear_cache() -> None:
    """Forget every loaded data set."""
    _load.cache_clear()


# ---------------------------------------------------------------------------- sources
def _bundled(name: str) -> tuple[np.ndarray, np.ndarray, tuple[str, ...], tuple[str, ...]]:
    """X (n, d), y (n,) and names of a scikit-learn bundled data set (no download)."""
    loader, task = BUNDLED[name]
    bunch = loader(scaled=False) if name == "diabetes" else loader()
    features = tuple(str(f) for f in bunch.feature_names)
    if task == "regression":
        return bunch.data, bunch.target.reshape(-1, 1), features, ()
    classes = tuple(str(c) for c in bunch.target_names)
    return bunch.data, bunch.target, features, classes


def _generated(name: str, generator: tuple[int, float, int, int, int], seed: int):
    """X (n, d), y (n,) and names from a scikit-learn generator seeded by ``seed``."""
    n_samples, noise, n_features, n_informative, n_classes = generator
    try:
        if name == "moons":
            X, y = skdata.make_moons(n_samples=n_samples, noise=noise, random_state=seed)
        elif name == "circles":
            X, y = skdata.make_circles(
                n_samples=n_samples, noise=noise, factor=0.5, random_state=seed
            )
        else:
            X, y = skdata.make_classification(
                n_samples=n_samples, n_features=n_features, n_informative=n_informative,
                n_redundant=0, n_repeated=0, n_classes=n_classes,
                n_clusters_per_class=2, random_state=seed,
            )
    except ValueError as err:
        raise DataError(f"{name}: cannot generate data: {_first_line(err)}") from err
    features = tuple(f"x{i}" for i in range(X.shape[1]))
    classes = tuple(str(c) for c in range(int(y.max()) + 1))
    return X, y, features, classes


def cache_dir() -> Path:
    """This project's folder in the user's cache directory: ``$XDG_CACHE_HOME/nnsweep`` when that
    variable holds an absolute path (the XDG rule), else ``~/.cache/nnsweep``."""
    base = os.environ.get("XDG_CACHE_HOME", "")
    return (Path(base) if os.path.isabs(base) else Path.home() / ".cache") / CACHE_SUBDIR


def mnist1d_arrays(shuffle_seq: bool = False) -> dict[str, np.ndarray]:
    """MNIST-1D as ``mnist1d.data.make_dataset(get_dataset_args())`` builds it (seed 42, standardised):
    ``x`` (4000, 40) and ``x_test`` (1000, 40) float64, ``y`` (4000,) and ``y_test`` (1000,) int64;
    ``shuffle_seq``: the package's spatially shuffled variant (one fixed permutation of the 40 columns).

    Read from ``cache_dir()/mnist1d/<version>-<key>.npz``, else built (~2 s) and cached there (written
    to a temporary file, then renamed). For one package version ``get_dataset_args()`` is fixed, so the
    version and the arguments changed here key the file. ``DataError`` when the package is missing.
    """
    try:
        version = importlib.metadata.version("mnist1d")
    except importlib.metadata.PackageNotFoundError:
        raise DataError(MNIST1D_MISSING) from None
    changed = {"shuffle_seq": bool(shuffle_seq)}
    key = hashlib.sha256(json.dumps({"version": version, **changed}, sort_keys=True).encode()).hexdigest()[:16]
    path = cache_dir() / "mnist1d" / f"{version}-{key}.npz"
    arrays = _read_npz(path)
    if arrays is None:
        arrays = _make_mnist1d(changed)
        _write_npz(path, arrays)
    return {name: arrays[name] for name in MNIST1D_ARRAYS}


def _make_mnist1d(changed: dict[str, Any]) -> dict[str, np.ndarray]:
    """The arrays of ``make_dataset`` with ``get_dataset_args()`` updated by ``changed``, and ``args``
    (their JSON text). The package seeds Python's and NumPy's global generators: their states are put back."""
    try:
        from mnist1d.data import get_dataset_args, make_dataset
    except ImportError:
        raise DataError(MNIST1D_MISSING) from None
    args = get_dataset_args()
    for name, value in changed.items():
        setattr(args, name, value)
    numpy_state, python_state = np.random.get_state(), random.getstate()
    try:
        built = make_dataset(args)
    finally:
        np.random.set_state(numpy_state)
        random.setstate(python_state)
    arrays = {name: np.asarray(built[name], dtype=np.int64 if name.startswith("y") else np.float64)
              for name in MNIST1D_ARRAYS}
    arrays["args"] = np.array(json.dumps(vars(args), sort_keys=True, default=str))
    return arrays


def _read_npz(path: Path) -> dict[str, np.ndarray] | None:
    """The MNIST-1D arrays of a cache file; None when it is missing or unreadable (it is then rebuilt)."""
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {name: npz[name] for name in MNIST1D_ARRAYS}
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        return None
    consistent = (arrays["x"].ndim == 2 and arrays["x"].shape[1:] == arrays["x_test"].shape[1:]
                  and len(arrays["x"]) == len(arrays["y"]) and len(arrays["x_test"]) == len(arrays["y_test"]))
    return arrays if consistent else None


def _write_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """``np.savez`` to a temporary file beside ``path``, then ``os.replace``: no reader sees half a file.
    A cache that cannot be written (read-only home) is a warning: the arrays are still used."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as handle:
                np.savez(handle, **arrays)
            os.replace(temporary, path)
        except BaseException:
            os.unlink(temporary)
            raise
    except OSError as err:
        warnings.warn(f"mnist1d: cannot cache the data set in {path.parent}: {_first_line(err)}", stacklevel=3)


def _mnist1d(shuffle_seq: bool):
    """X (5000, 40): the 4000 training rows, then the 1000 test rows; y (5000,); names; the test rows' start."""
    arrays = mnist1d_arrays(shuffle_seq)
    X = np.concatenate([arrays["x"], arrays["x_test"]])
    y = np.concatenate([arrays["y"], arrays["y_test"]])
    features = tuple(f"x{i}" for i in range(X.shape[1]))
    classes = tuple(str(c) for c in range(int(y.max()) + 1))
    return X, y, features, classes, len(arrays["x"])


def _read_table(path: str, abs_path: str) -> pd.DataFrame:
    """The rows of a .csv or .parquet file; DataError names ``path`` on any failure."""
    suffix = os.path.splitext(abs_path)[1].lower()
    try:
        if suffix == ".csv":
            frame = pd.read_csv(abs_path)
        elif suffix in (".parquet", ".pq"):
            frame = pd.read_parquet(abs_path)
        else:
            raise DataError(f"{path}: unsupported file type {suffix!r}; use .csv or .parquet")
    except pd.errors.EmptyDataError as err:
        raise DataError(f"{path}: file is empty") from err
    except (pd.errors.ParserError, OSError, ValueError) as err:
        if isinstance(err, DataError):
            raise
        raise DataError(f"{path}: cannot read: {_first_line(err)}") from err
    if frame.shape[0] == 0 or frame.shape[1] == 0:
        raise DataError(f"{path}: file is empty (no data rows)")
    if suffix == ".csv":
        _check_header(path, abs_path, frame)
    return frame


def _check_header(path: str, abs_path: str, frame: pd.DataFrame) -> None:
    """DataError for a CSV header pandas would read silently wrong: one column that holds another
    separator (a tab- or semicolon-separated file), or a name given twice (pandas renames it ``a.1``)."""
    with open(abs_path, newline="") as handle:
        header = next(csv.reader(handle), [])
    if frame.shape[1] == 1:
        for name, separator in (("tab", "\t"), ("semicolon", ";"), ("pipe", "|")):
            if separator in str(frame.columns[0]):
                raise DataError(f"{path}: one column named {str(frame.columns[0])!r}: the file looks "
                                f"{name}-separated; a CSV file's columns must be separated by commas")
    seen = set()
    for name in header:
        if name in seen:
            raise DataError(f"{path}: column name {name!r} appears twice in the header; names must be unique")
        seen.add(name)


def _table(spec: _Spec):
    """X (n, d), y (n,) or (n, 1), feature names and class names from a csv/parquet."""
    frame = _read_table(spec.path, spec.abs_path)
    columns = [str(c) for c in frame.columns]
    frame.columns = columns
    listing = ", ".join(columns)
    if spec.target not in columns:
        raise DataError(f"{spec.path}: target column {spec.target!r} not found; columns: {listing}")
    features = spec.features if spec.features is not None else tuple(c for c in columns if c != spec.target)
    missing = [f for f in features if f not in columns]
    if missing:
        raise DataError(f"{spec.path}: feature column {missing[0]!r} not found; columns: {listing}")
    if spec.target in features:
        raise DataError(f"{spec.path}: column {spec.target!r} is both the target and a feature")
    if not features:
        raise DataError(f"{spec.path}: no feature columns besides target {spec.target!r}")
    for column in (*features, spec.target):
        n_missing = int(frame[column].isna().sum())
        if n_missing:
            raise DataError(f"{spec.path}: column {column!r} has {n_missing} NaN/missing values")
    for column in features:
        series = frame[column]
        if not (pd.api.types.is_numeric_dtype(series) or pd.api.types.is_bool_dtype(series)):
            raise DataError(
                f"{spec.path}: feature column {column!r} is not numeric "
                f"(dtype {series.dtype}, e.g. {series.iloc[0]!r})"
            )
    X = frame[list(features)].to_numpy(dtype=np.float64)
    bad = ~np.isfinite(X).all(axis=0)
    if bad.any():
        column = features[int(np.argmax(bad))]
        count = int((~np.isfinite(X[:, int(np.argmax(bad))])).sum())
        raise DataError(f"{spec.path}: column {column!r} has {count} infinite values")
    target = frame[spec.target]
    if spec.task == "regression":
        if not pd.api.types.is_numeric_dtype(target):
            raise DataError(
                f"{spec.path}: regression target column {spec.target!r} is not numeric "
                f"(dtype {target.dtype})"
            )
        return X, target.to_numpy(dtype=np.float64).reshape(-1, 1), features, ()
    labels = _sorted_labels(target)
    if len(labels) < 2:
        raise DataError(
            f"{spec.path}: target column {spec.target!r} has a single class {labels[0]!r}; "
            "classification needs at least 2"
        )
    index = {label: k for k, label in enumerate(labels)}
    y = target.map(index).to_numpy(dtype=np.int64)
    return X, y, features, tuple(str(label) for label in labels)


def _sorted_labels(target: pd.Series) -> list:
    """The distinct labels, sorted (numbers numerically, strings alphabetically)."""
    labels = list(pd.unique(target))
    try:
        return sorted(labels)
    except TypeError:  # mixed types
        return sorted(labels, key=str)


# ---------------------------------------------------------------------------- split/scale
def _split(y: np.ndarray, spec: _Spec, seed: int, classes: tuple[str, ...],
           source: str, column: str):
    """Index arrays (train, val, test); stratified by y when ``classes`` is not empty."""
    stratify = bool(classes)
    if stratify:
        counts = np.bincount(y, minlength=len(classes))
        rare = int(np.argmin(counts))
        if counts[rare] < MIN_PER_CLASS:
            raise DataError(
                f"{source}: class {classes[rare]!r} of target column {column!r} has {counts[rare]} "
                f"sample(s); a stratified train/val/test split needs >= {MIN_PER_CLASS} per class"
            )
    index = np.arange(len(y))
    val_of_rest = spec.val_fraction / (1.0 - spec.test_fraction)
    try:
        rest, test = train_test_split(
            index, test_size=spec.test_fraction, random_state=seed,
            stratify=y if stratify else None,
        )
        train, val = train_test_split(
            rest, test_size=val_of_rest, random_state=seed,
            stratify=y[rest] if stratify else None,
        )
    except ValueError as err:
        raise DataError(
            f"{source}: cannot split {len(y)} samples of target column {column!r} "
            f"(val {spec.val_fraction:g}, test {spec.test_fraction:g}): {_first_line(err)}"
        ) from err
    return train, val, test


def _split_off_val(y: np.ndarray, n_train: int, val_fraction: float, seed: int):
    """Index arrays (train, val, test) of a data set with its own test rows (from ``n_train`` on): the
    validation rows drawn from the training rows, stratified; none when ``val_fraction`` is 0."""
    rows, test = np.arange(n_train), np.arange(n_train, len(y))
    if val_fraction == 0:
        return rows, rows[:0], test
    train, val = train_test_split(rows, test_size=val_fraction, random_state=seed, stratify=y[:n_train])
    return train, val, test


def _standardise(train: np.ndarray, *others: np.ndarray):
    """Subtract the train mean and divide by the train std (0 -> 1), column-wise.

    Returns (mean (d,), std (d,), train_scaled, *others_scaled).
    """
    mean = train.mean(axis=0)
    std = train.std(axis=0)
    std[std == 0] = 1.0
    return (mean, std, *((a - mean) / std for a in (train, *others)))


def _frozen(array: np.ndarray, dtype) -> np.ndarray:
    out = np.ascontiguousarray(array, dtype=dtype)
    out.setflags(write=False)
    return out


@functools.lru_cache(maxsize=32)
def _load(spec: _Spec, seed: int) -> Dataset:
    """The Dataset of one cache key; see ``load_dataset``."""
    if spec.name in BUNDLED:
        X, y, features, classes = _bundled(spec.name)
        task, source, column, name = BUNDLED[spec.name][1], spec.name, "target", spec.name
    elif spec.name in GENERATORS:
        X, y, features, classes = _generated(spec.name, spec.generator, seed)
        task, source, column, name = "classification", spec.name, "target", spec.name
    elif spec.name == "csv":
        X, y, features, classes = _table(spec)
        task, source, column = spec.task, spec.path, spec.target
        name = os.path.basename(spec.path)
    elif spec.name == "mnist1d":
        X, y, features, classes, n_train = _mnist1d(spec.shuffle_seq)
        task, name = "classification", "mnist1d-shuffled" if spec.shuffle_seq else "mnist1d"
    else:
        raise DataError(f"data.name must be one of {', '.join([*BUNDLED, *GENERATORS, 'csv', 'mnist1d'])}; "
                        f"got {spec.name!r}")
    classification = task == "classification"
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y, dtype=np.int64 if classification else np.float64)
    classes = tuple(classes) if classification else ()
    if spec.name == "mnist1d":  # its own test rows
        train, val, test = _split_off_val(y, n_train, spec.val_fraction, seed)
    else:
        train, val, test = _split(y, spec, seed, classes, source, column)
    X_parts = [X[train], X[val], X[test]]
    y_parts = [y[train], y[val], y[test]]
    y_mean = y_std = None
    if spec.scale:
        X_parts = list(_standardise(*X_parts)[2:])
        if spec.clip is not None:  # a pixel almost always 0 in training scales to z-scores in the hundreds
            X_parts = [np.clip(part, -spec.clip, spec.clip) for part in X_parts]
        if not classification:
            y_mean, y_std, *y_parts = _standardise(*y_parts)
    y_dtype = np.int64 if classification else np.float64
    return Dataset(
        X_train=_frozen(X_parts[0], np.float64), y_train=_frozen(y_parts[0], y_dtype),
        X_val=_frozen(X_parts[1], np.float64), y_val=_frozen(y_parts[1], y_dtype),
        X_test=_frozen(X_parts[2], np.float64), y_test=_frozen(y_parts[2], y_dtype),
        task=task,
        n_classes=len(classes),
        feature_names=tuple(features),
        name=name,
        class_names=classes,
        y_mean=None if y_mean is None else _frozen(y_mean, np.float64),
        y_std=None if y_std is None else _frozen(y_std, np.float64),
    )


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__
