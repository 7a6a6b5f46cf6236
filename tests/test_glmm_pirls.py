"""PIRLS, the Laplace and quadrature deviances, and the families, against independent computations.

Each criterion mmbook computes through the blocked PLS factor is recomputed here from its definition
with dense matrices and scipy: the conditional mode by a general-purpose optimizer, log|L|^2 from a
dense determinant, -2 log p(y | u) from scipy.stats, and the marginal likelihood of a scalar random
effect by adaptive numerical integration (scipy.integrate.quad). Data: lme4's cbpp and the crossed
binary design of tests/data/glmm (see tests/data/make_lme4_glmer.R).
"""

import numpy as np
import pandas as pd
import pytest
from scipy import integrate, optimize, special, stats

import mmbook
from mmbook.engine.glm_family import binomial, poisson
from mmbook.engine.glmm_control import GlmerControl
from mmbook.engine.glmm_frame import glmm_frame
from mmbook.engine.glmm_response import GLMResponse
from mmbook.engine.pirls import GLMMCriterion, gh_rule

from conftest import DATA

CBPP = "cbind(incidence, size - incidence) ~ period + (1 | herd)"


def criterion(formula, data, family, nAGQ=1, **kw):
    gd = glmm_frame(formula, data, family, **kw)
    resp = GLMResponse(family, gd.y, gd.weights, gd.trials, gd.offset)
    return GLMMCriterion(gd.mf, resp, GlmerControl(), nAGQ), gd


def dense_Z(terms):
    return np.hstack([t.Z().toarray() for t in terms])


def dense_laplace(X, Z, Lam, k, m, beta, link="logit"):
    """-2 log p(y|u~) + ||u~||^2 + log|Lam'Z'WZLam + I| by scipy, for binomial counts k of m trials."""
    fam = binomial(link)

    def g(u):
        mu = fam.link.linkinv(X @ beta + Z @ (Lam @ u))
        return -2 * stats.binom.logpmf(k, m, mu).sum() + u @ u

    def grad(u):
        eta = X @ beta + Z @ (Lam @ u)
        mu = fam.link.linkinv(eta)
        d = -2 * (k - m * mu)  # logit: d(-2 log p)/d eta
        return (Z @ Lam).T @ d + 2 * u

    res = optimize.minimize(g, np.zeros(Lam.shape[0]), jac=grad, method="BFGS", options={"gtol": 1e-10})
    u = res.x
    mu = fam.link.linkinv(X @ beta + Z @ (Lam @ u))
    W = m * mu * (1 - mu)
    A = (Z @ Lam).T @ (W[:, None] * (Z @ Lam)) + np.eye(len(u))
    return g(u) + np.linalg.slogdet(A)[1], u


@pytest.fixture(scope="module")
def cbpp():
    return mmbook.load_cbpp()


def test_laplace_equals_dense_computation_cbpp(cbpp):
    crit, gd = criterion(CBPP, cbpp, binomial())
    theta, beta = np.array([0.7]), np.array([-1.3, -1.0, -1.1, -1.6])
    Z = dense_Z(gd.mf.terms)
    k = cbpp["incidence"].to_numpy(float)
    m = cbpp["size"].to_numpy(float)
    expected, u = dense_laplace(gd.mf.X, Z, theta[0] * np.eye(Z.shape[1]), k, m, beta)
    assert abs(crit.objective(np.concatenate([theta, beta])) - expected) < 1e-8
    np.testing.assert_allclose(crit.warm.u[0][:, 0], u, atol=1e-6)


def test_laplace_equals_dense_computation_crossed():
    d = pd.read_csv(DATA / "glmm" / "crossed_binary.csv")
    crit, gd = criterion("y ~ x + cond + (1 | subj) + (1 | item)", d, binomial())
    theta, beta = np.array([1.1, 0.45]), np.array([-0.2, 0.8, 0.4])
    Z = dense_Z(gd.mf.terms)
    sizes = [t.nlevels for t in gd.mf.terms]
    Lam = np.diag(np.repeat(theta, sizes))
    y = d["y"].to_numpy(float)
    expected, _ = dense_laplace(gd.mf.X, Z, Lam, y, np.ones_like(y), beta)
    assert abs(crit.objective(np.concatenate([theta, beta])) - expected) < 1e-8


def test_stage1_joint_mode(cbpp):
    """Stage 1: beta and u jointly minimise the penalized deviance (lme4's nAGQ = 0)."""
    crit, gd = criterion(CBPP, cbpp, binomial())
    theta = np.array([0.6])
    state = crit.pirls(theta)
    X, Z = gd.mf.X, dense_Z(gd.mf.terms)
    k, m = cbpp["incidence"].to_numpy(float), cbpp["size"].to_numpy(float)

    def pdev(par):
        beta, u = par[:4], par[4:]
        mu = special.expit(X @ beta + theta[0] * (Z @ u))
        return -2 * stats.binom.logpmf(k, m, mu).sum() + u @ u

    res = optimize.minimize(pdev, np.zeros(4 + Z.shape[1]), method="BFGS", options={"gtol": 1e-9})
    np.testing.assert_allclose(state.beta, res.x[:4], atol=1e-5)


def test_agq_equals_numerical_integration(cbpp):
    """nAGQ = 25 against the marginal likelihood integrated herd by herd with scipy.integrate.quad."""
    crit, gd = criterion(CBPP, cbpp, binomial(), nAGQ=25)
    theta, beta = 0.65, np.array([-1.4, -1.0, -1.1, -1.6])
    eta0 = gd.mf.X @ beta
    k, m = cbpp["incidence"].to_numpy(float), cbpp["size"].to_numpy(float)
    herd = gd.mf.terms[0].refs
    total = 0.0
    for j in range(gd.mf.terms[0].nlevels):
        rows = herd == j

        def f(b):
            mu = special.expit(eta0[rows] + theta * b)
            return np.exp(stats.binom.logpmf(k[rows], m[rows], mu).sum()) * stats.norm.pdf(b)

        val, _ = integrate.quad(f, -12, 12, epsabs=0, epsrel=1e-13, limit=200)
        total += -2 * np.log(val)
    agq = crit.objective(np.concatenate([[theta], beta]))
    # lme4's quadrature deviance leaves out -2 log p(y | mu = y)
    assert abs(agq + crit.response.saturated_constant - total) < 1e-8


def test_agq_with_one_node_is_laplace(cbpp):
    """One node at the mode: the quadrature deviance is the Laplace deviance without the saturated constant."""
    crit, _ = criterion(CBPP, cbpp, binomial(), nAGQ=2)
    state = crit.pirls(np.array([0.6]), np.array([-1.4, -1.0, -1.1, -1.6]))
    assert abs(crit.agq(state, 1) - (crit.laplace(state) - crit.response.saturated_constant)) < 1e-10


def test_result_does_not_depend_on_the_start(cbpp):
    crit, _ = criterion(CBPP, cbpp, binomial())
    x = np.array([0.64, -1.4, -0.99, -1.13, -1.58])
    warm = crit.objective(x)
    crit.pirls(np.array([2.0]), np.array([0.5, 0, 0, 0]))  # a far-away mode as the next start
    far = crit.objective(x)
    crit.warm = None
    cold = crit.objective(x)
    assert abs(warm - far) < 1e-11 * abs(warm) and abs(warm - cold) < 1e-11 * abs(warm)


def test_gh_rule():
    z, w = gh_rule(9)
    assert abs(w.sum() - 1) < 1e-14
    assert abs(w @ z ** 2 - 1) < 1e-13 and abs(w @ z ** 4 - 3) < 1e-12 and abs(w @ z ** 17) < 1e-10


@pytest.mark.parametrize("link", ["logit", "probit", "cloglog"])
def test_binomial_links(link):
    fam = binomial(link)
    eta = np.linspace(-4, 3, 15)
    mu = fam.link.linkinv(eta)
    np.testing.assert_allclose(fam.link.linkfun(mu), eta, atol=1e-10)
    h = 1e-6
    # (the difference quotient loses digits where mu is near 1: an absolute tolerance too)
    np.testing.assert_allclose(fam.link.mu_eta(eta), (fam.link.linkinv(eta + h) - fam.link.linkinv(eta - h)) / (2 * h),
                               rtol=1e-7, atol=1e-9)
    # deviance residuals: 2 [log p(y | mu = y) - log p(y | mu)], here for 3 successes of 7
    m = np.full(15, 7.0)
    y = np.full(15, 3 / 7)
    dev = fam.dev_resid(y, mu, m)
    np.testing.assert_allclose(dev, 2 * (stats.binom.logpmf(3, 7, 3 / 7) - stats.binom.logpmf(3, 7, mu)), rtol=1e-10)
    assert abs(fam.aic(y, m, mu, m) + 2 * stats.binom.logpmf(3, 7, mu).sum()) < 1e-9


def test_poisson_family():
    fam = poisson()
    y = np.array([0.0, 1, 4, 9])
    mu = np.array([0.5, 1.5, 3.0, 10.0])
    np.testing.assert_allclose(fam.dev_resid(y, mu, np.ones(4)),
                               2 * (stats.poisson.logpmf(y, y) - stats.poisson.logpmf(y, mu)), rtol=1e-10, atol=1e-14)
    assert abs(fam.aic(y, np.ones(4), mu, np.ones(4)) + 2 * stats.poisson.logpmf(y, mu).sum()) < 1e-10
    assert fam.label == "poisson  ( log )"


def test_fit_object_api(cbpp):
    f = mmbook.glmer(CBPP, cbpp, family="binomial")
    assert f.sigma == 1.0 and f.REML is False and f.refit_ml() is f
    assert "Residual" not in set(f.varcorr.grp)
    np.testing.assert_allclose(f.coef["herd"]["(Intercept)"], f.fixef["(Intercept)"] + f.ranef["herd"]["(Intercept)"])
    np.testing.assert_allclose(f.Z @ f.b + f.X @ f.beta, f.predict().to_numpy(), atol=1e-12)
    np.testing.assert_allclose(f.b, f.Lambda @ f.u, atol=1e-14)
    assert "z value" in f.summary() and "<pre" in f._repr_html_()
    assert repr(f).startswith("<GlmerFit")
    with pytest.raises(ValueError, match="scale"):
        f.icc()
    with pytest.raises(ValueError, match="type"):
        f.resid("partial")
    with pytest.raises(ValueError, match="method"):
        f.confint("boot")


def test_simulate(cbpp):
    f = mmbook.glmer(CBPP, cbpp, family="binomial")
    a, b = f.simulate(3, seed=11), f.simulate(3, seed=11)
    pd.testing.assert_frame_equal(a, b)
    assert a.shape == (56, 3)
    successes = a.to_numpy() * cbpp["size"].to_numpy()[:, None]
    np.testing.assert_allclose(successes, np.round(successes), atol=1e-9)
    # the marginal mean of the simulated proportions: E[expit(eta + b)], b ~ N(0, theta^2), by quadrature
    sims = f.simulate(4000, seed=1).to_numpy().mean(axis=1)
    z, w = gh_rule(30)
    eta = f.predict(re_form=None).to_numpy()
    expected = special.expit(eta[:, None] + f.theta[0] * z[None, :]) @ w
    se = np.sqrt(expected * (1 - expected) / (4000 * cbpp["size"].to_numpy()) + 0.0)
    assert np.max(np.abs(sims - expected) / np.maximum(se, 1e-3)) < 6


def test_nagq0_is_stage_one(cbpp):
    f0 = mmbook.glmer(CBPP, cbpp, family="binomial", nAGQ=0)
    f1 = mmbook.glmer(CBPP, cbpp, family="binomial")
    assert f0.stage1 is not None and f0.loglik <= f1.loglik
    crit, _ = criterion(CBPP, cbpp, binomial())
    np.testing.assert_allclose(f0.beta, crit.pirls(f0.theta).beta, atol=1e-10)
    np.testing.assert_allclose(f0.vcov.to_numpy(), f0.vcov_rx.to_numpy())


GRADIENT_CASES = [
    ("cbpp", CBPP, "binomial", {}),
    ("crossed_binary", "y ~ x + cond + (1 | subj) + (1 | item)", "binomial", {}),
    ("slopes_binary", "y ~ x + (x | g)", "binomial", {}),
    ("poisson_offset", "y ~ x + offset(log(t)) + (1 | g)", "poisson", {}),
]


@pytest.mark.parametrize("name, formula, family, kw", GRADIENT_CASES)
def test_gradient_matches_finite_differences(name, formula, family, kw):
    """The closed-form gradient (glmm_gradient) against central differences of the deviance, in
    stage 2 (theta and beta) and stage 1 (theta, beta at the joint mode), away from the optimum."""
    from mmbook.engine.glmm_fit import deriv12
    from mmbook.engine.glmm_gradient import laplace_gradient

    d = mmbook.load_cbpp() if name == "cbpp" else pd.read_csv(DATA / "glmm" / f"{name}.csv")
    fam = binomial() if family == "binomial" else poisson()
    crit, gd = criterion(formula, d, fam, **kw)
    rng = np.random.default_rng(3)
    theta = crit.theta0 * 0.8 + 0.1 * rng.random(crit.ntheta)
    beta = crit.pirls(theta).beta + 0.05 * rng.standard_normal(crit.p)
    x = np.concatenate([theta, beta])
    g = laplace_gradient(crit, crit.pirls(theta, beta))
    gfd, _ = deriv12(crit.objective, x, 1e-5, hessian=False)
    np.testing.assert_allclose(g, gfd, rtol=1e-6, atol=1e-6)
    g1 = laplace_gradient(crit, crit.pirls(theta), profiled=True)
    g1fd, _ = deriv12(crit.objective_theta, theta, 1e-5, hessian=False)
    np.testing.assert_allclose(g1, g1fd, rtol=1e-6, atol=1e-6)


def test_gradient_not_used_where_it_does_not_apply(cbpp):
    """Non-canonical links and quadrature: no closed form, finite differences (None)."""
    from mmbook.engine.glmm_gradient import laplace_gradient

    crit, _ = criterion(CBPP, cbpp, binomial("probit"))
    assert laplace_gradient(crit, crit.pirls(np.array([0.5]), np.zeros(4))) is None
    crit, _ = criterion(CBPP, cbpp, binomial(), nAGQ=5)
    assert laplace_gradient(crit, crit.pirls(np.array([0.5]), np.zeros(4))) is None
