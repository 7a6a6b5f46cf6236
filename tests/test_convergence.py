"""An optimizer that tells the truth (issue 9, section 3): abnormal ends, restarts, lme4's checkConv.

Sources: the convergence checks follow lme4 1.1-31's checkConv / checkHess / deriv12 (R source,
printed with ``lme4:::checkConv``); their figures are checked here against independent
computations on quadratic functions, whose gradient and Hessian are known exactly.
"""

import re
import warnings

import numpy as np
import pandas as pd
import pytest
import scipy.linalg as sla

import mmbook
from mmbook.engine.control import ConvergenceError, ConvergenceWarning, LmerControl
from mmbook.engine.convergence import check_conv
from mmbook.engine.optimize import OPTIMIZERS, minimize_theta
from mmbook.engine.pls import PLS

SLEEP = "Reaction ~ Days + (Days | Subject)"


@pytest.fixture(scope="module")
def sleep():
    return mmbook.load_sleepstudy()


# ------------------------------------------------------------------ the optimizer alone
def test_nonsmooth_minimum_is_restarted_not_accepted():
    """L-BFGS-B stops at a kink with a large gradient: a Nelder-Mead restart finds the minimum."""
    f = lambda x: float(np.sum(np.abs(x - 0.7)) + 0.1 * np.sum((x - 0.7) ** 2))  # noqa: E731
    r = minimize_theta(f, np.array([2.0, 2.0]), np.array([0.0, -np.inf]), polish=False)
    assert [h["optimizer"] for h in r.history] == ["L-BFGS-B", "Nelder-Mead"]
    assert not r.history[0]["ok"] and "not a minimum" in r.history[0]["message"]
    assert r.converged and r.code == 0 and not r.messages
    np.testing.assert_allclose(r.theta, [0.7, 0.7], atol=1e-6)


def test_saddle_point_is_left():
    """At (1, 0) the gradient is below L-BFGS-B's tolerance but the Hessian has a negative eigenvalue
    (lme4's checkHess: "degenerate Hessian"): the search goes on along that direction, to a minimum
    at y = +-sqrt(0.005)."""
    f = lambda v: float((v[0] - 1) ** 2 + v[1] ** 2 * (v[1] ** 2 - 0.01))  # noqa: E731
    r = minimize_theta(f, np.array([0.0, 0.0]), np.full(2, -np.inf))
    assert r.history[0]["ok"] and any("negative curvature" in h["start"] for h in r.history)
    np.testing.assert_allclose([r.theta[0], abs(r.theta[1])], [1.0, np.sqrt(0.005)], atol=1e-7)
    assert r.converged and check_conv(f, r.theta, np.full(2, -np.inf), derivs=r.derivs).code == 0


def test_criterion_never_finite_is_not_converged():
    r = minimize_theta(lambda x: np.inf, np.array([1.0]), np.array([0.0]), starts=[("other", np.array([2.0]))])
    assert not r.converged and r.code != 0 and not np.isfinite(r.fun)
    assert r.messages[0].startswith("convergence code -1 from L-BFGS-B: the criterion is not finite")
    assert "none ending normally at the lowest point" in r.messages[1]


def test_nan_criterion_is_infinite_to_the_optimizer():
    # NaN in a hole on the straight way from the start (2, 2) to the minimum (0.7, 0.7)
    f = lambda x: np.nan if 1.0 < x[0] < 1.3 and x[1] > 1.0 else float(np.sum((x - 0.7) ** 2))  # noqa: E731
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing from numpy either
        r = minimize_theta(f, np.array([2.0, 2.0]), np.array([0.0, -np.inf]))
    assert r.converged
    np.testing.assert_allclose(r.theta, [0.7, 0.7], atol=1e-7)


def test_minimum_at_the_edge_of_the_domain_fails_the_check():
    """Beyond x = 0.5 the criterion is NaN: its lowest point there is not a minimum."""
    f = lambda x: float(np.sum((x - 0.7) ** 2)) if x[0] <= 0.5 else np.nan  # noqa: E731
    r = minimize_theta(f, np.array([0.2, 2.0]), np.array([0.0, -np.inf]))
    assert r.theta[0] == pytest.approx(0.5, abs=1e-6)
    c = check_conv(f, r.theta, np.array([0.0, -np.inf]), derivs=r.derivs)
    assert not c.converged and c.code < 0


def test_unknown_optimizer():
    with pytest.raises(ValueError, match="optimizer must be one of 'L-BFGS-B', 'bobyqa', 'Nelder-Mead'"):
        LmerControl(optimizer="nlminb")
    with pytest.raises(ValueError, match="check_conv_grad must be one of"):
        LmerControl(check_conv_grad="message")
    with pytest.raises(ValueError, match="maxfun must be a positive integer"):
        LmerControl(maxfun=0)


# ------------------------------------------------------------------ checkConv on known functions
def _quadratic(g, H):
    g, H = np.asarray(g, float), np.asarray(H, float)
    return lambda x: float(g @ x + 0.5 * x @ H @ x)


def test_scaled_gradient_is_solve_chol_H_g():
    g, H = np.array([0.01, -0.02]), np.array([[4.0, 1.0], [1.0, 3.0]])
    x = np.array([1.0, 0.5])  # f(x0 + d) with the gradient g and Hessian H at x0 = (1, 0.5)
    f = lambda v: _quadratic(g, H)(v - x)  # noqa: E731
    c = check_conv(f, x, np.array([0.0, -np.inf]))
    expected = np.linalg.solve(sla.cholesky(H, lower=False), g)  # R: solve(chol(H), g)
    np.testing.assert_allclose(c.gradient, g, rtol=1e-6)
    np.testing.assert_allclose(c.hessian, H, rtol=1e-6)
    np.testing.assert_allclose(c.scaled_gradient, expected, rtol=1e-6)
    assert c.max_grad == pytest.approx(np.max(np.minimum(np.abs(expected), np.abs(g))), rel=1e-6)
    assert c.code == -1 and not c.converged
    assert c.messages == [f"Model failed to converge with max|grad| = {c.max_grad:.6g} (tol = 0.002, component 2)"]
    small = check_conv(_quadratic(g / 100, H), np.array([0.0, 0.0]), np.array([-np.inf, -np.inf]))
    assert small.code == 0 and small.messages == [] and small.converged
    np.testing.assert_allclose(small.hessian_eigenvalues, np.linalg.eigvalsh(H)[::-1], rtol=1e-6)


@pytest.mark.parametrize("H, code, text", [
    ([[2.0, 0.0], [0.0, -2.0]], -3, "Model failed to converge: degenerate  Hessian with 1 negative eigenvalues"),
    ([[2e7, 0.0], [0.0, 2.0]], 2, "Model is nearly unidentifiable: very large eigenvalue\n - Rescale variables?"),
    ([[2.0, 0.0], [0.0, 1e-7 * 3]], -4, "Hessian is numerically singular: parameters are not uniquely determined"),
    ([[2.0, 0.0], [0.0, 1.5e-6]], 3, "Model is nearly unidentifiable: large eigenvalue ratio\n - Rescale variables?"),
])
def test_hessian_checks(H, code, text):
    c = check_conv(_quadratic([0.0, 0.0], H), np.zeros(2), np.full(2, -np.inf))
    assert c.code == code and text in c.messages
    assert c.converged is (code >= 0)


def test_singular_fit_skips_the_hessian_and_checks_the_free_gradient():
    H = np.diag([2.0, -2.0])  # a saddle, but the second parameter is on its bound
    x = np.array([1.0, 0.0])
    c = check_conv(lambda v: _quadratic([0.0, 0.0], H)(v - x), x, np.array([-np.inf, 0.0]))
    assert c.singular and c.code == 0 and list(c.index) == [0] and c.hessian_eigenvalues is None
    bad = check_conv(lambda v: _quadratic([1.0, 0.0], H)(v - x), x, np.array([-np.inf, 0.0]))
    assert bad.code == -1


def test_many_parameters_use_the_hessian_diagonal():
    k = 25
    H = np.diag(np.arange(1.0, k + 1))
    c = check_conv(_quadratic(np.full(k, 1e-4), H), np.zeros(k), np.full(k, -np.inf), max_params=20)
    assert c.hessian is None and "diagonal only" in c.note and c.code == 0
    np.testing.assert_allclose(c.scaled_gradient, 1e-4 / np.sqrt(np.diag(H)), rtol=1e-6)


def test_nonfinite_gradient():
    f = lambda x: float(x[0] ** 2) if x[0] < 0.50005 else np.inf  # noqa: E731
    c = check_conv(f, np.array([0.5]), np.array([-np.inf]))
    assert c.code == -5 and c.messages == ["Gradient contains NAs"] and not c.converged


# ------------------------------------------------------------------ the fit pipeline
def test_every_fit_is_checked(sleep):
    fit = mmbook.lmer(SLEEP, sleep)
    c = fit.convergence
    assert c.code == 0 and c.max_grad < 1e-6 and fit.opt.converged
    assert len(c.hessian_eigenvalues) == 3 and np.all(c.hessian_eigenvalues > 0)
    assert "Newton polish" in c.note  # no extra evaluations
    for refitted in (fit.refit_ml(), mmbook.refit(fit, fit.y * 2.0)):
        assert refitted.convergence is not None and refitted.convergence.code == 0
    assert "convergence code" not in str(fit)  # lme4 prints nothing when all is well


@pytest.mark.parametrize("optimizer", OPTIMIZERS)
def test_each_optimizer_reaches_the_optimum(sleep, optimizer):
    ref = mmbook.lmer(SLEEP, sleep)
    fit = mmbook.lmer(SLEEP, sleep, control=LmerControl(optimizer=optimizer))
    assert fit.opt.optimizer == optimizer and fit.opt.converged and fit.convergence.code == 0
    assert fit.objective == pytest.approx(ref.objective, abs=1e-9)
    np.testing.assert_allclose(fit.theta, ref.theta, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("optimizer", OPTIMIZERS)
def test_evaluation_limit_is_reported(sleep, optimizer):
    control = LmerControl(optimizer=optimizer, maxfun=8, polish=False)
    with pytest.warns(ConvergenceWarning) as record:
        fit = mmbook.lmer(SLEEP, sleep, control=control)
    texts = [str(w.message) for w in record]
    assert not fit.opt.converged and fit.opt.code != 0
    assert fit.opt.messages[0].startswith(f"convergence code {fit.opt.code} from {optimizer}")
    assert any(t.startswith("Model failed to converge with max|grad|") for t in texts)
    lines = str(fit).splitlines()
    i = lines.index(next(line for line in lines if line.startswith("optimizer (")))
    assert lines[i] == f"optimizer ({optimizer}) convergence code: {fit.opt.code} ({fit.opt.message})"
    assert lines[i + 1].startswith("Model failed to converge with max|grad| = ")


def test_stop_action_raises(sleep):
    with pytest.raises(ConvergenceError, match="Model failed to converge"):
        mmbook.lmer(SLEEP, sleep, control=LmerControl(maxfun=8, polish=False, check_conv_grad="stop"))


def test_nan_near_the_optimum_is_never_converged(sleep, monkeypatch):
    """A criterion that is NaN around the optimum: restarts cannot repair it; the fit says so."""
    ref = mmbook.lmer(SLEEP, sleep)
    target = ref.opt.par
    real = PLS.objective

    def broken(self, theta):
        if np.max(np.abs(np.asarray(theta) - target)) < 0.05:
            return np.nan
        return real(self, theta)

    monkeypatch.setattr(PLS, "objective", broken)
    with pytest.warns(ConvergenceWarning):
        fit = mmbook.lmer(SLEEP, sleep)
    assert not fit.opt.converged and fit.convergence.code < 0
    assert fit.objective > ref.objective
    assert "optimizer (L-BFGS-B) convergence code" in str(fit)


def test_no_linalg_error_from_a_raw_ill_conditioned_fit():
    """The raw parameterisation on a covariate in the millions (10,000 rows): a NaN Hessian in the
    polish used to raise LinAlgError; now the fit either reports that it failed or, where the
    analytic gradient carries it, reaches the conditioned fit's optimum."""
    rng = np.random.default_rng(5)
    n, m = 10000, 300
    g, h = rng.integers(0, m, n), rng.integers(0, 40, n)
    x = rng.uniform(1e6, 5e6, n)
    y = (3 + 2e-6 * x + rng.normal(size=m)[g] + 1e-6 * rng.normal(size=m)[g] * x + rng.normal(size=40)[h]
         + rng.normal(size=n))
    d = pd.DataFrame(dict(y=y, x=x, g=g, h=h))
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        raw = mmbook.lmer("y ~ x + (x | g) + (1 | h)", d, control=LmerControl(condition=False))
        fit = mmbook.lmer("y ~ x + (x | g) + (1 | h)", d)
    if raw.objective > fit.objective + 100:
        assert not raw.opt.converged
    else:
        # with the analytic gradient (mmbook.engine.gradient: 10,300 random effects, four parameters)
        # the raw parameterisation reaches the optimum too; finite differences did not
        assert raw.objective == pytest.approx(fit.objective, rel=1e-9)
    if not raw.opt.converged:
        assert any(issubclass(x.category, ConvergenceWarning) for x in w)
    assert not any(issubclass(x.category, RuntimeWarning) and not issubclass(x.category, ConvergenceWarning)
                   for x in w)  # nothing from numpy
    assert fit.opt.converged and fit.convergence.code == 0


def test_check_nobs_vs_nRE_action(sleep):
    """lme4's check.nobs.vs.nRE: "stop" (default), "warning" or "ignore"."""
    d = sleep[sleep.Days.isin([0, 9])]  # 2 rows per subject: 36 rows, 36 random effects in (Days | Subject)
    text = "number of observations (=36) <= number of random effects (=36) for term (Days | Subject)"
    with pytest.raises(ValueError, match=re.escape(text)):
        mmbook.lmer(SLEEP, d)
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        fit = mmbook.lmer(SLEEP, d, control=LmerControl(check_nobs_vs_nRE="warning"))
    assert any(str(x.message).startswith(text) for x in w) and fit.nobs == 36
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        mmbook.lmer(SLEEP, d, control=LmerControl(check_nobs_vs_nRE="ignore"))
    assert not any(text in str(x.message) for x in w)


# ------------------------------------------------------------------ no check that silently does not run
def test_crosscheck_says_what_it_could_not_compare(sleep, monkeypatch):
    from statsmodels.regression.mixed_linear_model import MixedLM

    from mmbook.crosscheck import crosscheck

    fit = mmbook.lmer(SLEEP, sleep)
    assert not crosscheck(fit).not_compared
    real = MixedLM.loglike

    def broken(self, params, profile_fe=True):
        # only where crosscheck evaluates statsmodels' criterion at mmbook's estimates
        if hasattr(params, "cov_re") and np.allclose(params.cov_re, fit.psi(0) / fit.sigma ** 2, rtol=1e-6):
            raise np.linalg.LinAlgError("Singular matrix")
        return real(self, params, profile_fe=profile_fe)

    monkeypatch.setattr(MixedLM, "loglike", broken)
    cc = crosscheck(fit, methods=("lbfgs",))
    assert len(cc.not_compared) >= 1
    assert any("LinAlgError: Singular matrix" in why for why in cc.not_compared.values())
    assert "not compared" in str(cc)


def test_profile_does_not_turn_a_programming_error_into_nan(sleep, monkeypatch):
    from mmbook.engine.conditioning import ConditionedPLS

    fit = mmbook.lmer("Reaction ~ Days + (1 | Subject)", sleep, REML=False)

    def bug(self, theta):
        raise TypeError("a bug")

    monkeypatch.setattr(ConditionedPLS, "solve", bug)
    with pytest.raises(TypeError, match="a bug"):
        fit.confint(method="profile")


def test_bootstrap_collects_the_refits_messages(sleep, monkeypatch):
    from mmbook.engine.bootstrap import BootstrapDraws, bootstrap

    m1 = mmbook.lmer(SLEEP, sleep)
    m0 = mmbook.lmer("Reaction ~ Days + (1 | Subject)", sleep)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # singular refits are counted, not warned about
        draws = bootstrap(m0, lambda fits: fits[1].objective - fits[0].objective, nsim=6, seed=1, fits=[m0, m1])
    assert isinstance(draws, BootstrapDraws) and draws.shape == (6,)
    assert draws.n_not_converged == 0 and 0 < draws.n_singular <= 6  # (Days | Subject) under the null
    singular = [k for k in draws.messages if k.startswith("boundary (singular) fit")]
    assert singular and draws.messages[singular[0]] == draws.n_singular
    assert draws.summary().startswith(f"{draws.n_singular} of 6 refits singular, 0 not converged")

    # refits that do not converge: one warning for the whole bootstrap, and the counts
    with pytest.warns(ConvergenceWarning):
        bad = mmbook.lmer("Reaction ~ Days + (1 | Subject)", sleep, control=LmerControl(maxfun=3, polish=False))
    with pytest.warns(ConvergenceWarning, match=r"bootstrap: \d+ of 4 refits singular, 4 not converged") as rec:
        draws = bootstrap(bad, lambda f: f.objective, nsim=4, seed=1)
    assert len([w for w in rec if issubclass(w.category, ConvergenceWarning)]) == 1
    assert draws.n_not_converged == 4


def test_constant_response_is_a_clear_error(sleep):
    d = sleep.assign(Reaction=250.0)
    with pytest.raises(ValueError, match=r"the response is constant \(250\)"):
        mmbook.lmer(SLEEP, d)


def test_bootstrap_draws_reduce_to_plain_numbers():
    # np.median of a column gave a 0-d BootstrapDraws, which pandas stored as an object: a table of
    # bootstrap quantiles then ignored .round() and display.precision (book/other_topics)
    import pandas as pd

    from mmbook.engine.bootstrap import BootstrapDraws

    draws = BootstrapDraws(np.arange(12.0).reshape(6, 2) / 7, n_singular=1)
    column = draws[:, 0]
    assert isinstance(column, BootstrapDraws) and column.n_singular == 1  # slices keep the counts
    for value in (np.median(column), np.quantile(column, 0.25), column.mean(), np.sum(draws)):
        assert type(value) is np.float64
    table = pd.DataFrame({"median": [np.median(column)], "q": [np.quantile(column, 0.975)]})
    assert all(table.dtypes == np.float64)
    assert table.round(2).iloc[0, 0] == round(float(np.median(np.arange(0, 12, 2) / 7)), 2)


# ------------------------------------------------------------------ one difference step per parameter
def test_deriv12_with_one_step_per_coordinate_is_exact_on_a_quadratic():
    from mmbook.engine.optimize import deriv12
    H = np.array([[4.0, 1.0], [1.0, 0.02]])
    f = _quadratic([0.3, -0.01], H)
    g, Hd = deriv12(f, np.zeros(2), np.array([1e-2, 1e-5]), f(np.zeros(2)))
    np.testing.assert_allclose(g, [0.3, -0.01], rtol=1e-6)
    np.testing.assert_allclose(Hd, H, rtol=1e-5)


def test_a_small_parameter_beside_a_large_one_gets_its_own_step():
    # From lme4's point of view: a grouping factor whose SD is 500 times sigma (theta_a ~ 400) and
    # one whose SD is a few per cent of sigma (theta_b ~ 0.05). With one step for all parameters,
    # 1e-4 times the largest (0.04), the differences in theta_b spanned most of it: they reported
    # max|grad| = 0.286 and "failed to converge". lme4 1.1-31 on these data (REML = FALSE) reaches
    # the ML deviance -18240.1581781043 at theta = (398.3948, 0.04716) and warns only that the
    # Hessian is numerically singular (R: lmer(y ~ x + (1|a) + (1|b), d, REML = FALSE)).
    rng = np.random.default_rng(2)
    n, na, nb = 3000, 50, 18
    a, b = rng.integers(0, na, n), rng.integers(0, nb, n)
    x = rng.standard_normal(n)
    y = 1 + x + 5 * rng.standard_normal(na)[a] + 0.0002 * rng.standard_normal(nb)[b] + 0.01 * rng.standard_normal(n)
    df = pd.DataFrame({"y": y, "x": x, "a": a.astype(str), "b": ("b" + pd.Series(b).astype(str)).to_numpy()})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        fit = mmbook.lmer("y ~ x + (1 | a) + (1 | b)", df, REML=False)
    c = fit.convergence
    step = np.asarray(fit.opt.derivs["step"])
    assert step.shape == (2,) and step[1] == pytest.approx(1e-4) and step[0] > 100 * step[1]
    assert c.max_grad < 2e-3 and not any("failed to converge" in m for m in c.messages)
    assert fit.objective <= -18240.1581781043 + 1e-6
    np.testing.assert_allclose(fit.theta, [398.3948, 0.04716], rtol=1e-3)


def test_hessian_from_exact_gradients_divides_each_column_by_its_own_step():
    # with an exact gradient the polish forms H from central differences of gradients; parameters
    # 50 and 0.5 have steps 5e-3 and 1e-4, and column i must be divided by step i (a quadratic's
    # Hessian is then recovered exactly)
    H = np.array([[2.0, 0.3], [0.3, 1.0]])
    opt = np.array([50.0, 0.5])

    def fgrad(x):
        d = x - opt
        return float(0.5 * d @ H @ d), H @ d
    r = minimize_theta(lambda x: fgrad(x)[0], np.array([49.0, 0.8]), np.array([0.0, 0.0]), fgrad=fgrad)
    np.testing.assert_allclose(r.theta, opt, atol=1e-6)
    np.testing.assert_allclose(r.derivs["hessian"], H, rtol=1e-6)
    np.testing.assert_allclose(r.derivs["step"], [5e-3, 1e-4], rtol=1e-6)
