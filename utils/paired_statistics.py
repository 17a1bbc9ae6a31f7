"""Mean, spread and paired confidence intervals of results over seeds.

A gain of a method over a baseline is measured on pairs that share a seed
(the same initial weights and batch order), so seed-to-seed variation that
both share cancels out: the interval is Student's t on the paired differences.
"""
import math


def mean_std(values):
    """(mean, sample standard deviation); the deviation is 0 for a single value."""
    values = list(values)
    mean = sum(values) / len(values)
    if len(values) < 2:
        return mean, 0.0
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))


def _regularized_incomplete_beta(x, a, b):
    """I_x(a, b) by the continued fraction of Numerical Recipes (Lentz's method)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    if x > (a + 1) / (a + b + 2):
        return 1.0 - _regularized_incomplete_beta(1.0 - x, b, a)
    front = math.exp(math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)) / a
    tiny = 1e-300
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    result = d
    for m in range(1, 300):
        for numerator in (m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
                          -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))):
            d = 1.0 + numerator * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + numerator / c
            c = c if abs(c) > tiny else tiny
            result *= c * d
        if abs(c * d - 1.0) < 1e-15:
            break
    return front * result


def student_t_cdf(t, df):
    """P(T <= t) for Student's t with ``df`` degrees of freedom."""
    tail = 0.5 * _regularized_incomplete_beta(df / (df + t * t), df / 2.0, 0.5)
    return 1.0 - tail if t >= 0 else tail


def student_t_quantile(probability, df):
    """The t with P(T <= t) = probability, by bisection on the CDF."""
    low, high = -1e4, 1e4
    for _ in range(200):
        middle = (low + high) / 2
        if student_t_cdf(middle, df) < probability:
            low = middle
        else:
            high = middle
    return (low + high) / 2


def paired_difference(values, reference, confidence=0.95):
    """(mean of values - reference, lower, upper) over same-seed pairs; the interval is Student's t.

    With a single pair the interval is unbounded (-inf, inf): one seed cannot tell a gain from noise.
    """
    differences = [v - r for v, r in zip(values, reference, strict=True)]
    mean, std = mean_std(differences)
    if len(differences) < 2:
        return mean, -math.inf, math.inf
    half = student_t_quantile(0.5 + confidence / 2, len(differences) - 1) * std / math.sqrt(len(differences))
    return mean, mean - half, mean + half
