"""Tests of mmbook.forms.bayes, the Gibbs sampler for the Bayesian linear mixed model.

Reference values come from computations stated next to each test: the
mixed-model equations solved densely, lmer's estimates, a grid over the
posterior of (sigma, tau) computed from the closed-form REML likelihood of a
balanced one-way model, and the true parameters of seeded simulations.
"""

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

import mmbook
from mmbook.forms.bayes import BayesLMM, Prior, gibbs_lmm

FORMULA = "Reaction ~ Days + (Days | Subject)"


@pytest.fixture(scope="module")
def sleep():
    return mmbook.load_sleepstudy()


@pytest.fixture(scope="module")
def sleep_fit(sleep):
    return mmbook.lmer(FORMULA, sleep)


def simulate_slopes(seed, m=150, nc=8, beta=(3.0, 0.75), tau=(0.6, 0.4), rho=0.3, sigma=1.0):
    """Random intercepts and slopes, m clusters of nc rows, with known parameters."""
    rng = np.random.default_rng(seed)
    psi = np.array([[tau[0] ** 2, rho * tau[0] * tau[1]], [rho * tau[0] * tau[1], tau[1] ** 2]])
    gamma = rng.multivariate_normal([0, 0], psi, size=m)
    g = np.repeat(np.arange(m), nc)
    x = rng.normal(size=m * nc)
    y = beta[0] + gamma[g, 0] + (beta[1] + gamma[g, 1]) * x + rng.normal(scale=sigma, size=m * nc)
    return pd.DataFrame({"y": y, "x": x, "g": [f"c{i:03d}" for i in g]}), psi


# ------------------------------------------------------------ the (beta, gamma) step
def test_conditional_mean_is_lmer_at_its_estimates(sleep, sleep_fit):
    """With a flat prior on beta, the conditional posterior mean of (beta, gamma) at lmer's
    sigma and psi is lmer's fixef and ranef (the mixed-model equations)."""
    model = BayesLMM(FORMULA, sleep, Prior(beta_var=np.inf))
    beta, gamma = model.conditional_mean(sleep_fit.sigma, sleep_fit.psi(0))
    np.testing.assert_allclose(beta, sleep_fit.fixef.to_numpy(), rtol=0, atol=1e-8)
    np.testing.assert_allclose(gamma, sleep_fit.ranef["Subject"].to_numpy(), rtol=0, atol=1e-8)


def test_conditional_mean_solves_the_dense_equations(sleep):
    """Reference: the (p + mq)-square system with the prior precision I/v, solved densely."""
    sigma, psi, v = 20.0, np.array([[500.0, 30.0], [30.0, 40.0]]), 50.0
    model = BayesLMM(FORMULA, sleep, Prior(beta_var=v))
    X, y, Z = model.mf.X, model.mf.y, model.term.Z().toarray()
    C = np.hstack([X, Z])
    prior_prec = sp.block_diag([np.eye(2) / v] + [np.linalg.inv(psi)] * model.m).toarray()
    P = C.T @ C / sigma ** 2 + prior_prec
    sol = np.linalg.solve(P, C.T @ y / sigma ** 2)
    beta, gamma = model.conditional_mean(sigma, psi)
    np.testing.assert_allclose(beta, sol[:2], rtol=0, atol=1e-8)
    np.testing.assert_allclose(gamma.ravel(), sol[2:], rtol=0, atol=1e-8)


def test_draws_with_fixed_variances_have_the_conditional_moments(sleep):
    """sigma and psi held: the draws of (beta, gamma) are N(mean, P^{-1}); check the mean
    within 4 Monte Carlo standard errors and the standard deviations within 5 %."""
    sigma, psi = 25.0, np.array([[600.0, 10.0], [10.0, 35.0]])
    model = BayesLMM(FORMULA, sleep)
    idata = model.sample(draws=2000, tune=0, chains=2, seed=3, fix_sigma=sigma, fix_psi=psi)
    post = idata.posterior
    assert np.all(post["sigma"].values == sigma)
    np.testing.assert_array_equal(post["psi"].values[0, 0], psi)
    beta_draws = post["beta"].values.reshape(-1, 2)
    gamma_draws = post["gamma"].values.reshape(-1, model.m * 2)
    draws = np.hstack([beta_draws, gamma_draws])
    X, Z = model.mf.X, model.term.Z().toarray()
    C = np.hstack([X, Z])
    P = C.T @ C / sigma ** 2 + sp.block_diag([np.eye(2) / 1e6] + [np.linalg.inv(psi)] * model.m).toarray()
    cov = np.linalg.inv(P)
    mean = cov @ (C.T @ model.mf.y) / sigma ** 2
    sd = np.sqrt(np.diag(cov))
    z = (draws.mean(axis=0) - mean) / (sd / np.sqrt(len(draws)))
    assert np.abs(z).max() < 4.5
    np.testing.assert_allclose(draws.std(axis=0), sd, rtol=0.05)


# ------------------------------------------------------------ the variance steps
def test_variance_steps_without_data_sample_the_priors(sleep):
    """With no data (n = 0, no levels), the sigma and psi steps alternate with their auxiliary
    variables and so sample the priors: sigma ~ half-Cauchy(0, r), each tau_k ~ half-t(nu, A_k),
    and for nu = 2 the correlation is uniform on (-1, 1) (Huang and Wand 2013).
    Reference: scipy's t and uniform distributions, Kolmogorov-Smirnov distance."""
    from scipy import stats

    model = BayesLMM(FORMULA, sleep, Prior(sigma_scale=3.0, psi_scale=(2.0, 0.5), psi_df=2.0))
    rng = np.random.default_rng(9)
    no_gamma = np.zeros((0, 2))
    b, a = 1.0, np.ones(2)
    sig, tau, rho = [], [], []
    for _ in range(20000):
        sigma2, b = model._draw_sigma2(rng, 0.0, 0, b)
        psi, _, a = model._draw_psi(rng, no_gamma, a)
        sig.append(np.sqrt(sigma2))
        sd = np.sqrt(np.diag(psi))
        tau.append(sd)
        rho.append(psi[0, 1] / (sd[0] * sd[1]))
    sig, tau, rho = np.array(sig)[::4], np.array(tau)[::4], np.array(rho)[::4]
    halft = lambda df, scale: (lambda x: 2 * stats.t.cdf(x / scale, df) - 1)  # noqa: E731
    assert stats.kstest(sig, halft(1, 3.0)).statistic < 0.025
    assert stats.kstest(tau[:, 0], halft(2, 2.0)).statistic < 0.025
    assert stats.kstest(tau[:, 1], halft(2, 0.5)).statistic < 0.025
    assert stats.kstest(rho, stats.uniform(-1, 2).cdf).statistic < 0.025


# ------------------------------------------------------------ the whole sampler
@pytest.mark.parametrize("nu, A", [(1.0, 1.5), (2.0, 0.2)])
def test_posterior_of_variances_matches_a_grid(nu, A):
    """Random-intercept model, balanced, flat prior on the intercept. Then
    p(sigma, tau | y) is the REML likelihood times the priors, and the REML likelihood has a
    closed form in the within and between sums of squares:
    -2 log L = m(k-1) log s2 + SSW/s2 + (m-1) log(s2 + k t2) + SSB/(s2 + k t2).
    Posterior means from a fine grid are the reference; the small scale A = 0.2 makes the
    prior on tau matter (it moves the posterior mean of tau by about 0.05, 20 Monte Carlo
    standard errors)."""
    rng = np.random.default_rng(11)
    m, k = 30, 5
    g = np.repeat(np.arange(m), k)
    y = 2.0 + rng.normal(scale=0.7, size=m)[g] + rng.normal(size=m * k)
    data = pd.DataFrame({"y": y, "g": g})
    prior = Prior(beta_var=np.inf, sigma_scale=2.0, psi_scale=(A,), psi_df=nu)
    idata = gibbs_lmm("y ~ 1 + (1 | g)", data, draws=1500, tune=300, chains=4, seed=5, prior=prior)

    ybar = y.reshape(m, k).mean(axis=1)
    ssw = ((y.reshape(m, k) - ybar[:, None]) ** 2).sum()
    ssb = k * ((ybar - y.mean()) ** 2).sum()
    s = np.linspace(0.6, 1.6, 601)[:, None]
    t = np.linspace(1e-4, 2.5, 1201)[None, :]
    s2, t2 = s ** 2, t ** 2
    loglik = -0.5 * (m * (k - 1) * np.log(s2) + ssw / s2 + (m - 1) * np.log(s2 + k * t2) + ssb / (s2 + k * t2))
    logprior = -np.log1p((s / 2.0) ** 2) - (nu + 1) / 2 * np.log1p((t / A) ** 2 / nu)  # half-Cauchy, half-t
    w = np.exp(loglik + logprior - (loglik + logprior).max())
    w /= w.sum()
    ref = {"sigma": (w * s).sum(), "tau": (w * t).sum()}
    import arviz as az

    summ = az.summary(idata, var_names=["sigma", "tau"])
    for name, row in zip(["sigma", "tau"], summ.itertuples()):
        assert abs(row.mean - ref[name]) < 4 * row.mcse_mean, (name, row.mean, ref[name], row.mcse_mean)


def test_recovers_known_parameters():
    """Simulated data (150 clusters) with known beta, psi and sigma: every posterior mean
    lies within 3 posterior standard deviations of the truth."""
    data, psi = simulate_slopes(seed=2)
    idata = gibbs_lmm("y ~ x + (x | g)", data, draws=500, tune=200, chains=2, seed=7)
    post = idata.posterior
    truth = {"beta": np.array([3.0, 0.75]), "sigma": 1.0, "tau": np.sqrt(np.diag(psi)), "rho": 0.3}
    for name, value in truth.items():
        draws = post[name].values.reshape(-1, *post[name].shape[2:])
        mean, sd = draws.mean(axis=0), draws.std(axis=0)
        assert np.all(np.abs(mean - value) < 3 * sd), (name, mean, sd, value)
    assert list(post["beta"].coords["coef"].values) == ["(Intercept)", "x"]
    assert post["gamma"].dims == ("chain", "draw", "g", "re_coef")
    assert post["gamma"].shape == (2, 500, 150, 2)
    assert list(post["rho"].coords["re_pair"].values) == ["(Intercept),x"]


def test_random_intercept_only_names(sleep):
    idata = gibbs_lmm("Reaction ~ Days + (1 | Subject)", sleep, draws=20, tune=5, chains=1, seed=1)
    post = idata.posterior
    assert "rho" not in post
    assert post["tau"].dims == ("chain", "draw", "re_coef")
    assert list(post["gamma"].coords["Subject"].values[:3]) == ["308", "309", "310"]
    np.testing.assert_allclose(post["tau"].values[..., 0] ** 2, post["psi"].values[..., 0, 0])


# ---------------------------------------------------------------- reproducibility
def test_same_seed_same_draws(sleep):
    a = gibbs_lmm(FORMULA, sleep, draws=50, tune=10, chains=3, seed=42)
    b = gibbs_lmm(FORMULA, sleep, draws=50, tune=10, chains=3, seed=42)
    c = gibbs_lmm(FORMULA, sleep, draws=50, tune=10, chains=2, seed=42)
    d = gibbs_lmm(FORMULA, sleep, draws=50, tune=10, chains=3, seed=43)
    for name in ["beta", "sigma", "psi", "gamma"]:
        np.testing.assert_array_equal(a.posterior[name].values, b.posterior[name].values)
        # chain k's stream does not depend on how many chains run
        np.testing.assert_array_equal(a.posterior[name].values[:2], c.posterior[name].values)
        assert not np.array_equal(a.posterior[name].values, d.posterior[name].values)
    # the chains start apart
    first = a.posterior["sigma"].values[:, 0]
    assert len(np.unique(first)) == 3


# ---------------------------------------------------------------- bad input
@pytest.mark.parametrize("formula, match", [
    ("Reaction ~ Days + (1 | Subject) + (0 + Days | Subject)", "exactly one random-effects term"),
    ("Reaction ~ Days + (Days || Subject)", "exactly one random-effects term"),
    ("Reaction ~ Days", "no random-effects term"),
])
def test_one_random_term_only(sleep, formula, match):
    with pytest.raises(ValueError, match=match):
        gibbs_lmm(formula, sleep, draws=10, tune=0, chains=1, seed=1)


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(beta_var=0.0), ValueError, "beta_var must be positive"),
    (dict(beta_var=-1.0), ValueError, "beta_var must be positive"),
    (dict(beta_var="big"), TypeError, "beta_var must be a number"),
    (dict(sigma_scale=-2.0), ValueError, "sigma_scale"),
    (dict(sigma_scale=np.inf), ValueError, "sigma_scale"),
    (dict(psi_scale=(1.0, 0.0)), ValueError, "psi_scale"),
    (dict(psi_scale=("a", 1.0)), TypeError, "psi_scale must be numbers"),
    (dict(psi_df=0.0), ValueError, "psi_df"),
    (dict(psi_df=np.nan), ValueError, "psi_df"),
])
def test_bad_prior(kwargs, error, match):
    with pytest.raises(error, match=match):
        Prior(**kwargs)


def test_bad_sampler_arguments(sleep):
    with pytest.raises(ValueError, match="psi_scale needs 2 values"):
        gibbs_lmm(FORMULA, sleep, prior=Prior(psi_scale=(10.0,)))
    with pytest.raises(TypeError, match="prior must be"):
        gibbs_lmm(FORMULA, sleep, prior={"beta_var": 1.0})
    with pytest.raises(ValueError, match="draws must be at least 1"):
        gibbs_lmm(FORMULA, sleep, draws=0)
    with pytest.raises(TypeError, match="chains must be an integer"):
        gibbs_lmm(FORMULA, sleep, chains=2.5)
    with pytest.raises(ValueError, match="psi must be a 2 x 2 matrix"):
        gibbs_lmm(FORMULA, sleep, fix_psi=[[1.0]])
    with pytest.raises(ValueError, match="positive definite"):
        gibbs_lmm(FORMULA, sleep, fix_psi=[[1.0, 2.0], [2.0, 1.0]])
    with pytest.raises(ValueError, match="sigma must be a positive"):
        gibbs_lmm(FORMULA, sleep, fix_sigma=-1.0)
