"""The study's statistics, in plain Python: no scipy on purpose (the runtime extra must stay
small and these few functions are easy to check against printed tables).

With 3 seeds per cell, a normal approximation would make intervals far too narrow (z = 1.96
vs t = 4.30 at 2 degrees of freedom), so intervals use Student's t with the exact CDF for
integer degrees of freedom (Abramowitz & Stegun 26.7.3-4) inverted by bisection.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass


def mean(xs) -> float:
    xs = list(xs)
    return sum(xs) / len(xs)


def std(xs) -> float:
    """Sample standard deviation (n - 1); 0 for a single value (nothing to say about spread)."""
    xs = list(xs)
    if len(xs) < 2:
        return 0.0
    m = mean(xs)
    return math.sqrt(sum((x - m) ** 2 for x in xs) / (len(xs) - 1))


def t_cdf(t: float, df: int) -> float:
    """P(T <= t) for Student's t with integer df >= 1 (exact finite series)."""
    if df < 1 or int(df) != df:
        raise ValueError(f"df must be a positive integer, got {df}")
    theta = math.atan2(t, math.sqrt(df))
    s, c = math.sin(theta), math.cos(theta)
    if df % 2 == 1:  # A(t|df) = 2/pi (theta + sin cos (1 + 2/3 cos^2 + ...))
        total, term = 0.0, c
        for k in range(1, (df - 1) // 2 + 1):
            total += term
            term *= c * c * (2 * k) / (2 * k + 1)
        a = 2 / math.pi * (theta + s * total) if df > 1 else 2 / math.pi * theta
    else:  # A(t|df) = sin (1 + 1/2 cos^2 + 1.3/2.4 cos^4 + ...)
        total, term = 0.0, 1.0
        for k in range(1, df // 2 + 1):
            total += term
            term *= c * c * (2 * k - 1) / (2 * k)
        a = s * total
    return 0.5 + 0.5 * a


def t_quantile(p: float, df: int) -> float:
    """The t value with P(T <= t) = p, by bisection (t_cdf is monotone)."""
    if not 0 < p < 1:
        raise ValueError(f"p must be in (0, 1), got {p}")
    lo, hi = -1e6, 1e6
    for _ in range(200):
        mid = (lo + hi) / 2
        if t_cdf(mid, df) < p:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


@dataclass
class Paired:
    n: int
    mean_diff: float          # a - b, averaged over the shared seeds
    std_diff: float
    ci_low: float | None      # 95 % t-interval of the mean difference (None with one pair)
    ci_high: float | None
    p_value: float | None     # two-sided paired t-test
    significant: bool | None  # the interval excludes 0

    def to_dict(self) -> dict:
        return asdict(self)

    def verdict(self) -> str:
        if self.significant is None:
            return "one seed: no test possible"
        return "significant" if self.significant else "not significant"


def paired(a: dict, b: dict, level: float = 0.95) -> Paired:
    """Paired comparison of two {seed: value} maps over the seeds they share.

    Pairing by seed removes what the two runs of a seed have in common (the validation split,
    the batch order, the initial weights up to the activation), which is why it is the test to
    use here rather than a two-sample one."""
    seeds = sorted(set(a) & set(b))
    d = [a[s] - b[s] for s in seeds]
    n = len(d)
    if n == 0:
        raise ValueError("no seeds in common")
    m, sd = mean(d), std(d)
    if n < 2:
        return Paired(n, m, sd, None, None, None, None)
    se = sd / math.sqrt(n)
    half = t_quantile(0.5 + level / 2, n - 1) * se
    if se == 0:
        p = 1.0 if m == 0 else 0.0
    else:
        p = 2 * (1 - t_cdf(abs(m) / se, n - 1))
    lo, hi = m - half, m + half
    return Paired(n, m, sd, lo, hi, p, not (lo <= 0 <= hi))


def mean_ci(xs, level: float = 0.95) -> tuple[float, float]:
    """Half-width of the t-interval of the mean is returned as (mean, half); half=0 for n=1."""
    xs = list(xs)
    if len(xs) < 2:
        return mean(xs), 0.0
    return mean(xs), t_quantile(0.5 + level / 2, len(xs) - 1) * std(xs) / math.sqrt(len(xs))
