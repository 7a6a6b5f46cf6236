"""mmbook.inference.r2: Nakagawa & Schielzeth's R² and the adjusted ICC.

References (tests/data/lmertest.json, written by tests/data/make_lmertest.R):

* ``r2_formula``: the published formulas evaluated in R from lme4's fit (every random-effects
  term, each with its own model matrix, ``getME(m, "mmList")`` and ``"Tlist"``);
* ``r2_marginal``, ``r2_conditional``, ``icc_adjusted``, ``icc_unadjusted``: performance 0.10.2
  (insight 0.19.0), which agrees with the formulas except where it drops the second term of a
  grouping factor (``(Days || Subject)``) or a random-effects column that is not a column of X
  (``(0 + f | g)``), and where the fit is singular (then it leaves the random variance out).

The variances are smooth in theta; at mmbook's optimum (lme4's is up to 4e-5 away in theta, see
tests/test_inference_ddf.py) they agree to 1e-4 (relative); at lme4's optimum to 1e-10.
"""

import warnings

import numpy as np
import pandas as pd
import pytest

import mmbook
from mmbook.inference import icc, r2
from mmbook.inference.r2 import variance_components

from conftest import DATA
from test_inference_ddf import MODELS, at_r, fit_of

KEYS = [("marginal", "r2_marginal", r2), ("conditional", "r2_conditional", r2),
        ("adjusted", "icc_adjusted", icc), ("unadjusted", "icc_unadjusted", icc)]


SINGULAR = [m for m in MODELS if m == "singular_slope"]


@pytest.mark.parametrize("name", list(MODELS))
def test_r2_and_icc_match_the_formulas(name):
    ref = MODELS[name]["r2_formula"]
    for fit, rtol in [(at_r(name), 1e-10), (fit_of(name), 1e-4)]:
        v = variance_components(fit)
        # the zero variance of the singular fit (lme4's theta is 0, mmbook's 1e-10); the zero
        # variance of a constant fixed part (intercept only) is 2e-31 in floating point
        atol = 1e-9 if name in SINGULAR else 1e-20
        for key, rkey in [("fixed", "var_fixed"), ("random", "var_random"), ("residual", "var_residual")]:
            assert v[key] == pytest.approx(ref[rkey], rel=rtol, abs=atol)
        if name in SINGULAR:  # r2() and icc() drop the random variance of a singular fit (below)
            continue
        for key, rkey, f in KEYS:
            assert f(fit)[key] == pytest.approx(ref[rkey], rel=rtol, abs=1e-20)


# the two models where performance 0.10.2 loses a variance (see the tests below)
DIFFERENT = ["sleep_uncorr", "cat_factor_slope"]


@pytest.mark.parametrize("name", [m for m in MODELS if m not in DIFFERENT])
def test_r2_and_icc_match_performance(name):
    r = MODELS[name]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore" if name in SINGULAR else "error")
        for key, rkey, f in KEYS:
            value, expected = f(at_r(name))[key], r[rkey]
            if expected is None:  # performance: NA for a singular fit
                assert np.isnan(value)
            else:
                assert value == pytest.approx(expected, rel=1e-10, abs=1e-20)


def test_performance_uses_the_columns_of_x():
    """For (0 + f | g) insight 0.19.0 takes the columns of X named like the term's (fB, fC: X has no
    fA), so the variance of level A's effect is lost; mmbook uses the term's own indicators."""
    fit = at_r("cat_factor_slope")
    names = list(fit.terms[0].cnames)
    assert names == ["fA", "fB", "fC"] and "fA" not in fit.mf.xnames
    keep = [names.index(c) for c in names if c in fit.mf.xnames]
    Z = fit.X[:, [list(fit.mf.xnames).index(names[k]) for k in keep]]
    S = fit.psi(0)[np.ix_(keep, keep)]
    v = variance_components(fit)
    r_insight = np.mean(np.einsum("na,ab,nb->n", Z, S, Z))
    f, e = v["fixed"], v["residual"]
    ref = MODELS["cat_factor_slope"]
    assert (f + r_insight) / (f + r_insight + e) == pytest.approx(ref["r2_conditional"], rel=1e-10)
    assert r2(fit)["conditional"] == pytest.approx(ref["r2_formula"]["r2_conditional"], rel=1e-10)


def test_performance_drops_the_second_term_of_a_factor():
    """With (Days || Subject) insight 0.19.0 counts only the (1 | Subject) term: its value is what
    the formulas give without the slope term's variance."""
    fit = at_r("sleep_uncorr")
    v = variance_components(fit)
    slope_var = fit.psi(1)[0, 0] * np.mean(fit.terms[1].z[:, 0] ** 2)
    f, r, e = v["fixed"], v["random"] - slope_var, v["residual"]
    assert (f + r) / (f + r + e) == pytest.approx(MODELS["sleep_uncorr"]["r2_conditional"], rel=1e-10)
    assert r2(fit)["conditional"] > MODELS["sleep_uncorr"]["r2_conditional"] + 0.05


def test_random_intercept_icc_is_the_familiar_one():
    """One random intercept: the adjusted ICC is tau^2 / (tau^2 + sigma^2), the fit's own icc()."""
    fit = fit_of("sleep_int")
    assert icc(fit)["adjusted"] == pytest.approx(fit.icc(), rel=1e-12)


def test_random_slope_variance_is_the_row_average():
    """For (Days | Subject): sigma_r^2 = tau_0^2 + 2 tau_01 mean(Days) + tau_1^2 mean(Days^2)."""
    fit = fit_of("sleep_slope")
    psi = fit.psi(0)
    days = fit.mf.frame["Days"].to_numpy(dtype=float)
    expected = psi[0, 0] + 2 * psi[0, 1] * days.mean() + psi[1, 1] * np.mean(days ** 2)
    assert variance_components(fit)["random"] == pytest.approx(expected, rel=1e-12)


def test_singular_fit_warns_and_drops_the_random_variance():
    data = pd.read_csv(DATA / "designs" / "singular.csv")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = mmbook.lmer("y ~ x + (1 | g)", data)
    assert fit.is_singular
    with pytest.warns(UserWarning, match="singular fit"):
        out = r2(fit)
    v = variance_components(fit)
    assert out["marginal"] == pytest.approx(v["fixed"] / (v["fixed"] + v["residual"]), rel=1e-12)
    assert np.isnan(out["conditional"])
    with pytest.warns(UserWarning, match="singular fit"):
        assert np.isnan(icc(fit)["adjusted"])
