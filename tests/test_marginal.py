"""mmbook.forms.marginal: the conditional and marginal densities of a linear mixed model.

References, stated per test:
- marginal_sleepstudy.json: R 4.2.2, lme4 1.1-31 (script in its "source" field):
  logLik of the ML fits and the REML criterion of the REML fits of three sleepstudy models.
- fit.loglik / fit.objective: mmbook's profiled criterion (mmbook.engine.pls), an independent
  computation that never forms Sigma; the marginal density must equal it to rounding.
- scipy.stats.norm / multivariate_normal: closed-form normal densities.
- Algebra: Sigma = Z psi_big Z' + sigma^2 I, entry by entry.
"""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from scipy import stats

import mmbook
from mmbook.forms.marginal import (Z_matrix, conditional_logdensity, gamma_vector, gls_beta, marginal_cov,
                             marginal_logdensity, psi_big, reml_logdensity)
from mmbook.rcompat.simulation import simulate_random_slopes

HERE = Path(__file__).parent
REF = json.loads((HERE / "data" / "marginal_sleepstudy.json").read_text())
FORMULAS = [f["formula"] for f in REF["fits"]]


@pytest.fixture(scope="module")
def sleep():
    return mmbook.load_sleepstudy()


@pytest.fixture(scope="module")
def fits(sleep):
    return {(f, reml): mmbook.lmer(f, sleep, REML=reml) for f in FORMULAS for reml in (False, True)}


@pytest.fixture(scope="module")
def sim_fit():
    sim = simulate_random_slopes()          # the document's appendix data, n = 1000
    return mmbook.lmer("y ~ x + (x | clus)", sim.data, REML=False)


# ------------------------------------------------------------------- marginal density
@pytest.mark.parametrize("ref", REF["fits"], ids=["slope", "intercept", "uncorrelated"])
def test_marginal_logdensity_is_ml_loglik_sleepstudy(fits, ref):
    fit = fits[ref["formula"], False]
    ll = marginal_logdensity(fit.mf.y, fit.mf.X, fit.beta, marginal_cov(fit))
    assert ll == pytest.approx(fit.loglik, rel=0, abs=1e-8)          # mmbook's profiled deviance
    assert ll == pytest.approx(ref["logLik_ML"], rel=0, abs=1e-6)    # R's logLik (its optimum)


def test_marginal_logdensity_is_ml_loglik_simulated(sim_fit):
    fit = sim_fit
    ll = marginal_logdensity(fit.mf.y, fit.mf.X, fit.beta, marginal_cov(fit))
    assert ll == pytest.approx(fit.loglik, rel=0, abs=1e-8)


def test_marginal_logdensity_matches_scipy(fits):
    fit = fits[FORMULAS[0], False]
    S = marginal_cov(fit)
    mu = fit.mf.X @ fit.beta
    expected = stats.multivariate_normal(mu, S).logpdf(fit.mf.y)
    assert marginal_logdensity(fit.mf.y, fit.mf.X, fit.beta, S) == pytest.approx(expected, rel=1e-12)
    # a sparse Sigma gives the same number
    assert marginal_logdensity(fit.mf.y, fit.mf.X, fit.beta, marginal_cov(fit, sparse=True)) == \
        pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("ref", REF["fits"], ids=["slope", "intercept", "uncorrelated"])
def test_reml_logdensity_is_reml_criterion(fits, ref):
    fit = fits[ref["formula"], True]
    S = marginal_cov(fit)
    assert -2 * reml_logdensity(fit.mf.y, fit.mf.X, S) == pytest.approx(fit.objective, rel=0, abs=1e-8)
    assert -2 * reml_logdensity(fit.mf.y, fit.mf.X, S) == pytest.approx(ref["REMLcrit"], rel=0, abs=1e-6)


@pytest.mark.parametrize("reml", [False, True])
def test_gls_beta_is_fixef(fits, reml):
    fit = fits[FORMULAS[0], reml]
    np.testing.assert_allclose(gls_beta(fit.mf.y, fit.mf.X, marginal_cov(fit)), fit.beta, rtol=1e-10)


# ------------------------------------------------------------------------ Sigma
def test_sigma_symmetric_positive_definite(fits):
    S = marginal_cov(fits[FORMULAS[0], True])
    assert S.shape == (180, 180)
    assert np.array_equal(S, S.T)
    assert np.linalg.eigvalsh(S).min() > 0


@pytest.mark.parametrize("formula", FORMULAS)
def test_sigma_block_structure(fits, sleep, formula):
    fit = fits[formula, True]
    S = marginal_cov(fit)
    subj = sleep["Subject"].to_numpy()
    same = subj[:, None] == subj[None, :]
    assert np.all(S[~same] == 0)                       # different subjects: independent
    # within a subject: [1 d_i] psi [1 d_j]' + sigma^2 [i == j], psi from VarCorr
    d = sleep["Days"].to_numpy(dtype=float)
    vc = fit.varcorr
    v0 = vc.loc[(vc.var1 == "(Intercept)") & vc.var2.isna(), "vcov"].sum()
    v1 = vc.loc[(vc.var1 == "Days") & vc.var2.isna(), "vcov"].sum()
    c01 = vc.loc[vc.var2.notna(), "vcov"].sum()
    expected = v0 + c01 * (d[:, None] + d[None, :]) + v1 * d[:, None] * d[None, :]
    expected = expected + fit.sigma ** 2 * np.eye(len(d))
    np.testing.assert_allclose(S[same], expected[same], rtol=1e-12)


def test_sigma_random_intercept_compound_symmetry(fits):
    fit = fits[FORMULAS[1], True]
    S = marginal_cov(fit)
    tau2, sigma2 = fit.psi(0)[0, 0], fit.sigma ** 2
    block = S[:10, :10]
    np.testing.assert_allclose(np.diag(block), tau2 + sigma2, rtol=1e-13)
    np.testing.assert_allclose(block[~np.eye(10, dtype=bool)], tau2, rtol=1e-13)
    # as a correlation matrix, the off-diagonal entries are the ICC
    corr = block / np.sqrt(np.outer(np.diag(block), np.diag(block)))
    np.testing.assert_allclose(corr[0, 1], fit.icc(), rtol=1e-13)


def test_sigma_from_parts_equals_from_fit(fits):
    fit = fits[FORMULAS[0], True]
    Z = Z_matrix(fit)
    by_fit = marginal_cov(fit)
    np.testing.assert_allclose(marginal_cov(Z=Z, psi=fit.psi(0), sigma=fit.sigma), by_fit, rtol=1e-13)
    np.testing.assert_allclose(marginal_cov(Z=Z.toarray(), psi=psi_big(fit), sigma=fit.sigma), by_fit,
                               rtol=1e-13)
    assert sp.issparse(marginal_cov(fit, sparse=True))


def test_psi_big_and_Z_layout(fits):
    fit = fits[FORMULAS[2], True]                       # two terms on Subject
    Z, P, g = Z_matrix(fit), psi_big(fit), gamma_vector(fit)
    assert Z.shape == (180, 36) and P.shape == (36, 36) and g.shape == (36,)
    np.testing.assert_allclose(Z @ g, fit.Zgamma(), rtol=1e-13, atol=1e-12)
    np.testing.assert_allclose(P.diagonal()[:18], fit.psi(0)[0, 0])
    np.testing.assert_allclose(P.diagonal()[18:], fit.psi(1)[0, 0])
    slope = fits[FORMULAS[0], True]
    np.testing.assert_allclose(psi_big(slope).toarray()[:2, :2], slope.psi(0))
    np.testing.assert_allclose(gamma_vector(slope)[:2], slope.ranef["Subject"].iloc[0].to_numpy())


# -------------------------------------------------------------- conditional density
def test_conditional_logdensity_is_sum_of_normals(fits):
    fit = fits[FORMULAS[0], False]
    y, X, Z, g = fit.mf.y, fit.mf.X, Z_matrix(fit), gamma_vector(fit)
    expected = stats.norm.logpdf(y, loc=X @ fit.beta + Z @ g, scale=fit.sigma).sum()
    assert conditional_logdensity(y, X, fit.beta, Z, g, fit.sigma) == pytest.approx(expected, rel=1e-13)
    # the conditional mean is the fit's conditional fitted values
    expected = stats.norm.logpdf(y, loc=fit.fitted, scale=fit.sigma).sum()
    assert conditional_logdensity(y, X, fit.beta, Z, g, fit.sigma) == pytest.approx(expected, rel=1e-12)


def test_marginal_is_conditional_times_prior_over_posterior(fits):
    # p(y) = p(y | gamma) p(gamma) / p(gamma | y) at beta-hat, for any gamma; at the mode gamma-hat
    # p(gamma-hat | y) = N(0; 0, V) with V the conditional covariance (ranef condVar)
    fit = fits[FORMULAS[0], False]
    cond = conditional_logdensity(fit.mf.y, fit.mf.X, fit.beta, Z_matrix(fit), gamma_vector(fit), fit.sigma)
    prior = stats.multivariate_normal(np.zeros(2), fit.psi(0)).logpdf(fit.ranef["Subject"].to_numpy()).sum()
    post = -0.5 * np.linalg.slogdet(2 * np.pi * fit.ranef_condvar["Subject"])[1].sum()
    assert cond + prior - post == pytest.approx(fit.loglik, rel=0, abs=1e-8)
    assert cond > fit.loglik


# --------------------------------------------------------------------------- errors
def test_errors(fits):
    fit = fits[FORMULAS[0], True]
    y, X = fit.mf.y, fit.mf.X
    with pytest.raises(TypeError, match="fit, or all of Z, psi and sigma"):
        marginal_cov(Z=Z_matrix(fit), psi=fit.psi(0))
    with pytest.raises(TypeError, match="not both"):
        marginal_cov(fit, sigma=1.0)
    with pytest.raises(TypeError, match="mmbook.lmer"):
        marginal_cov(pd.DataFrame())
    with pytest.raises(ValueError, match="q dividing"):
        marginal_cov(Z=np.ones((4, 3)), psi=np.eye(2), sigma=1.0)
    with pytest.raises(ValueError, match="positive definite"):
        marginal_logdensity(y[:3], X[:3], fit.beta, -np.eye(3))
    with pytest.raises(ValueError, match="not symmetric"):
        marginal_logdensity(y[:2], X[:2], fit.beta, np.array([[1.0, 0.5], [0.0, 1.0]]))
    with pytest.raises(ValueError, match="Sigma must be 3 x 3"):
        marginal_logdensity(y[:3], X[:3], fit.beta, np.eye(4))
    with pytest.raises(ValueError, match="beta has 3 values"):
        marginal_logdensity(y, X, [1.0, 2.0, 3.0], marginal_cov(fit))
    with pytest.raises(ValueError, match="X must have 180 rows"):
        conditional_logdensity(y, X[:10], fit.beta, Z_matrix(fit), gamma_vector(fit), fit.sigma)
    with pytest.raises(ValueError, match="positive standard deviation"):
        conditional_logdensity(y, X, fit.beta, Z_matrix(fit), gamma_vector(fit), 0.0)
