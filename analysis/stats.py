"""Statistics for verdicts: paired comparisons over seeds, Holm's correction, trend tests.

Each test gives a :class:`Verdict`: an estimate with its 95 % interval, a p-value, the number of
seeds, and one of :data:`VERDICTS` for a claimed direction — *holds* (significant in the claimed
direction), *does not hold* (significant against it), *no detectable difference at this sample
size*. The verdict follows the (two-sided, possibly Holm-adjusted) p-value at level ``alpha``; the
interval is reported with it, unadjusted (with the default t interval and t-test, it excludes 0
exactly when the unadjusted p < 0.05).

Paired values are given per seed: two arrays ``(n_seeds,)`` in the same seed order, or two
:class:`pandas.Series` indexed by seed (aligned on the seeds they share). Tuning and reporting on
the same seeds inflates the winner: pass values from seeds that were not used to choose it.
"""

from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
from scipy import stats

HOLDS, DOES_NOT_HOLD, NO_DIFFERENCE = "holds", "does not hold", "no detectable difference at this sample size"
VERDICTS = (HOLDS, DOES_NOT_HOLD, NO_DIFFERENCE)
CLAIMS = {"lower": -1, "higher": 1, "decreasing": -1, "increasing": 1}  # claim → sign of the estimate it predicts
PAIRED_TESTS = ("t", "wilcoxon")
INTERVALS = ("t", "bootstrap")
N_RESAMPLES = 9999  # bootstrap resamples for the intervals


@dataclass(frozen=True)
class Verdict:
    """An estimate, its 95 % interval ``[low, high]``, a two-sided p-value and the verdict it gives.

    ``measure``: what ``estimate`` is ("mean difference", "Spearman ρ"); ``claim``: a key of
    :data:`CLAIMS`; ``test``: the test behind ``p_value``; ``correction``: "Holm" when ``p_value``
    is Holm-adjusted (``p_raw`` the unadjusted one); ``n_runs``: runs behind a trend (else None);
    ``interval``: how ``[low, high]`` was made.
    """

    measure: str
    estimate: float
    low: float
    high: float
    p_value: float
    n_seeds: int
    claim: str
    test: str
    alpha: float = 0.05
    p_raw: float | None = None
    correction: str | None = None
    n_runs: int | None = None
    label: str = ""
    interval: str = ""

    @property
    def verdict(self) -> str:
        """One of :data:`VERDICTS`: significant (``p_value ≤ alpha``) with the claimed sign, against it, or neither."""
        if not np.isfinite(self.p_value) or self.p_value > self.alpha or self.estimate == 0:
            return NO_DIFFERENCE
        return HOLDS if np.sign(self.estimate) == CLAIMS[self.claim] else DOES_NOT_HOLD

    def sentence(self) -> str:
        """E.g. ``"holds: mean difference −0.012 (95 % CI −0.020 to −0.004, 10 seeds, p = 0.003, Holm)"``."""
        digits = _decimals(self.estimate, self.low, self.high)
        runs = f"{self.n_runs} runs over " if self.n_runs is not None else ""
        seeds = f"{runs}{self.n_seeds} seed{'' if self.n_seeds == 1 else 's'}"
        correction = f", {self.correction}" if self.correction else ""
        head = f"{self.label}: " if self.label else ""
        return (f"{head}{self.verdict}: {self.measure} {_number(self.estimate, digits)} (95 % CI "
                f"{_number(self.low, digits)} to {_number(self.high, digits)}, {seeds}, p = {_p(self.p_value)}"
                f"{correction})")

    __str__ = sentence


def paired(treatment, baseline, claim: str = "lower", test: str = "t", interval: str = "t", alpha: float = 0.05,
           label: str = "", rng=0) -> Verdict:
    """``treatment − baseline`` paired by seed: the mean difference, its 95 % interval and a two-sided
    paired p-value.

    ``test="t"``: ``scipy.stats.ttest_rel``; ``"wilcoxon"``: the signed-rank test (for skewed
    differences). ``interval="t"``: the t interval of the mean difference (the one the t-test
    inverts); ``"bootstrap"``: BCa (``scipy.stats.bootstrap``, seeded by ``rng``), which covers
    only ~88 % at 10 seeds and ~86 % at 5 for normal differences (the t interval 95 %): prefer it
    from ~20 seeds. ``claim="lower"``: the claim is that the treatment is lower than the baseline
    (``"higher"``: above it). If every difference is the same (e.g. whole epochs) the p-value is
    the exact sign test's (``binomtest``) and the interval that one value. ``treatment``,
    ``baseline``: ``(n_seeds,)`` arrays or Series indexed by seed.
    """
    if test not in PAIRED_TESTS:
        raise ValueError(f"unknown paired test {test!r}; choose one of: {', '.join(PAIRED_TESTS)}")
    if interval not in INTERVALS:
        raise ValueError(f"unknown interval {interval!r}; choose one of: {', '.join(INTERVALS)}")
    _check_claim(claim, ("lower", "higher"))
    a, b = _aligned(treatment, baseline)
    d = a - b
    n = d.size
    mean = float(d.mean()) if n else float("nan")
    if n < 2:
        low = high = p = float("nan")
    elif np.ptp(d) == 0:
        low = high = mean
        p = stats.binomtest(int(np.sum(d > 0)), n).pvalue if mean != 0 else 1.0
    else:
        t = stats.ttest_rel(a, b)
        p = t.pvalue if test == "t" else stats.wilcoxon(a, b).pvalue
        found = t.confidence_interval(0.95) if interval == "t" else stats.bootstrap(
            (d,), np.mean, confidence_level=0.95, n_resamples=N_RESAMPLES, method="BCa",
            rng=np.random.default_rng(rng)).confidence_interval
        low, high = found.low, found.high
    return Verdict("mean difference", mean, float(low), float(high), float(p), n, claim,
                   "paired t" if test == "t" else "Wilcoxon", alpha, label=label,
                   interval="t" if interval == "t" else "BCa bootstrap")


def against_baseline(values, baseline: str, claim: str = "lower", test: str = "t", interval: str = "t",
                     alpha: float = 0.05, rng=0) -> dict:
    """Each setting of ``values`` against ``baseline`` with :func:`paired`, the p-values Holm-corrected
    over the comparisons. ``values``: a mapping setting → per-seed values (arrays ``(n_seeds,)`` or
    Series indexed by seed), or a frame with one column per setting and one row per seed. Returns
    ``{setting: Verdict}`` (labelled by setting) for every setting but the baseline."""
    values = dict(values.items())
    others = [k for k in values if k != baseline]
    raw = [paired(values[k], values[baseline], claim, test, interval, alpha, str(k), rng) for k in others]
    adjusted = holm([v.p_value for v in raw])
    return {k: replace(v, p_value=float(p), p_raw=v.p_value, correction="Holm")
            for k, v, p in zip(others, raw, adjusted)}


def mean_interval(values, confidence: float = 0.95) -> tuple[float, float, float, int]:
    """Mean, Student t interval (``confidence``) and count of the finite ``values`` (n,); a NaN interval
    below 2 values, the mean itself when they do not vary."""
    v = np.asarray(values, np.float64)
    v = v[np.isfinite(v)]
    if not v.size:
        return np.nan, np.nan, np.nan, 0
    mean = float(v.mean())
    if v.size < 2:
        return mean, np.nan, np.nan, 1
    sem = stats.sem(v)
    if sem == 0:
        return mean, mean, mean, int(v.size)
    low, high = stats.t.interval(confidence, v.size - 1, loc=mean, scale=sem)
    return mean, float(low), float(high), int(v.size)


def holm(p_values) -> np.ndarray:
    """Holm's step-down adjusted p-values ``(m,)``: the i-th smallest becomes
    ``max_{j ≤ i} min(1, (m − j + 1) p_(j))``; rejecting where ``≤ α`` controls the family-wise
    error at α. NaN p-values are left NaN and not counted in m."""
    p = np.asarray(p_values, np.float64)
    out = np.full(p.shape, np.nan)
    finite = np.flatnonzero(np.isfinite(p))
    order = finite[np.argsort(p[finite], kind="stable")]
    m = order.size
    out[order] = np.minimum(1.0, np.maximum.accumulate((m - np.arange(m)) * p[order]))
    return out


def trend(frame: pd.DataFrame, setting: str, value: str, claim: str = "decreasing", seed: str = "seed",
          alpha: float = 0.05, label: str = "") -> Verdict:
    """A monotone trend of ``value`` over the ordered ``setting`` (dropout rate, batch size, ...).

    ``frame``: one row per run with the columns ``setting`` (ordered numbers), ``value`` and
    ``seed``. The estimate is Spearman's ρ between setting and value over all runs
    (``scipy.stats.spearmanr``, two-sided p) with the Fisher-z 95 % interval (Bonett–Wright
    standard error ``√((1 + ρ²/2)/(n − 3))``). When every seed has exactly one run at every
    setting (a complete design, ≥ 2 seeds and ≥ 3 settings) the p-value is instead Page's test
    over seeds (``scipy.stats.page_trend_test``, seeds as blocks: it removes the seed effects),
    two-sided (twice the smaller one-sided p). ``claim``: ``"decreasing"`` or ``"increasing"``.
    """
    _check_claim(claim, ("decreasing", "increasing"))
    runs = frame[[setting, value, seed]].dropna()
    x, y = runs[setting].to_numpy(np.float64), runs[value].to_numpy(np.float64)
    n, n_seeds = len(runs), runs[seed].nunique()
    if n < 4 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return Verdict("Spearman ρ", float("nan"), float("nan"), float("nan"), float("nan"), n_seeds, claim,
                       "Spearman", alpha, n_runs=n, label=label)
    rho, p = stats.spearmanr(x, y)
    rho = float(rho)
    half = stats.norm.ppf(0.975) * np.sqrt((1 + rho ** 2 / 2) / (n - 3))
    z = np.arctanh(np.clip(rho, -1 + 1e-15, 1 - 1e-15))
    low, high = np.tanh(z - half), np.tanh(z + half)
    test = "Spearman"
    counts = runs.groupby([seed, setting]).size()
    n_settings = runs[setting].nunique()
    if n_seeds >= 2 and n_settings >= 3 and (counts == 1).all() and len(counts) == n_seeds * n_settings:
        wide = runs.pivot(index=seed, columns=setting, values=value).sort_index(axis=1).to_numpy()
        one_sided = [stats.page_trend_test(data).pvalue for data in (wide, wide[:, ::-1])]
        p, test = min(1.0, 2 * min(one_sided)), "Page"
    return Verdict("Spearman ρ", rho, float(low), float(high), float(p), n_seeds, claim, test, alpha,
                   n_runs=n, label=label, interval="Fisher z")


def _aligned(treatment, baseline) -> tuple[np.ndarray, np.ndarray]:
    """The two samples as float64 ``(n,)`` arrays paired by seed, seeds with a NaN in either dropped."""
    if isinstance(treatment, pd.Series) and isinstance(baseline, pd.Series):
        both = pd.concat([treatment.rename("a"), baseline.rename("b")], axis=1, join="inner")
        a, b = both["a"].to_numpy(np.float64), both["b"].to_numpy(np.float64)
    else:
        a, b = np.asarray(treatment, np.float64).ravel(), np.asarray(baseline, np.float64).ravel()
        if a.shape != b.shape:
            raise ValueError(f"paired samples need one value per seed each, got {a.size} and {b.size}")
    keep = np.isfinite(a) & np.isfinite(b)
    return a[keep], b[keep]


def _check_claim(claim: str, allowed: tuple) -> None:
    if claim not in allowed:
        raise ValueError(f"unknown claim {claim!r}; choose one of: {', '.join(allowed)}")


def _decimals(*values) -> int:
    """Decimals that show two significant digits of the largest |value| and of the interval's width."""
    finite = [abs(v) for v in values if np.isfinite(v)]
    if not finite or max(finite) == 0:
        return 2
    digits = 1 - int(np.floor(np.log10(max(finite))))
    width = abs(values[2] - values[1]) if len(values) == 3 else 0.0
    if np.isfinite(width) and width > 0:
        digits = max(digits, 1 - int(np.floor(np.log10(width))))
    return int(np.clip(digits, 0, 12))


def _number(x: float, decimals: int) -> str:
    return "nan" if not np.isfinite(x) else f"{x:.{decimals}f}".replace("-", "−")


def _p(p: float) -> str:
    return "nan" if not np.isfinite(p) else f"{p:.2g}"
