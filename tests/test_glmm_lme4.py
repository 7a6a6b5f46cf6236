"""mmbook.glmer against lme4 1.1-31's glmer (R 4.2.2, Matrix 1.5-3).

Reference: tests/data/lme4_glmer.json, written by tests/data/make_lme4_glmer.R from the data in
tests/data/glmm/*.csv (cbpp and grouseticks as lme4 ships them; simulated crossed, random-slope,
Poisson-with-exposure and singular binary designs). Every number is lme4's at a tight optimum (the
better of bobyqa and nloptwrap with tolerances 1e-10/1e-12 and PIRLS at tolPwrss = 1e-14; see the
script); `logLik_default` is lme4's default glmer.

Tolerances, per quantity:
- logLik: within 1e-6 of lme4's tight optimum, and never below it by more than 1e-8 (mmbook reaches
  the optimum). lme4's *default* fit stops short by up to 1.6e-3 here; mmbook is above it.
- theta and beta: 1e-5 (their optima agree to ~3e-7; the deviance is flat to 1e-9 over ~1e-5).
- vcov: lme4's default for a GLMM inverts a finite-difference Hessian of the deviance (step 1e-4);
  mmbook differences its exact gradient instead (finite differences of the deviance where there is
  none). They agree to a relative 1e-3 of the standard errors (1e-5 seen: lme4's rounding error).
  The R_X-based vcov depends on the estimates only: 1e-5 relative.
- ranef, fitted values, residuals, predictions: 1e-5 absolute; conditional variances 1e-4 relative.
"""

import json
import re
import warnings

import numpy as np
import pandas as pd
import pytest

import mmbook
from conftest import DATA
from mmbook.engine.control import SingularFitWarning

REF = json.loads((DATA / "lme4_glmer.json").read_text())["cases"]


def load(name: str) -> pd.DataFrame:
    """A data set as the R script read it back (read.csv, then factor() on the grouping columns)."""
    df = pd.read_csv(DATA / "glmm" / f"{name}.csv")
    if name == "cbpp":
        for v in ("herd", "period"):
            df[v] = pd.Categorical(df[v], categories=sorted(df[v].unique()))
    if name == "grouseticks":
        for v in ("INDEX", "BROOD", "YEAR", "LOCATION"):
            df[v] = pd.Categorical(df[v], categories=sorted(df[v].unique()))
        df["cHEIGHT"] = df["HEIGHT"] - df["HEIGHT"].mean()
    return df


FAMILY = {"cbpp_probit": mmbook.binomial("probit"), "cbpp_cloglog": mmbook.binomial("cloglog")}
KWARGS = {"cbpp_agq25": {"nAGQ": 25}, "cbpp_nagq0": {"nAGQ": 0}, "grouseticks_agq9": {"nAGQ": 9}, "cbpp_weights": {"weights": "size"},
          "poisson_offset": {"offset": "log(t)"}}
NAMES = list(REF)
_FITS: dict = {}


def as_list(x) -> list:
    """R's jsonlite writes a vector of length 1 as a scalar."""
    return x if isinstance(x, list) else [x]


def fit(name: str):
    if name not in _FITS:
        r = REF[name]
        fam = FAMILY.get(name, r["family"])
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            _FITS[name] = mmbook.glmer(r["formula"], load(r["data"]), family=fam, **KWARGS.get(name, {}))
        # a singular fit says so, as lme4 does; no other fit warns
        assert [type(w.message).__name__ for w in caught] == (["SingularFitWarning"] if r["is_singular"] else [])
    return _FITS[name]


@pytest.mark.parametrize("name", NAMES)
def test_loglik_reaches_lme4_tight_optimum(name):
    r, f = REF[name], fit(name)
    assert abs(f.loglik - r["logLik"]) < 1e-6
    assert f.loglik > r["logLik"] - 1e-8
    assert f.loglik >= r["logLik_default"] - 1e-8  # lme4's default fit stops short of the optimum
    assert abs(f.aic - r["AIC"]) < 2e-6 and abs(f.bic - r["BIC"]) < 2e-6
    assert f.npar == r["npar"] and f.df_resid == r["df_resid"] and f.nobs == r["nobs"]


@pytest.mark.parametrize("name", NAMES)
def test_estimates(name):
    r, f = REF[name], fit(name)
    assert list(f.fixef.index) == r["fixef_names"]
    np.testing.assert_allclose(f.fixef.to_numpy(), r["fixef"], atol=1e-5)
    np.testing.assert_allclose(f.theta, np.atleast_1d(r["theta"]), atol=1e-5)
    assert f.is_singular is r["is_singular"]


@pytest.mark.parametrize("name", NAMES)
def test_vcov(name):
    r, f = REF[name], fit(name)
    V, Vl = f.vcov.to_numpy(), np.array(r["vcov"]).reshape(f.vcov.shape)
    se = np.sqrt(np.diag(Vl))
    assert np.max(np.abs(V - Vl) / np.outer(se, se)) < 1e-3
    Vr, Vrl = f.vcov_rx.to_numpy(), np.array(r["vcov_rx"]).reshape(f.vcov.shape)
    np.testing.assert_allclose(Vr, Vrl, rtol=1e-5, atol=1e-5 * np.max(np.abs(Vrl)))


@pytest.mark.parametrize("name", NAMES)
def test_deviance_is_sum_of_squared_deviance_residuals(name):
    """lme4's deviance() of a GLMM: the sum of squared deviance residuals, not -2 logLik."""
    r, f = REF[name], fit(name)
    assert abs(f.deviance - r["deviance"]) < 1e-7 * r["deviance"]
    assert abs(f.deviance - np.sum(f.resid("deviance") ** 2)) < 1e-9 * f.deviance


@pytest.mark.parametrize("name", NAMES)
def test_fitted_residuals_predictions(name):
    r, f = REF[name], fit(name)
    np.testing.assert_allclose(f.fitted.to_numpy(), r["fitted"], atol=1e-5)
    np.testing.assert_allclose(f.predict(type="link").to_numpy(), r["eta"], atol=1e-5)
    np.testing.assert_allclose(f.predict(re_form=None).to_numpy(), r["eta_fixed"], atol=1e-5)
    np.testing.assert_allclose(f.predict(type="response").to_numpy(), r["fitted"], atol=1e-5)
    for kind in ("deviance", "pearson", "response", "working"):
        np.testing.assert_allclose(f.resid(kind).to_numpy(), r[f"resid_{kind}"], atol=1e-5)
    np.testing.assert_allclose(f.residuals.to_numpy(), r["resid_deviance"], atol=1e-5)


@pytest.mark.parametrize("name", NAMES)
def test_ranef_and_condvar(name):
    r, f = REF[name], fit(name)
    for block in r["ranef"]:
        ours = f.ranef[block["group"]]
        assert list(ours.index) == block["levels"]
        assert list(ours.columns) == as_list(block["columns"])
        np.testing.assert_allclose(ours.to_numpy(), np.array(block["values"]).T, atol=1e-5)
        q, m = len(as_list(block["columns"])), len(block["levels"])
        cv_ref = np.array(block["condvar"]).reshape(m, q, q)  # R's (q, q, m) array, column-major
        cv = f.ranef_condvar[block["group"]]
        np.testing.assert_allclose(cv, cv_ref, rtol=1e-4, atol=1e-8)


@pytest.mark.parametrize("name", NAMES)
def test_varcorr(name):
    r, f = REF[name], fit(name)
    ref = pd.DataFrame(r["varcorr"])
    assert list(f.varcorr.grp) == list(ref.grp)
    np.testing.assert_allclose(f.varcorr.vcov.to_numpy(), ref.vcov.to_numpy(), atol=2e-5)
    np.testing.assert_allclose(f.varcorr.sdcor.to_numpy(), ref.sdcor.to_numpy(), atol=2e-5)


def test_hessian_is_accurate():
    """The Hessian behind vcov does not depend on the difference step (it differences an exact
    gradient), and lme4's deriv12 with a larger step, where its rounding error is small, agrees."""
    from mmbook.engine.glmm_fit import deriv12

    f = fit("grouseticks")
    k = len(f.theta)

    def se(H):
        return np.sqrt(np.diag(2 * np.linalg.inv(H)[k:, k:]))

    def grad_diff(h):
        x = f.params
        cols = [(f._exact_gradient(x + h * e) - f._exact_gradient(x - h * e)) / (2 * h) for e in np.eye(len(x))]
        H = np.column_stack(cols)
        return 0.5 * (H + H.T)

    ours = np.sqrt(np.diag(f.vcov.to_numpy()))
    np.testing.assert_allclose(se(grad_diff(3e-5)), ours, rtol=1e-7)
    np.testing.assert_allclose(se(grad_diff(1e-3)), ours, rtol=3e-6)  # truncation error ~ h^2
    np.testing.assert_allclose(se(deriv12(f.criterion.objective, f.params, 1e-3)[1]), ours, rtol=3e-6)


def test_agq_printed_and_full_loglik():
    """nAGQ > 1: lme4's printed logLik leaves out -2 log p(y | mu = y); loglik_full keeps it."""
    for name in ("cbpp_agq25", "grouseticks_agq9"):
        r, f = REF[name], fit(name)
        assert abs(f.saturated_constant - r["saturated_constant"]) < 1e-9
        assert abs(f.loglik - r["logLik"]) < 1e-6
        assert abs(f.loglik_full - (r["logLik"] - 0.5 * r["saturated_constant"])) < 1e-6
    # the Laplace fit of the same cbpp model has its full log-likelihood printed; quadrature moves it a little
    assert abs(fit("cbpp_laplace").loglik_full - fit("cbpp_laplace").loglik) == 0
    assert abs(fit("cbpp_agq25").loglik_full - fit("cbpp_laplace").loglik) < 0.05


def test_response_forms_agree():
    """cbind(s, f), s/n with weights = n; a 0/1 response and a two-level factor; offset argument and offset()."""
    a, b = fit("cbpp_laplace"), fit("cbpp_weights")
    assert abs(a.loglik - b.loglik) < 1e-9
    np.testing.assert_allclose(a.fixef, b.fixef, atol=1e-8)
    c, d = fit("slopes_binary"), fit("slopes_factor")
    assert abs(c.loglik - d.loglik) < 1e-9
    e, g = fit("poisson_offset"), fit("poisson_offset_formula")
    assert abs(e.loglik - g.loglik) < 1e-9


@pytest.mark.parametrize("name", ["cbpp_laplace", "slopes_binary", "poisson_offset_formula"])
def test_predict_newdata(name):
    r, f = REF[name], fit(name)
    nd = {k: v for k, v in r["predict_newdata"].items() if k not in ("link", "response", "fixed", "note")}
    nd = pd.DataFrame(nd)
    if name == "cbpp_laplace":
        nd["period"] = pd.Categorical(nd["period"].astype(int), categories=f.data["period"].cat.categories)
    p = f.predict(nd, allow_new_levels=True)
    np.testing.assert_allclose(p.to_numpy(), r["predict_newdata"]["link"], atol=1e-5)
    pr = f.predict(nd, allow_new_levels=True, type="response")
    np.testing.assert_allclose(pr.to_numpy(), r["predict_newdata"]["response"], atol=1e-5)
    if "fixed" in r["predict_newdata"]:
        np.testing.assert_allclose(f.predict(nd, re_form=None).to_numpy(), r["predict_newdata"]["fixed"], atol=1e-5)


def test_predict_newdata_offset_argument_not_applied():
    """As lme4: with new data, the offset= of the fit is not applied (the formula's offset() is)."""
    r, f = REF["poisson_offset"], fit("poisson_offset")
    nd = pd.DataFrame({k: r["predict_newdata"][k] for k in ("x", "g", "t")})
    np.testing.assert_allclose(f.predict(nd, allow_new_levels=True).to_numpy(), r["predict_newdata"]["link"],
                               atol=1e-5)
    with_offset = f.predict(nd, allow_new_levels=True, offset="log(t)")
    np.testing.assert_allclose(with_offset.to_numpy(),
                               np.array(r["predict_newdata"]["link"]) + np.log(nd["t"].to_numpy()), atol=1e-12)


def test_anova_lrt():
    r = REF["cbpp_laplace"]["anova"]
    m1 = fit("cbpp_laplace")
    m0 = mmbook.glmer("cbind(incidence, size - incidence) ~ 1 + (1 | herd)", load("cbpp"), family="binomial")
    a = mmbook.anova(m0, m1)
    np.testing.assert_allclose(a["npar"].to_numpy(), r["npar"])
    np.testing.assert_allclose(a["logLik"].to_numpy(), r["logLik"], atol=1e-6)
    np.testing.assert_allclose(a["deviance"].to_numpy(), r["deviance"], atol=2e-6)
    assert abs(a["Chisq"].iloc[1] - r["Chisq"]) < 2e-6
    assert a["Df"].iloc[1] == r["Df"]
    assert abs(a["Pr(>Chisq)"].iloc[1] - r["p"]) < 1e-9


def test_anova_refuses_mixed_families():
    with pytest.warns(SingularFitWarning):
        lin = mmbook.lmer("incidence ~ period + (1 | herd)", load("cbpp"))
    with pytest.raises(ValueError, match="cannot be compared"):
        mmbook.anova(lin, fit("cbpp_laplace"))


def test_confint_wald():
    r = REF["cbpp_laplace"]["confint_wald"]
    ci = fit("cbpp_laplace").confint("Wald")
    assert list(ci.index) == r["rows"]
    assert np.isnan(ci.iloc[0]).all()
    np.testing.assert_allclose(ci.iloc[1:, 0], r["lower"][1:], atol=1e-3 * 0.3)
    np.testing.assert_allclose(ci.iloc[1:, 1], r["upper"][1:], atol=1e-3 * 0.3)


def test_confint_profile():
    """Profile limits; lme4 interpolates its profile with splines, good to about 1e-3."""
    r = REF["cbpp_laplace"]["confint_profile"]
    ci = fit("cbpp_laplace").confint("profile")
    assert list(ci.index) == r["rows"]
    np.testing.assert_allclose(ci.iloc[:, 0], r["lower"], atol=2e-3)
    np.testing.assert_allclose(ci.iloc[:, 1], r["upper"], atol=2e-3)


@pytest.mark.parametrize("name", ["cbpp_laplace", "cbpp_agq25", "cbpp_nagq0", "grouseticks", "slopes_binary",
                                  "singular_binary"])
def test_summary_matches_lme4(name):
    """lme4's printed summary, line for line, except the lines that name R objects (Data:, Control:),
    the curly quotes of the signif. legend, and the optimizer's name (L-BFGS-B, not bobyqa)."""
    expected = [line for line in REF[name]["summary"] if not re.match(r"^ *(Data|Control): ", line)]
    expected = [line.replace("\u2018", "'").replace("\u2019", "'").replace("(bobyqa)", "(L-BFGS-B)")
                .replace("(nloptwrap)", "(L-BFGS-B)").replace("see help('isSingular')", "see fit.is_singular")
                for line in expected]
    while expected and expected[-1] == "":
        expected.pop()
    ours = str(fit(name)).splitlines()
    assert len(ours) == len(expected)
    for a, b in zip(ours, expected):
        if a != b:
            assert _same_up_to_last_digit(a, b), (a, b)


def _same_up_to_last_digit(a: str, b: str) -> bool:
    """Two printed lines whose numbers differ by at most 1e-4 relative (or one unit of the last digit).

    The standard errors (and z and p values) of a GLMM come from a Hessian of the deviance by finite
    differences. lme4 differences the deviance itself with step 1e-4, whose rounding error reaches
    ~1e-5 relative in grouseticks' standard errors (0.1963712 where the Hessian is 0.1963735; see
    test_hessian_is_accurate); mmbook differences its exact gradient. A sixth significant digit then
    differs (0.196374 / 0.196371; p 0.057653 / 0.057650). Layout and all text must match.
    """
    ta, tb = a.split(), b.split()
    if len(a) != len(b) or len(ta) != len(tb):
        return False
    for x, y in zip(ta, tb):
        if x == y:
            continue
        try:
            fx, fy = float(x), float(y)
        except ValueError:
            return False
        decimals = len(y.split(".")[1]) if "." in y and "e" not in y else 0
        if "e" in y:
            mant, exp = y.split("e")
            decimals = len(mant.split(".")[1]) - int(exp) if "." in mant else -int(exp)
        if abs(fx - fy) > max(1.01 * 10.0 ** (-decimals), 1e-4 * abs(fy)):
            return False
    return True
