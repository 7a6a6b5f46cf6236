"""mmbook.inference.emmeans against emmeans 1.8.4-1 (tests/data/lmertest.json, tests/data/make_lmertest.R).

The comparisons are made at lme4's optimum (see tests/test_inference_ddf.py for why), where the
means, standard errors and df agree to ~1e-9 (relative): 1e-6 is asserted. R's ``ptukey`` is a
numerical quadrature accurate to about 1e-10 absolute (the Tukey p-value 7.9e-14 of one contrast
differs from scipy's by 7%), so Tukey p-values are compared with an absolute tolerance of 1e-9.
"""

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from mmbook.inference import emmeans
from mmbook.inference.emmeans import PBKRTEST_LIMIT

from conftest import DATA
from test_inference_ddf import REF, at_r, col, fit_of

CASES = {
    "splitplot_A_kr": ("splitplot", "A", "Kenward-Roger"),
    "splitplot_A_satterthwaite": ("splitplot", "A", "Satterthwaite"),
    "splitplot_B_kr": ("splitplot", "B", "Kenward-Roger"),
    "unbal_u1_B_kr": ("unbal_u1", "B", "Kenward-Roger"),
    "unbal_u1_A_satterthwaite": ("unbal_u1", "A", "Satterthwaite"),
    "unbal_u1_AB_kr": ("unbal_u1", ["A", "B"], "Kenward-Roger"),
    "unbal_u2_B_kr": ("unbal_u2", "B", "Kenward-Roger"),
    "crossed_cond_kr": ("crossed", "cond", "Kenward-Roger"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_means_match_emmeans(case):
    model, specs, ddf = CASES[case]
    ref = REF["emmeans"][case]
    e = emmeans(at_r(model), specs, ddf=ddf)
    specs = [specs] if isinstance(specs, str) else specs
    for s in specs:
        assert e.table[s].tolist() == list(np.atleast_1d(ref["emmeans"][s]))
    for c in ["emmean", "SE", "df", "lower.CL", "upper.CL"]:
        np.testing.assert_allclose(e.table[c], col(ref["emmeans"], c), rtol=1e-6, err_msg=c)
    t90 = e.summary(level=0.9)
    np.testing.assert_allclose(t90["lower.CL"], col(ref["emmeans_90"], "lower.CL"), rtol=1e-6)


@pytest.mark.parametrize("adjust", ["tukey", "holm", "bonferroni", "none"])
@pytest.mark.parametrize("case", list(CASES))
def test_pairs_match_emmeans(case, adjust):
    model, specs, ddf = CASES[case]
    ref = REF["emmeans"][case][f"pairs_{adjust}"]
    # Tukey intervals where the df are few (each distinct df costs one numerical quantile)
    confint = adjust != "tukey" or len(set(np.round(col(ref, "df"), 6))) <= 3
    p = emmeans(at_r(model), specs, ddf=ddf).pairs(adjust=adjust, confint=confint)
    assert p["contrast"].tolist() == list(np.atleast_1d(ref["contrast"]))
    for c in ["estimate", "SE", "df", "t.ratio"] + (["lower.CL", "upper.CL"] if confint else []):
        np.testing.assert_allclose(p[c], col(ref, c), rtol=1e-6, atol=1e-12, err_msg=c)
    if adjust == "tukey":
        np.testing.assert_allclose(p["p.value"], col(ref, "p.value"), rtol=1e-6, atol=1e-9)
    else:
        np.testing.assert_allclose(p["p.value"], col(ref, "p.value"), rtol=1e-5)


def test_balanced_means_are_raw_means():
    """In the balanced split plot every cell has the same size, so a marginal mean is the raw mean of
    its rows, and emmeans' equal weights change nothing (an independent check of the grid)."""
    data = pd.read_csv(DATA / "designs" / "splitplot.csv")
    fit = fit_of("splitplot")
    for s in ["A", "B"]:
        e = emmeans(fit, s)
        raw = data.groupby(s)["y"].mean()
        np.testing.assert_allclose(e.table["emmean"], raw.loc[e.table[s]].to_numpy(), rtol=1e-10)


def test_unbalanced_means_weight_cells_equally():
    """In the unbalanced design the mean of B = lo is the equal-weight average over A's levels of
    the model's predictions at lo, with x at its mean - not the raw mean of the lo rows."""
    data = pd.read_csv(DATA / "designs" / "unbal_inter.csv")
    fit = fit_of("unbal_u1")
    grid = pd.DataFrame({"A": ["ctl", "trt"], "B": ["lo", "lo"], "x": data["x"].mean()})
    expected = fit.predict(grid, re_form=None).mean()
    e = emmeans(fit, "B")
    assert e.table.set_index("B").loc["lo", "emmean"] == pytest.approx(expected, rel=1e-12)
    assert abs(expected - data.loc[data["B"] == "lo", "y"].mean()) > 0.01


def test_tukey_interval_uses_studentized_range():
    """Tukey's interval half-width is q(0.95; k, df) / sqrt(2) times the standard error."""
    p = emmeans(fit_of("splitplot"), "A").pairs("tukey", confint=True)
    assert list(p.columns) == ["contrast", "estimate", "SE", "df", "lower.CL", "upper.CL", "t.ratio", "p.value"]
    assert np.ptp(p["df"]) < 1e-8  # balanced: one df
    q = stats.studentized_range.ppf(0.95, 3, p["df"].iloc[0])
    np.testing.assert_allclose((p["upper.CL"] - p["estimate"]) / p["SE"], q / np.sqrt(2), rtol=1e-12)


def test_default_ddf_follows_emmeans():
    assert emmeans(fit_of("splitplot"), "A").ddf == "Kenward-Roger"
    assert emmeans(fit_of("unbal_u2_ML"), "A").ddf == "Satterthwaite"
    assert PBKRTEST_LIMIT == 3000
    e = emmeans(fit_of("splitplot"), "A", ddf="asymptotic")
    assert np.all(np.isinf(e.table["df"]))


def test_emmeans_errors():
    fit = fit_of("unbal_u1")
    with pytest.raises(KeyError, match="'x' is not a factor of the fixed part"):
        emmeans(fit, "x")
    with pytest.raises(ValueError, match="ddf must be"):
        emmeans(fit, "A", ddf="containment")
    with pytest.raises(ValueError, match="adjust must be one of"):
        emmeans(fit, "A").pairs("scheffe")
    with pytest.raises(ValueError, match="level must be between 0 and 1"):
        emmeans(fit, "A", level=1.5)
    with pytest.raises(ValueError, match="Kenward-Roger's method is only available for REML"):
        emmeans(fit_of("unbal_u2_ML"), "A", ddf="Kenward-Roger")
