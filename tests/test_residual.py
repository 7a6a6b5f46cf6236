"""Correlated residuals (AR(1), compound symmetry) in lmer and gls, against nlme.

Reference: mmbook/reference/nlme_corr.json (shipped with the package for the chapter too),
written by tests/data/make_nlme_corr.R (R 4.2.2, nlme 3.1-162; versions in its "source" field)
from mmbook's sleepstudy data and the simulated series mmbook/reference/corr_*.csv (balanced;
whole-number times with gaps, rows shuffled; random slopes; continuous times, nlme's corCAR1).

Tolerances. nlme's REML log-likelihood is lme4's (with log|R| added), so -2 logLik is
mmbook's criterion: equal within 1e-7 (relative) or mmbook lower. nlme stops with a
relative change of the criterion of ~1e-6 where it is flat, so the variance parameters are
compared to 5e-4 of the largest (sigma to 2e-4), phi and rho to 1e-4 absolute (they are of
order 1), and the fixed effects to 1e-3 of their standard errors. For the gls fits, whose one-dimensional
optimum both programs find to many digits, the criteria must agree to 1e-9.

On sleepstudy with random slopes nlme's default optimizer stops ("iteration limit reached");
with more iterations and optim it stops at a point mmbook improves on: mmbook's criterion must
be lower there (its optimum has a correlation of the random effects at +1).
"""

import warnings

import numpy as np
import pandas as pd
import pytest

import mmbook
from mmbook import reference
from mmbook.crosscheck import gls_crosscheck
from mmbook.engine.residual import AR1, CompoundSymmetry, parse_residual, residual_correlation

REF = reference.load_json("nlme_corr.json")
FITS = {f["name"]: f for f in REF["fits"]}
SETS = {"sleepstudy": mmbook.load_sleepstudy()}
for _n in ("balanced", "gaps", "slopes", "continuous"):
    SETS[_n] = pd.read_csv(reference.path(f"corr_{_n}.csv"))
_cache: dict = {}


def fitted(name):
    if name not in _cache:
        r = FITS[name]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if r["kind"] == "gls":
                _cache[name] = mmbook.gls(r["formula"], SETS[r["data"]], correlation=r["residual"], REML=r["REML"])
            else:
                _cache[name] = mmbook.lmer(r["formula"], SETS[r["data"]], REML=r["REML"], residual=r["residual"])
    return _cache[name]


LME = [n for n, r in FITS.items() if r["kind"] == "lme" and "error" not in r and not n.startswith("sleep_slope")]
GLS = [n for n, r in FITS.items() if r["kind"] == "gls"]


# ------------------------------------------------------------------------ the structures
def test_parse_residual():
    s = parse_residual("ar1(Days | Subject)")
    assert (s.kind, s.time, s.group) == ("ar1", "Days", "Subject")
    assert parse_residual("AR1(~ t | a:b)").group == "a:b"
    assert parse_residual("ar1(t)").group is None
    assert parse_residual("ar1(1 | g)").time is None
    assert parse_residual("cs(1 | g)").kind == "cs"
    for bad, msg in [("ar2(t | g)", "write"), ("cs(t | g)", "no time covariate"), ("ar1(t | g+h)", "column name"),
                     ("ar1(log(t) | g)", "column name")]:
        with pytest.raises(ValueError, match=msg):
            parse_residual(bad)
    with pytest.raises(TypeError):
        parse_residual(1)


def _dense_R(corr, eta):
    R = np.zeros((corr.n, corr.n))
    for c in range(len(corr.labels)):
        idx = np.flatnonzero(corr.codes == c)
        R[np.ix_(idx, idx)] = corr.matrix(eta, c)
    return R


@pytest.mark.parametrize("data, spec, value", [
    ("gaps", "ar1(t | id)", 0.7), ("gaps", "ar1(t | id)", -0.4), ("continuous", "ar1(t | id)", 0.6),
    ("sleepstudy", "ar1(1 | Subject)", 0.5), ("slopes", "cs(1 | id)", 0.3), ("slopes", "cs(1 | id)", -0.1),
])
def test_whitening_inverts_R(data, spec, value):
    """W'W = R^{-1}, log|R| and the colouring W^{-1}, against the dense correlation matrix."""
    frame = SETS[data]
    if spec.startswith("cs"):  # unbalanced clusters: drop some rows
        frame = frame.iloc[np.r_[0:50, 57:len(frame)]]
    corr = residual_correlation(spec, frame)
    eta = corr.eta_of(value)
    assert corr.value(eta) == pytest.approx(value, abs=1e-14)
    R = _dense_R(corr, eta)
    W = corr.whiten_columns(eta, np.eye(corr.n))
    np.testing.assert_allclose(W.T @ W @ R, np.eye(corr.n), atol=1e-10)
    assert corr.logdet(eta) == pytest.approx(np.linalg.slogdet(R)[1], rel=1e-10, abs=1e-10)
    np.testing.assert_allclose(corr.full_matrix(eta).toarray(), R, atol=1e-15)
    import scipy.sparse as sp
    np.testing.assert_allclose(corr.whiten_columns(eta, sp.csr_matrix(np.eye(corr.n))).toarray(), W, atol=1e-12)
    E = np.random.default_rng(1).normal(size=(corr.n, 3))
    np.testing.assert_allclose(corr.whiten_columns(eta, corr.color(eta, E)), E, atol=1e-10)


def test_ar1_uses_times_not_row_order():
    d = SETS["gaps"]
    corr = residual_correlation("ar1(t | id)", d)
    assert isinstance(corr, AR1) and corr.integer
    c = corr.labels.index("c01")
    t = d["t"].to_numpy()[corr.codes == c]
    np.testing.assert_allclose(corr.matrix(corr.eta_of(0.5), "c01"), 0.5 ** np.abs(t[:, None] - t[None, :]))
    assert not residual_correlation("ar1(t | id)", SETS["continuous"]).integer
    with pytest.raises(ValueError, match="unique within each cluster"):
        residual_correlation("ar1(Days | Subject)", pd.concat([SETS["sleepstudy"], SETS["sleepstudy"].iloc[:1]]))
    assert isinstance(residual_correlation("cs(1 | id)", d), CompoundSymmetry)


# ------------------------------------------------------------------------ lmer vs nlme's lme
@pytest.mark.parametrize("name", LME)
def test_lme_criterion_and_correlation(name):
    r, fit = FITS[name], fitted(name)
    assert fit.objective <= r["criterion"] + 1e-7 * r["criterion"]
    assert fit.objective == pytest.approx(r["criterion"], rel=1e-7)
    assert fit.correlation == pytest.approx(r["corr_value"], abs=1e-4)
    param = "phi" if r["corr_parameter"].lower().startswith("phi") else "rho"  # nlme: Phi, Phi1 (corARMA), Rho
    assert getattr(fit, param) == fit.correlation
    assert fit.loglik == pytest.approx(r["logLik"], rel=1e-7)
    assert fit.aic == pytest.approx(r["AIC"], rel=1e-7)  # npar counts the correlation parameter, as nlme


@pytest.mark.parametrize("name", LME)
def test_lme_estimates(name):
    r, fit = FITS[name], fitted(name)
    se = fit.stderror.to_numpy()
    np.testing.assert_allclose(fit.fixef.to_numpy(), list(r["fixef"].values()), rtol=0, atol=1e-3 * se.min())
    psi = np.atleast_2d(np.array(r["psi"]))
    scale = max(np.abs(psi).max(), 1e-2 * fit.sigma ** 2)
    np.testing.assert_allclose(fit.psi(0), psi, rtol=0, atol=5e-4 * scale)
    assert fit.sigma == pytest.approx(r["sigma"], rel=2e-4)
    np.testing.assert_allclose(fit.vcov.to_numpy(), np.array(r["vcov"]), rtol=2e-4 * 5, atol=0)


def test_sleepstudy_slopes_beyond_nlme():
    """nlme stops short (default: an error; with optim: a worse point); mmbook reaches a lower criterion."""
    assert "iteration limit reached" in FITS["sleep_slope_ar1_default"]["error"]
    for name in ("sleep_slope_ar1", "sleep_slope_ar1_ML"):
        r, fit = FITS[name], fitted(name)
        assert fit.objective < r["criterion"] - 0.05, (fit.objective, r["criterion"])
        assert fit.is_singular  # the optimum: the random intercept and slope perfectly correlated
        assert fit.vc_terms[0].corr[1, 0] == pytest.approx(1.0, abs=1e-6)
        # nlme's estimates, put into mmbook's criterion, give nlme's value (the same function)
        L = np.linalg.cholesky(np.array(r["psi"])) / r["sigma"]
        th = np.r_[L[0, 0], L[1, 0], L[1, 1], fit.mf.residual.eta_of(r["corr_value"])]
        assert fit.pls.objective(th) == pytest.approx(r["criterion"], rel=1e-9)


def test_criterion_against_dense_marginal_likelihood():
    from mmbook.forms.marginal import marginal_cov, reml_logdensity

    fit = fitted("gaps_ri_ar1")
    Sigma = marginal_cov(fit)
    assert fit.objective == pytest.approx(-2 * reml_logdensity(fit.mf.y, fit.mf.X, Sigma), rel=1e-10)


def test_nesting_required_for_the_first_term():
    d = SETS["balanced"].copy()
    d["h"] = np.tile(np.arange(48), 5)  # crossed with id: 48 levels, more than id's 30
    with pytest.raises(ValueError, match="nested in the grouping factor 'h'"):
        mmbook.lmer("y ~ t + (1 | id) + (1 | h)", d, residual="ar1(t | id)")
    # clusters nested in the first term, other terms crossed: fine (their Z is whitened as a sparse matrix)
    d["h"] = np.tile(np.arange(8), 30)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # h's variance is estimated at 0 here
        fit = mmbook.lmer("y ~ t + (1 | id) + (1 | h)", d, residual="ar1(t | id)")
    from mmbook.forms.marginal import marginal_cov, reml_logdensity
    assert fit.objective == pytest.approx(-2 * reml_logdensity(fit.mf.y, fit.mf.X, marginal_cov(fit)), rel=1e-10)


def test_gls_statsmodels_fixed_effects():
    """Fixed effects and standard errors = statsmodels' GLS with the fitted Sigma."""
    for name in ("sleep_ri_ar1", "slopes_ar1", "sleep_gls_ar1", "balanced_gls_cs_ML"):
        tab = gls_crosscheck(fitted(name))
        assert (tab.abs_diff / tab.se_mmbook).max() < 1e-8
        assert tab.se_rel_diff.max() < 1e-8


def test_print_and_accessors():
    fit = fitted("sleep_ri_ar1")
    assert "Residual correlation: AR(1), ~Days | Subject: phi = 0.6531" in str(fit)
    assert len(fit.theta) == 1 and len(fit.opt.theta) == 2
    with pytest.raises(AttributeError, match="see fit.phi"):
        fit.rho
    R = fit.R("308")
    assert R.shape == (10, 10) and R[0, 3] == pytest.approx(fit.phi ** 3)
    with pytest.raises(AttributeError, match="independent residuals"):
        mmbook.lmer("Reaction ~ Days + (1 | Subject)", SETS["sleepstudy"]).phi
    cs = fitted("balanced_gls_cs")
    assert "compound symmetry" in str(cs) and cs.rho == pytest.approx(FITS["balanced_gls_cs"]["corr_value"], abs=1e-6)


def test_simulation_recovers_phi():
    """A seeded simulation of 300 series with gaps, phi = 0.6: the estimate within 0.05 (its SE is ~0.02)."""
    rng = np.random.default_rng(20240601)
    rows = []
    for c in range(300):
        t = np.sort(rng.choice(15, size=8, replace=False))
        e = np.empty(8)
        e[0] = rng.normal()
        for i in range(1, 8):
            a = 0.6 ** (t[i] - t[i - 1])
            e[i] = a * e[i - 1] + np.sqrt(1 - a * a) * rng.normal()
        rows.append(pd.DataFrame({"id": c, "t": t, "y": 1.0 + 0.3 * t + rng.normal(scale=0.8) + e}))
    d = pd.concat(rows, ignore_index=True)
    fit = mmbook.lmer("y ~ t + (1 | id)", d, residual="ar1(t | id)")
    assert fit.phi == pytest.approx(0.6, abs=0.05)
    assert fit.sigma == pytest.approx(1.0, abs=0.05)
    assert np.sqrt(fit.psi(0)[0, 0]) == pytest.approx(0.8, abs=0.1)


def test_simulate_draws_correlated_residuals():
    """simulate(): the lag-1 correlation of the simulated residuals, pooled over draws, is the fitted phi."""
    fit = fitted("balanced_ri_ar1")
    sims = fit.simulate(400, seed=7, use_u=True).to_numpy() - fit.fitted.to_numpy()[:, None]
    corr = fit.mf.residual
    lag1 = corr.gaps == 1
    r1 = np.corrcoef(sims[corr.rows[lag1]].ravel(), sims[corr.prev[lag1]].ravel())[0, 1]
    assert r1 == pytest.approx(fit.phi, abs=0.02)
    assert np.std(sims) == pytest.approx(fit.sigma, rel=0.02)


def test_profile_interval_of_phi():
    """At the profile limits of phi the ML deviance, minimised over the rest, is 1.96^2 above its minimum."""
    from scipy import optimize
    from mmbook.engine.pls import PLS

    fit = fitted("sleep_ri_ar1")
    ci = fit.confint(parm=".phi")
    lo, hi = ci.iloc[0]
    ml = fit.refit_ml()
    assert lo < ml.phi < hi
    pls = PLS(ml.mf, REML=False)
    for v in (lo, hi):
        eta = ml.mf.residual.eta_of(v)
        r = optimize.minimize_scalar(lambda th: pls.objective(np.array([th, eta])), bounds=(0.0, 3.0),
                                     method="bounded", options=dict(xatol=1e-9))
        assert r.fun - ml.objective == pytest.approx(1.959963984540054 ** 2, abs=2e-3)


# ------------------------------------------------------------------------ gls vs nlme's gls
@pytest.mark.parametrize("name", GLS)
def test_gls_matches_nlme(name):
    r, fit = FITS[name], fitted(name)
    assert fit.objective == pytest.approx(r["criterion"], rel=1e-9)
    assert fit.correlation == pytest.approx(r["corr_value"], abs=1e-4)
    se = fit.stderror.to_numpy()
    np.testing.assert_allclose(fit.coef.to_numpy(), list(r["fixef"].values()), rtol=0, atol=1e-3 * se.min())
    np.testing.assert_allclose(fit.vcov.to_numpy(), np.array(r["vcov"]), rtol=1e-3)
    assert fit.sigma == pytest.approx(r["sigma"], rel=1e-4)
    assert fit.aic == pytest.approx(r["AIC"], rel=1e-9)
    assert fit.bic == pytest.approx(r["BIC"], rel=1e-9)


def test_gls_errors():
    with pytest.raises(ValueError, match="use mmbook.lmer"):
        mmbook.gls("Reaction ~ Days + (1 | Subject)", SETS["sleepstudy"], correlation="ar1(Days | Subject)")
    with pytest.raises(KeyError, match="nope"):
        mmbook.gls("Reaction ~ Days", SETS["sleepstudy"], correlation="ar1(nope | Subject)")
    with pytest.raises(ValueError, match="mmbook.gls"):
        mmbook.lmer("Reaction ~ Days", SETS["sleepstudy"], residual="ar1(Days | Subject)")
