"""Smooth terms s(x, k, bs = "cr") as random effects, against mgcv.

Reference: mmbook/reference/mgcv_smooths.json (shipped with the package for the chapter too),
written by tests/data/make_mgcv.R (R 4.2.2, mgcv 1.8-41, nlme 3.1-162; versions in its "source"
field) from mmbook/reference/gam1.csv (mgcv's gamSim(1) example with a grouping factor added)
and mmbook's sleepstudy data.

What is compared, and why it is equal (see mmbook/engine/smooth.py and the R script):

* the basis: knots, model matrix, penalty, prediction matrix beyond the knots (mgcv's
  smoothCon with and without its constraint): to 1e-12; for the thin plate basis (bs = "tp",
  mgcv's default), defined up to a rotation, its invariants;
* the REML criterion: mmbook's (lme4's -2 l_R) is 2 * gam(method = "REML")$gcv.ubre and
  -2 * logLik(gamm()$lme); the ML deviance 2 * gam(method = "ML")$gcv.ubre. mgcv's
  optimizers stop within ~1e-8 of the optimum, so mmbook's must be equal within 1e-7
  (relative) or lower;
* lambda = sigma^2 / tau^2 is gam()$sp (relative 5e-3: the criterion is flat in log lambda,
  where mgcv stops with the criterion equal to ~1e-10 a relative change of lambda of a few 1e-3
  remains, most with several smooths and random effects); EDF (sum of gam()$edf over the
  smooth's coefficients) to 2e-4 (its value at mgcv's lambda moves accordingly);
* the fitted values, each smooth's contribution (predict(type = "terms")) and predictions on
  new data (beyond the data's range too) to 1e-4 of the response's standard deviation.

Where mgcv stops short of a boundary optimum (sleepstudy: the smooth of Days is a straight
line, lambda infinite), mmbook's criterion must be lower and its EDF 1.
"""

import warnings

import numpy as np
import pandas as pd
import pytest
import scipy.linalg as sla

import mmbook
from mmbook import reference
from mmbook.crosscheck import crosscheck
from mmbook.engine.smooth import (CubicRegressionSpline, MixedSmooth, SmoothSpec, ThinPlateSpline, parse_smooth,
                                  split_smooths)

REF = reference.load_json("mgcv_smooths.json")
FITS = {f["name"]: f for f in REF["fits"]}
GAM1 = pd.read_csv(reference.path("gam1.csv"))
SLEEP = mmbook.load_sleepstudy()
_cache: dict = {}


def data_of(name):
    return GAM1 if name == "gam1" else SLEEP


def fitted(name):
    if name not in _cache:
        r = FITS[name]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            _cache[name] = mmbook.lmer(r["formula"], data_of(r["data"]), REML=r["REML"])
    return _cache[name]


# ----------------------------------------------------------------------------- the formula term
def test_parse_smooth_forms():
    assert parse_smooth("s(x2, k = 10, bs = 'cr')") == SmoothSpec("x2", 10, "cr", "s(x2, k = 10, bs = 'cr')")
    assert parse_smooth('s(x,bs="cr")').k == 10
    assert parse_smooth("s(x)").bs == "tp"  # mgcv's default basis
    assert parse_smooth("s(x, 5)").k == 5
    assert parse_smooth("s(x, k = -1)").k == 10  # mgcv's default
    assert parse_smooth("log(x)") is None and parse_smooth("sqrt(x)") is None
    rhs, specs = split_smooths("x3 + s(x0) + s(x2, k = 12)")
    assert rhs == "x3" and [s.variable for s in specs] == ["x0", "x2"]
    assert split_smooths("s(x0)")[0] == "1"


@pytest.mark.parametrize("term, message", [
    ("s(x, bs = 'ps')", "not available"),
    ("s(x, bs = 'ad')", "not available"),
    ("s(x, k = 2)", "too small"),
    ("s(x, k = 4.5)", "whole number"),
    ("s(x, by = g)", "not supported"),
    ("s(x, z)", "one covariate"),
    ("s(1)", "name of a covariate"),
    ("s(x, k = n)", "literal"),
])
def test_parse_smooth_errors(term, message):
    with pytest.raises(ValueError, match=message):
        parse_smooth(term)


def test_formula_errors():
    with pytest.raises(ValueError, match="smoothed twice"):
        mmbook.lmer("y ~ s(x2) + s(x2, k = 5)", GAM1)
    with pytest.raises(ValueError, match="cannot be removed"):
        split_smooths("x3 - s(x2)")
    with pytest.raises(ValueError, match="unique values"):
        mmbook.lmer("Reaction ~ s(Days, k = 11) + (1 | Subject)", SLEEP)
    with pytest.raises(ValueError, match="insufficient unique values"):
        mmbook.lmer("Reaction ~ s(Days, k = 11, bs = 'cr') + (1 | Subject)", SLEEP)
    with pytest.raises(KeyError, match="nox"):
        mmbook.lmer("y ~ s(nox)", GAM1)
    d = GAM1.assign(gch=GAM1["g"].astype(str))
    with pytest.raises(TypeError, match="must be numeric"):
        mmbook.lmer("y ~ s(gch)", d)


# ------------------------------------------------------------------------------------ the basis
@pytest.mark.parametrize("name", list(REF["basis"]))
def test_basis_matches_mgcv(name):
    b = REF["basis"][name]
    x = data_of(b["data"].split("_")[0] if b["data"].startswith("gam1") else "sleepstudy")[b["variable"]]
    cr = CubicRegressionSpline(x, b["k"])
    np.testing.assert_allclose(cr.knots, b["knots"], rtol=0, atol=1e-12)
    X = np.array(b["X"])
    np.testing.assert_allclose(cr.basis(x)[:len(X)], X, rtol=0, atol=1e-12)
    np.testing.assert_allclose(cr.S, np.array(b["S"]), rtol=1e-12, atol=1e-12 * np.abs(cr.S).max())
    np.testing.assert_allclose(cr.basis(b["xnew"]), np.array(b["Xnew"]), rtol=0, atol=1e-12)  # incl. beyond the knots
    ms = MixedSmooth.of(SmoothSpec(b["variable"], b["k"], "cr"), x)
    assert ms.S_scale == pytest.approx(b["S_scale"], rel=1e-12)
    np.testing.assert_allclose(ms.eigenvalues, b["Sc_eigen"][:b["k"] - 2], rtol=1e-10)
    # the constrained basis spans mgcv's: the same Gram matrix up to an orthogonal change of basis
    Bc = ms.constrained_basis(x)
    np.testing.assert_allclose(np.linalg.eigvalsh(Bc.T @ Bc), np.linalg.eigvalsh(np.array(b["Xc_gram"])),
                               rtol=1e-10, atol=1e-10)
    # the constraint: the smooth sums to zero over the data; the mixed-model columns reproduce B_c
    assert np.abs(Bc.sum(axis=0)).max() < 1e-10 * len(x)
    M = np.column_stack([ms.fixed(x), ms.random(x)])
    A = np.column_stack([ms.U_fixed, ms.U_random])
    np.testing.assert_allclose(M, Bc @ A, atol=1e-12)
    # the penalty of b is the identity: A' S_c A = diag(0, I)
    Sc = ms.Q.T @ (cr.S / ms.S_scale) @ ms.Q
    P = A.T @ Sc @ A
    np.testing.assert_allclose(P, np.diag([0.0] + [1.0] * (b["k"] - 2)), atol=1e-10)


# ------------------------------------------------------------------------------------ the fits
SMOOTH_FITS = list(FITS)


def _mgcv_short(name, fit):
    """mgcv stopped short of the optimum (mmbook's criterion lower by more than 1e-10 relative, ten
    times the criterion's rounding noise)."""
    crit = FITS[name]["criterion"]
    return fit.objective < crit - 1e-10 * abs(crit)


@pytest.mark.parametrize("name", SMOOTH_FITS)
def test_criterion_matches_mgcv(name):
    r, fit = FITS[name], fitted(name)
    crit = r["criterion"]
    assert fit.objective <= crit + 1e-7 * abs(crit), (fit.objective, crit)
    if "sleep" not in name:
        assert fit.objective == pytest.approx(crit, rel=1e-7)
    if "gamm" in r:  # -2 logLik of gamm's lme fit is the same criterion (lme stops ~1e-8 short)
        assert fit.objective <= -2 * r["gamm"]["logLik"] + 1e-7 * abs(crit)
        assert fit.objective == pytest.approx(-2 * r["gamm"]["logLik"], rel=2e-7 if "sleep" not in name else 1e-6)


@pytest.mark.parametrize("name", SMOOTH_FITS)
def test_lambda_and_edf_match_mgcv(name):
    r, fit = FITS[name], fitted(name)
    sm = fit.smooths
    labels = [k for k in r["edf"] if k in sm.index]
    assert labels == list(sm.index)
    short = _mgcv_short(name, fit)  # then mgcv's lambda and EDF are a little off too
    for lab in labels:
        if not np.isfinite(sm.loc[lab, "lambda"]):  # the straight line: mgcv stops at lambda ~ 1e4 and more
            assert "sleep" in name and r["sp"][lab] > 1e4
            assert sm.loc[lab, "edf"] == pytest.approx(1.0, abs=1e-8)
            assert r["edf"][lab] == pytest.approx(1.0, abs=5e-3)
            continue
        assert sm.loc[lab, "lambda"] == pytest.approx(r["sp"][lab], rel=5e-3 if not short else 1e-2)
        assert sm.loc[lab, "edf"] == pytest.approx(r["edf"][lab], abs=2e-4 if not short else 2e-3)
        assert sm.loc[lab, "variance"] == pytest.approx(fit.sigma ** 2 / sm.loc[lab, "lambda"], rel=1e-12)


@pytest.mark.parametrize("name", SMOOTH_FITS)
def test_fitted_and_smooths_match_mgcv(name):
    r, fit = FITS[name], fitted(name)
    y = fit.mf.y
    tol = 1e-4 * y.std() if "sleep" not in name else 2e-3 * y.std()
    np.testing.assert_allclose(fit.fitted.to_numpy(), r["fitted"], rtol=0, atol=tol)
    sv = fit.smooth_values()
    for lab, vals in r["smooth_values"].items():
        np.testing.assert_allclose(sv[lab].to_numpy(), vals, rtol=0, atol=tol)
        assert abs(sv[lab].sum()) < 1e-8 * len(y) * y.std()  # mgcv's sum-to-zero constraint
    if "predict_newdata" in r:
        nd = pd.DataFrame(r["newdata"])
        np.testing.assert_allclose(fit.predict(nd).to_numpy(), r["predict_newdata"], rtol=0, atol=tol)
    # the intercept (and x3) are mgcv's parametric coefficients
    for nm, v in r["coefficients_parametric"].items():
        assert fit.fixef[nm] == pytest.approx(v, abs=tol)


@pytest.mark.parametrize("var", list(REF["tp_basis"]))
def test_thin_plate_basis_matches_mgcv(var):
    """mgcv's tp basis is defined up to a rotation; what is not: the penalty relative to the basis
    (the generalized eigenvalues of (S, B'B)), the centring and the columns' unit rms."""
    b = REF["tp_basis"][var]
    tp = ThinPlateSpline(GAM1[var], b["k"])
    assert tp.shift == pytest.approx(b["shift"][0], abs=1e-15)
    X = tp.basis(GAM1[var])
    ev = np.sort(np.linalg.eigvals(np.linalg.solve(X.T @ X, tp.S)).real)[::-1]
    np.testing.assert_allclose(ev, b["gen_eigen"], rtol=1e-9, atol=1e-9 * max(b["gen_eigen"]))
    np.testing.assert_allclose(np.sqrt((X ** 2).mean(axis=0)), b["colrms"], rtol=1e-12)
    # mgcv's penalty rescaling depends on the basis itself, not only its span: the same lambda
    ms = MixedSmooth.of(SmoothSpec(var, b["k"], "tp"), GAM1[var])
    assert fitted("tp_single").smooths.loc["s(x2)", "lambda"] == pytest.approx(FITS["tp_single"]["sp"]["s(x2)"],
                                                                             rel=1e-3)
    assert ms.U_random.shape == (b["k"] - 1, b["k"] - 2)


def test_thin_plate_limits():
    with pytest.raises(ValueError, match="fewer unique values"):
        ThinPlateSpline(np.arange(5.0), 10)
    # as many unique values as k: mgcv's "pure knot" basis, no eigen step
    tp = ThinPlateSpline(SLEEP["Days"], 10)
    assert tp.basis(SLEEP["Days"]).shape == (180, 10)


def test_gamm_with_random_slopes():
    """gamm(Reaction ~ s(Days, k = 5), random = list(Subject = ~Days)): mmbook's criterion at or below lme's."""
    r = REF["sleep_slope"]
    fit = mmbook.lmer(r["formula"], SLEEP)
    crit = -2 * r["logLik"]
    assert fit.objective <= crit + 1e-7 * crit
    assert fit.objective == pytest.approx(crit, rel=1e-6)
    assert fit.smooths.loc["s(Days)", "lambda"] == pytest.approx(r["sp"]["s(Days)"], rel=5e-3)
    assert fit.smooths.loc["s(Days)", "edf"] == pytest.approx(r["edf"]["s(Days)"], abs=1e-4)
    assert fit.sigma == pytest.approx(r["sigma"], rel=1e-4)
    np.testing.assert_allclose(fit.smooth_values()["s(Days)"], r["smooth_values"]["s(Days)"], atol=0.05)
    assert fit.fixef["(Intercept)"] == pytest.approx(r["fixef"]["X(Intercept)"], rel=1e-5)
    assert abs(fit.fixef["s(Days)Fx1"]) == pytest.approx(abs(r["fixef"]["Xs(Days)Fx1"]), rel=1e-5)


def test_edf_against_dense_influence_matrix():
    """EDF from the blocked factor = trace of the smooth's block of (C'C + P)^{-1} C'C, formed densely."""
    fit = fitted("with_group")
    C = np.column_stack([fit.mf.X, fit.Z.toarray()])
    lam = np.concatenate([np.zeros(fit.mf.p)] + [np.full(t.nlevels * t.q, 1.0 / fit.T(k)[0, 0] ** 2)
                                                   for k, t in enumerate(fit.terms)])
    F = np.linalg.solve(C.T @ C + np.diag(lam), C.T @ C)
    p, q_g = fit.mf.p, fit.terms[0].nlevels
    smooth_cols = [fit.mf.xnames.index("s(x2)Fx1")] + list(range(p + q_g, C.shape[1]))
    assert fit.smooths.loc["s(x2)", "edf"] == pytest.approx(np.trace(F[np.ix_(smooth_cols, smooth_cols)]), rel=1e-9)
    # and the smooth as the first term (alone)
    f1 = fitted("single")
    C = np.column_stack([f1.mf.X, f1.Z.toarray()])
    lam = np.r_[np.zeros(f1.mf.p), np.full(f1.terms[0].q, 1.0 / f1.T(0)[0, 0] ** 2)]
    F = np.linalg.solve(C.T @ C + np.diag(lam), C.T @ C)
    assert f1.smooths.loc["s(x2)", "edf"] == pytest.approx(np.trace(F[1:, 1:]), rel=1e-9)


def test_criterion_against_dense_marginal_likelihood():
    """The REML criterion from the penalized least squares = -2 l_R of y ~ N(X beta, Sigma), formed densely."""
    from mmbook.forms.marginal import marginal_cov, reml_logdensity

    fit = fitted("several")
    Sigma = marginal_cov(fit)
    assert fit.objective == pytest.approx(-2 * reml_logdensity(fit.mf.y, fit.mf.X, Sigma), rel=1e-10)


def test_standalone_smooth_is_the_only_random_term():
    fit = fitted("single")
    assert len(fit.terms) == 1 and fit.terms[0].nlevels == 1 and fit.terms[0].q == 8
    assert fit.ngroups == {"s(x2)": 1}
    assert not fit.is_singular
    assert list(fit.fixef.index) == ["(Intercept)", "s(x2)Fx1"]
    text = str(fit)
    assert "Smooth terms" in text and "s(x2)" in text


def test_smooth_at_zero_variance_is_not_a_singular_fit():
    fit = fitted("sleep_ri")
    assert fit.smooths.loc["s(Days)", "variance"] < 1e-10
    assert not fit.is_singular  # a straight line is an ordinary outcome for a smooth


def test_predict_and_simulate_hold_the_smooth():
    fit = fitted("with_group")
    nd = pd.DataFrame({"x2": [0.1, 0.5, 0.9], "g": ["g01", "g02", "new"]})
    pop = fit.predict(nd, re_form=None).to_numpy()
    sv = fit.smooth_values(nd)["s(x2)"].to_numpy()
    np.testing.assert_allclose(pop, fit.fixef["(Intercept)"] + sv, rtol=1e-12)
    cond = fit.predict(nd, allow_new_levels=True).to_numpy()
    b = fit.ranef["g"]["(Intercept)"]
    np.testing.assert_allclose(cond, pop + np.array([b["g01"], b["g02"], 0.0]), rtol=1e-12)
    # simulate: the smooth is part of the mean (held); the grouping factor's effects are drawn
    Y = fit.simulate(2000, seed=3, use_u=True).to_numpy()
    np.testing.assert_allclose(Y.mean(axis=1), fit.fitted.to_numpy(), atol=5 * fit.sigma / np.sqrt(2000))
    with pytest.raises((KeyError, ValueError), match="no column 'x2'"):
        fit.predict(pd.DataFrame({"g": ["g01"]}))


def test_missing_covariate_rows_removed_with_warning():
    d = GAM1.copy()
    d.loc[[3, 7], "x2"] = np.nan
    with pytest.warns(UserWarning, match="2 rows with missing values"):
        fit = mmbook.lmer("y ~ s(x2)", d)
    assert fit.nobs == len(d) - 2


def test_rank_deficient_linear_part_dropped():
    with pytest.warns(UserWarning, match=r"dropping 1 column.*s\(x2\)Fx1"):
        fit = mmbook.lmer("y ~ x2 + s(x2, k = 10, bs = 'cr')", GAM1)
    ref = fitted("single")
    assert fit.objective == pytest.approx(ref.objective + 2 * np.log(abs(
        np.linalg.qr(np.column_stack([np.ones(len(GAM1)), GAM1.x2]), mode="r")[1, 1]
        / np.linalg.qr(ref.mf.X, mode="r")[1, 1])), rel=1e-8)
    np.testing.assert_allclose(fit.fitted, ref.fitted, atol=1e-6)


def test_statsmodels_variance_component_crosscheck():
    """statsmodels MixedLM with the penalized columns as one variance component: the same REML fit."""
    for name in ("single", "with_group", "several"):
        cc = crosscheck(fitted(name))
        assert cc.agree, cc.verdict
        assert abs(cc.criterion_diff) < 1e-6 * fitted(name).objective
        assert "s(x2)" in cc.translation.vc_formula


def test_profile_interval_of_the_smooth_sd():
    fit = fitted("single")
    ci = fit.confint(parm=".sig01")
    lo, hi = ci.iloc[0]
    sd = fit.smooths.loc["s(x2)", "sd"]
    ml = fit.refit_ml()
    assert lo < ml.smooths.loc["s(x2)", "sd"] < hi and lo > 0
    # at each limit the ML deviance, minimised over sigma (beta profiled), is 1.96^2 above its minimum
    from scipy import optimize
    from mmbook.engine.pls import PLS

    pls = PLS(ml.mf, REML=False)
    n = ml.nobs

    def dev(sd_s, log_sigma):
        sigma = np.exp(log_sigma)
        F = pls.factor(np.array([sd_s / sigma]), full=False)
        return F.logdet_L + n * np.log(2 * np.pi * sigma ** 2) + F.pwrss / sigma ** 2

    for v in (lo, hi):
        r = optimize.minimize_scalar(lambda ls: dev(v, ls), bracket=(np.log(ml.sigma) - 0.1, np.log(ml.sigma) + 0.1))
        assert r.fun - ml.objective == pytest.approx(sla.norm([1.959963984540054]) ** 2, abs=2e-3)
    assert sd > 0


def test_thin_plate_random_knots_as_mgcv():
    """More than 2000 unique values: mgcv's 2000 knots drawn with R's set.seed(1), and its fit."""
    r = REF["tp_large"]
    i = np.arange(1, 2601)
    d = pd.DataFrame({"x": np.mod(i * 0.6180339887, 1.0)})
    d["y"] = np.sin(2 * np.pi * d["x"]) + 0.5 * np.sin(997 * i)
    tp = ThinPlateSpline(d["x"], 10)
    np.testing.assert_allclose(tp.xu[:25], r["knots_head"], rtol=0, atol=1e-15)
    assert tp.xu.sum() == pytest.approx(r["knots_sum"], abs=1e-9)
    X, Xr = tp.basis(d["x"])[:20], np.array(r["X_head"])
    signs = np.sign((X * Xr).sum(axis=0))  # the basis is mgcv's up to the signs of its columns
    np.testing.assert_allclose(X * signs, Xr, rtol=0, atol=1e-9)
    Xall = tp.basis(d["x"])
    ev = np.sort(np.linalg.eigvals(np.linalg.solve(Xall.T @ Xall, tp.S)).real)[::-1]
    np.testing.assert_allclose(ev, r["gen_eigen"], rtol=1e-8, atol=1e-8 * max(r["gen_eigen"]))
    fit = mmbook.lmer("y ~ s(x)", d)
    assert fit.objective == pytest.approx(r["criterion"], rel=1e-8)
    assert fit.smooths.loc["s(x)", "lambda"] == pytest.approx(r["sp"], rel=5e-3)
    assert fit.smooths.loc["s(x)", "edf"] == pytest.approx(r["edf"], abs=2e-4)


def test_r_sample_matches_r():
    """R's set.seed(1); sample(1:3000, 6), stored by make_mgcv.R (the draw behind mgcv's knots)."""
    assert list(mmbook.RRandom(1).sample(3000, 6)) == REF["tp_large"]["r_sample"]
