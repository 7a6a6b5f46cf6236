"""mmbook.lm: ordinary least squares with R's summary.lm output.

References, stated per test:
- R 4.2.2 numbers at full precision: tests/data/lm_sleepstudy.json, a copy of
  ../shared/reference/lm_sleepstudy.json (see tests/data/README.md).
- R 4.2.2 printed output: tests/data/lm_sleepstudy_summary.txt and
  tests/data/lm_rankdef_summary.txt, from the data in mmbook/data/sleepstudy.csv
  and tests/data/lm_rankdef.csv (see tests/data/README.md).
- statsmodels OLS (statsmodels.formula.api.ols), an independent computation.
"""

import json
import re
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import statsmodels.formula.api as smf

import mmbook
from mmbook.rcompat.lm import LmFit

DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="module")
def sleep():
    return mmbook.load_sleepstudy()


@pytest.fixture(scope="module")
def fit(sleep):
    return mmbook.lm("Reaction ~ Days", sleep)


@pytest.fixture(scope="module")
def r_ref():
    # R 4.2.2: summary(lm(Reaction ~ Days, data = sleepstudy)), full precision
    return json.loads((DATA / "lm_sleepstudy.json").read_text())


def r_printed(name: str) -> str:
    """R's printed summary from tests/data, with R's curly quotes in the
    'Signif. codes' line made straight (as the reference document shows them)."""
    text = (DATA / name).read_text(encoding="utf-8")
    return text.replace("\u2018", "'").replace("\u2019", "'").strip("\n") + "\n"


def sm_name(name: str) -> str:
    """statsmodels/formulaic column name -> R's: Intercept -> (Intercept),
    g[T.b] -> gb, h[u] -> hu."""
    if name == "Intercept":
        return "(Intercept)"
    return re.sub(r"\[(?:T\.)?([^\]]*)\]", r"\1", name)


def sm_fit(formula, data):
    res = smf.ols(formula, data).fit()
    res_names = [sm_name(c) for c in res.params.index]
    return res, res_names


# ---------------------------------------------------------------------------
# sleepstudy against R's numbers
# ---------------------------------------------------------------------------

def test_returns_lmfit(fit):
    assert isinstance(fit, LmFit)
    assert list(fit.coef.index) == ["(Intercept)", "Days"]
    assert fit.nobs == 180 and fit.rank == 2 and fit.n_dropped == 0


@pytest.mark.parametrize("attr,key", [("coef", "coef"), ("se", "se"), ("tvalues", "t")])
def test_coefficients_match_r(fit, r_ref, attr, key):
    got = getattr(fit, attr)
    for name, value in r_ref[key].items():
        assert got[name] == pytest.approx(value, rel=1e-12), name


def test_pvalues_match_r(fit, r_ref):
    # tiny tail probabilities: R's pt and scipy's t.sf agree to about 1e-9 relative
    for name, value in r_ref["p"].items():
        assert fit.pvalues[name] == pytest.approx(value, rel=1e-8), name


def test_fit_statistics_match_r(fit, r_ref):
    assert fit.sigma == pytest.approx(r_ref["sigma"], rel=1e-12)
    assert fit.df_resid == r_ref["df_resid"]
    assert fit.r_squared == pytest.approx(r_ref["r_squared"], rel=1e-12)
    assert fit.adj_r_squared == pytest.approx(r_ref["adj_r_squared"], rel=1e-12)
    assert fit.fvalue == pytest.approx(r_ref["f"], rel=1e-11)
    assert fit.f_df == tuple(r_ref["f_df"])
    # R prints the F test's p-value, which equals the Days t test's here (one numerator df)
    assert fit.f_pvalue == pytest.approx(r_ref["p"]["Days"], rel=1e-8)


def test_residual_quantiles_match_r(fit, r_ref):
    assert list(fit.resid_quantiles.index) == ["Min", "1Q", "Median", "3Q", "Max"]
    np.testing.assert_allclose(fit.resid_quantiles.to_numpy(), r_ref["resid_quantiles"],
                               rtol=1e-10, atol=1e-10)


def test_summary_is_r_printout(sleep):
    # R 4.2.2's print(summary(lm(Reaction ~ Days, data = sleepstudy)))
    fit = mmbook.lm("Reaction ~ Days", sleep, data_name="sleepstudy")
    assert fit.summary() == r_printed("lm_sleepstudy_summary.txt")
    assert str(fit) == fit.summary()


def test_call_names_the_data_as_the_caller_does():
    sleepstudy = mmbook.load_sleepstudy()
    assert mmbook.lm("Reaction~Days", sleepstudy).call == "lm(formula = Reaction ~ Days, data = sleepstudy)"
    assert mmbook.lm("Reaction ~ Days", mmbook.load_sleepstudy()).call.endswith("data = data)")


def test_summary_lines_of_the_reference_document(fit):
    text = fit.summary()
    for line in ["Residual standard error: 47.71 on 178 degrees of freedom",
                 "Multiple R-squared:  0.2865,\tAdjusted R-squared:  0.2825 ",
                 "F-statistic: 71.46 on 1 and 178 DF,  p-value: 9.894e-15",
                 "Signif. codes:  0 '***' 0.001 '**' 0.01 '*' 0.05 '.' 0.1 ' ' 1"]:
        assert line in text.splitlines()


def test_html_repr(fit):
    html = fit._repr_html_()
    assert "<table" in html and "(Intercept)" in html and "251.405" in html and "47.71" in html


def test_residuals_and_fitted(fit, sleep):
    np.testing.assert_allclose(fit.fitted + fit.residuals, sleep["Reaction"], rtol=1e-14)
    assert abs(fit.residuals.sum()) < 1e-9


# ---------------------------------------------------------------------------
# sleepstudy against statsmodels
# ---------------------------------------------------------------------------

def test_sleepstudy_matches_statsmodels(fit, sleep):
    res, names = sm_fit("Reaction ~ Days", sleep)
    assert names == list(fit.coef.index)
    np.testing.assert_allclose(fit.coef, res.params, rtol=1e-12)
    np.testing.assert_allclose(fit.se, res.bse, rtol=1e-12)
    np.testing.assert_allclose(fit.tvalues, res.tvalues, rtol=1e-12)
    np.testing.assert_allclose(fit.pvalues, res.pvalues, rtol=1e-9)
    np.testing.assert_allclose(fit.vcov.to_numpy(), res.cov_params().to_numpy(), rtol=1e-12)
    assert fit.sigma == pytest.approx(np.sqrt(res.scale), rel=1e-12)
    assert fit.df_resid == res.df_resid
    assert fit.r_squared == pytest.approx(res.rsquared, rel=1e-12)
    assert fit.adj_r_squared == pytest.approx(res.rsquared_adj, rel=1e-12)
    assert fit.fvalue == pytest.approx(res.fvalue, rel=1e-11)
    assert fit.f_pvalue == pytest.approx(res.f_pvalue, rel=1e-9)
    np.testing.assert_allclose(fit.resid_quantiles, np.quantile(res.resid, [0, .25, .5, .75, 1]),
                               rtol=1e-10)


# ---------------------------------------------------------------------------
# Random data with factors and interactions, against statsmodels
# ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def random_data():
    rng = np.random.default_rng(20260124)
    n = 300
    d = pd.DataFrame({
        "x": rng.normal(size=n),
        "z": rng.uniform(-2, 2, size=n),
        "g": rng.choice(["a", "b", "c"], size=n),
        "h": pd.Categorical(rng.choice(["u", "v"], size=n)),
    })
    d["y"] = (2 + 0.5 * d["x"] - 0.3 * d["z"] + np.where(d["g"] == "b", 1.0, 0.0)
              + 0.4 * d["x"] * (d["g"] == "c") + rng.normal(scale=1.5, size=n))
    return d


@pytest.mark.parametrize("formula", [
    "y ~ x",
    "y ~ x + g",
    "y ~ x * g",
    "y ~ g * h + z",
    "y ~ x * g + z:h",
    "y ~ x:z + g",
])
def test_random_data_matches_statsmodels(random_data, formula):
    fit = mmbook.lm(formula, random_data)
    res, names = sm_fit(formula, random_data)
    assert set(names) == set(fit.coef.index)
    order = [names.index(c) for c in fit.coef.index]  # compare by name
    np.testing.assert_allclose(fit.coef, res.params.iloc[order], rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(fit.se, res.bse.iloc[order], rtol=1e-10)
    np.testing.assert_allclose(fit.tvalues, res.tvalues.iloc[order], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(fit.pvalues, res.pvalues.iloc[order], rtol=1e-8, atol=1e-14)
    assert fit.sigma == pytest.approx(np.sqrt(res.scale), rel=1e-12)
    assert fit.df_resid == res.df_resid
    assert fit.r_squared == pytest.approx(res.rsquared, rel=1e-10)
    assert fit.adj_r_squared == pytest.approx(res.rsquared_adj, rel=1e-10)
    assert fit.fvalue == pytest.approx(res.fvalue, rel=1e-10)
    assert fit.f_df == (int(res.df_model), int(res.df_resid))
    assert fit.f_pvalue == pytest.approx(res.f_pvalue, rel=1e-8)


def test_no_intercept_uses_uncentred_r_squared(random_data):
    # R (and statsmodels without a constant) measure R^2 about zero
    fit = mmbook.lm("y ~ 0 + x + z", random_data)
    res = smf.ols("y ~ 0 + x + z", random_data).fit()
    assert not fit.has_intercept
    assert fit.r_squared == pytest.approx(res.rsquared, rel=1e-10)
    assert fit.fvalue == pytest.approx(res.fvalue, rel=1e-10)
    assert fit.f_df == (2, len(random_data) - 2)


def test_intercept_only(random_data):
    fit = mmbook.lm("y ~ 1", random_data)
    assert fit.coef["(Intercept)"] == pytest.approx(random_data["y"].mean(), rel=1e-13)
    assert np.isnan(fit.fvalue) and np.isnan(fit.r_squared)
    text = fit.summary()
    assert "F-statistic" not in text and "R-squared" not in text  # R prints neither


# ---------------------------------------------------------------------------
# Rank-deficient X
# ---------------------------------------------------------------------------

def test_rank_deficient_matches_r_printout():
    # tests/data/lm_rankdef.csv: x2 = 2 x, one missing y; R 4.2.2's printout beside it
    d = pd.read_csv(DATA / "lm_rankdef.csv")
    with pytest.warns(UserWarning, match="1 row"):
        fit = mmbook.lm("y ~ x + x2 + g * h", d, data_name="d")
    assert fit.summary() == r_printed("lm_rankdef_summary.txt")


def test_rank_deficient_coefficients_are_nan(random_data):
    d = random_data.assign(x2=2 * random_data["x"] - 1)  # x2 = 2x - 1 is aliased
    fit = mmbook.lm("y ~ x + x2 + g", d)
    full = mmbook.lm("y ~ x + g", d)
    assert fit.aliased.to_dict() == {"(Intercept)": False, "x": False, "x2": True,
                                     "gb": False, "gc": False}
    assert fit.rank == 4 and fit.df_resid == len(d) - 4
    for attr in ("coef", "se", "tvalues", "pvalues"):
        s = getattr(fit, attr)
        assert np.isnan(s["x2"])
        np.testing.assert_allclose(s.drop("x2"), getattr(full, attr), rtol=1e-10)
    assert fit.vcov.loc["x2"].isna().all() and fit.vcov["x2"].isna().all()
    assert fit.sigma == pytest.approx(full.sigma, rel=1e-12)
    assert fit.r_squared == pytest.approx(full.r_squared, rel=1e-12)
    assert fit.fvalue == pytest.approx(full.fvalue, rel=1e-12) and fit.f_df == full.f_df
    text = fit.summary()
    assert "Coefficients: (1 not defined because of singularities)" in text
    assert re.search(r"^x2 +NA +NA +NA +NA", text, flags=re.M)


def test_aliased_factor_level(random_data):
    # a second copy of a factor: every one of its columns is aliased
    d = random_data.assign(g2=random_data["g"])
    fit = mmbook.lm("y ~ g + g2", d)
    assert fit.aliased[["g2b", "g2c"]].all() and not fit.aliased[["gb", "gc"]].any()
    assert "(2 not defined because of singularities)" in fit.summary()


def test_zero_column_is_aliased(random_data):
    d = random_data.assign(zero=0.0)
    fit = mmbook.lm("y ~ x + zero", d)
    assert fit.aliased["zero"] and np.isnan(fit.coef["zero"])


# ---------------------------------------------------------------------------
# Bad input
# ---------------------------------------------------------------------------

def test_missing_column(sleep):
    with pytest.raises(KeyError, match="Hours"):
        mmbook.lm("Reaction ~ Hours", sleep)


def test_non_numeric_response(sleep):
    with pytest.raises(TypeError, match="numeric"):
        mmbook.lm("Subject ~ Days", sleep)


def test_not_a_formula_or_frame(sleep):
    with pytest.raises(TypeError, match="formula"):
        mmbook.lm(["Reaction", "Days"], sleep)
    with pytest.raises(TypeError, match="DataFrame"):
        mmbook.lm("Reaction ~ Days", sleep.to_numpy())


def test_random_effects_terms_are_refused(sleep):
    with pytest.raises(ValueError, match="lmer"):
        mmbook.lm("Reaction ~ Days + (Days | Subject)", sleep)


def test_nan_rows_dropped_with_warning(sleep):
    d = sleep.copy()
    d.loc[[3, 50, 51], "Reaction"] = np.nan
    d.loc[[99], "Days"] = np.nan
    with pytest.warns(UserWarning, match=r"\b4 rows\b"):
        fit = mmbook.lm("Reaction ~ Days", d)
    assert fit.nobs == 176 and fit.n_dropped == 4 and fit.df_resid == 174
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ref = smf.ols("Reaction ~ Days", d.dropna()).fit()
    np.testing.assert_allclose(fit.coef, ref.params, rtol=1e-12)
    assert "  (4 observations deleted due to missingness)" in fit.summary().splitlines()


def test_complete_data_gives_no_warning(sleep):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        mmbook.lm("Reaction ~ Days", sleep)
