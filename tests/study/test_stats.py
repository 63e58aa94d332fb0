"""study.stats against values computed by hand (and printed t tables), not against itself."""
import math

import pytest

from study import stats
from study.convergence import convergence, time_to


def test_mean_std_by_hand():
    assert stats.mean([1, 2, 3, 4]) == 2.5
    assert stats.std([1, 2, 3, 4]) == pytest.approx(math.sqrt(5 / 3))  # sample (n - 1) std
    assert stats.std([0.7]) == 0.0


@pytest.mark.parametrize("df,t975", [(1, 12.706205), (2, 4.302653), (3, 3.182446), (4, 2.776445),
                                     (9, 2.262157), (29, 2.045230)])
def test_t_quantile_matches_printed_tables(df, t975):
    assert stats.t_quantile(0.975, df) == pytest.approx(t975, abs=2e-6)
    assert stats.t_quantile(0.025, df) == pytest.approx(-t975, abs=2e-6)


def test_t_cdf_closed_forms():
    # df=1 is Cauchy: 1/2 + atan(t)/pi; df=2: 1/2 + t / (2 sqrt(2 + t^2)).
    for t in (-3.0, -0.5, 0.0, 0.7, 4.0):
        assert stats.t_cdf(t, 1) == pytest.approx(0.5 + math.atan(t) / math.pi)
        assert stats.t_cdf(t, 2) == pytest.approx(0.5 + t / (2 * math.sqrt(2 + t * t)))
    assert stats.t_cdf(2.0, 10) == pytest.approx(0.963306, abs=1e-6)


def test_paired_not_significant_by_hand():
    # differences 0.01, 0.02, 0.03: mean 0.02, sd 0.01, se 0.01/sqrt(3), t(0.975, 2) = 4.302653
    p = stats.paired({0: 0.70, 1: 0.72, 2: 0.74, 9: 0.5}, {0: 0.69, 1: 0.70, 2: 0.71})
    half = 4.302653 * 0.01 / math.sqrt(3)
    assert p.n == 3
    assert p.mean_diff == pytest.approx(0.02)
    assert p.std_diff == pytest.approx(0.01)
    assert (p.ci_low, p.ci_high) == (pytest.approx(0.02 - half, abs=1e-7), pytest.approx(0.02 + half, abs=1e-7))
    tstat = 0.02 / (0.01 / math.sqrt(3))
    assert p.p_value == pytest.approx(2 * (0.5 - tstat / (2 * math.sqrt(2 + tstat ** 2))))  # df=2 closed form
    assert p.p_value == pytest.approx(0.0742, abs=1e-4)
    assert p.significant is False and p.verdict() == "not significant"


def test_paired_significant_and_one_seed():
    p = stats.paired({0: 0.75, 1: 0.76, 2: 0.77}, {0: 0.70, 1: 0.70, 2: 0.70})
    assert p.significant is True and p.ci_low == pytest.approx(0.06 - 4.302653 * 0.01 / math.sqrt(3), abs=1e-7)
    one = stats.paired({0: 0.7}, {0: 0.6})
    assert one.ci_low is None and one.significant is None and one.mean_diff == pytest.approx(0.1)
    with pytest.raises(ValueError):
        stats.paired({0: 0.7}, {1: 0.6})


def test_convergence_first_epoch_and_seconds():
    rows = [{"epoch": 1, "val_accuracy": 0.40, "seconds": 10}, {"epoch": 2, "val_accuracy": 0.55, "seconds": 12},
            {"epoch": 3, "val_accuracy": 0.52, "seconds": 11}, {"epoch": 4, "val_accuracy": 0.61, "seconds": 9}]
    assert time_to(rows, 0.5) == {"epoch": 2, "seconds": 22}
    assert time_to(rows, 0.6) == {"epoch": 4, "seconds": 42}
    assert time_to(rows, 0.9) is None
    assert convergence(rows, (0.5, 0.9)) == {"0.50": {"epoch": 2, "seconds": 22}, "0.90": None}
