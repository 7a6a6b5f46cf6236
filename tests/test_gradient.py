"""mmbook.engine.gradient: the analytic gradient of the profiled criterion against finite differences.

The reference is independent of the gradient's derivation: Richardson-extrapolated central
differences of the criterion (steps 1e-3 and 5e-4; truncation error O(h^4), about 1e-8 here),
whose values tests/test_pls.py checks against the textbook n x n form.
"""

import numpy as np
import pandas as pd
import pytest

import mmbook
from mmbook.engine.design import model_frame
from mmbook.engine.pls import PLS
from test_pls import crossed_data, small_data


def richardson(f, theta, h=1e-3):
    def central(step):
        return np.array([(f(theta + e) - f(theta - e)) / (2 * step) for e in np.eye(len(theta)) * step])
    return (4 * central(h / 2) - central(h)) / 3


CASES = [
    ("y ~ x + (1 | g)", [0.7], small_data),
    ("y ~ x + (x | g)", [0.8, 0.3, 0.5], small_data),
    ("y ~ x * f + (1 | g) + (1 | h)", [0.6, 0.4], small_data),
    ("y ~ x + (x | g) + (1 | h)", [0.9, -0.2, 0.4, 0.3], small_data),
    ("y ~ x + (1 | g/h)", [0.5, 0.6], small_data),
    ("y ~ x + (1 | h) + (0 + x | g)", [0.5, 0.6], small_data),
    ("y ~ x + (1 | g) + (1 | h)", [0.6, 0.4], crossed_data),      # gram pattern
    ("y ~ x + (x | g) + (1 | h)", [0.7, 0.2, 0.5, 0.4], crossed_data),
    ("y ~ x + (1 | g) + (x | h)", [0.6, 0.5, -0.3, 0.4], crossed_data),
    ("y ~ x + (x | g) + (x | h)", [0.7, 0.2, 0.5, 0.6, -0.3, 0.4], crossed_data),
    ("y ~ 1 + (1 | g) + (1 | h)", [0.6, 0.4], crossed_data),
]


@pytest.mark.parametrize("formula,theta,data", CASES)
@pytest.mark.parametrize("REML", [True, False])
def test_gradient_equals_finite_differences(formula, theta, data, REML):
    mf = model_frame(formula, data(), drop_rank=True)
    pls = PLS(mf, REML=REML)
    theta = np.array(theta)
    f, g = pls.objective_gradient(theta)
    assert f == pytest.approx(pls.objective(theta), rel=1e-13)
    np.testing.assert_allclose(g, richardson(pls.objective, theta), rtol=1e-6, atol=1e-6)


def test_gradient_with_prior_weights():
    mf = model_frame("y ~ x + (x | g) + (1 | h)", crossed_data(n=300))
    sw = np.sqrt(np.random.default_rng(1).uniform(0.5, 2.0, mf.n))
    pls = PLS(mf, sqrtw=sw)
    theta = np.array([0.7, 0.2, 0.5, 0.4])
    np.testing.assert_allclose(pls.objective_gradient(theta)[1], richardson(pls.objective, theta),
                               rtol=1e-6, atol=1e-6)


def test_sleepstudy_gradient():
    mf = model_frame("Reaction ~ Days + (Days | Subject)", mmbook.load_sleepstudy())
    for REML in (True, False):
        pls = PLS(mf, REML=REML)
        theta = np.array([0.9, 0.05, 0.2])
        np.testing.assert_allclose(pls.objective_gradient(theta)[1], richardson(pls.objective, theta),
                                   rtol=1e-7, atol=1e-7)


def test_scalar_term_at_zero_has_zero_slope():
    """The criterion is even in a scalar theta_k, so its derivative at 0 is 0; the others are unaffected."""
    mf = model_frame("y ~ x + (1 | g) + (1 | h)", crossed_data())
    pls = PLS(mf)
    theta = np.array([0.6, 0.0])
    g = pls.objective_gradient(theta)[1]
    assert g[1] == 0.0
    # one-sided differences in theta_0 only (theta_1 stays at its bound)
    f = lambda t0: pls.objective(np.array([t0, 0.0]))  # noqa: E731
    h = 1e-4
    assert g[0] == pytest.approx((f(0.6 + h) - f(0.6 - h)) / (2 * h), rel=1e-6)


def test_singular_vector_term_falls_back():
    """A vector-valued term with a singular T has no analytic form here: no gradient (finite differences)."""
    mf = model_frame("y ~ x + (x | g)", small_data())
    pls = PLS(mf)
    theta = np.array([0.8, 0.3, 0.0])
    f, g = pls.objective_gradient(theta)
    assert g is None and f == pytest.approx(pls.objective(theta), rel=1e-13)


def test_invalid_theta_gives_infinite_criterion():
    mf = model_frame("y ~ x + (x | g)", small_data())
    f, g = PLS(mf).objective_gradient(np.array([np.nan, 0.3, 0.5]))
    assert f == np.inf and np.all(g == 0)


def test_fit_ends_where_the_gradient_vanishes():
    """With the analytic gradient, the optimizer ends where the gradient (in lme4's theta) is zero to the
    optimizer's tolerance (lme4's own check asks |gradient| < 0.002)."""
    rng = np.random.default_rng(9)
    n, m = 6000, 800
    g = rng.integers(0, m, n)
    d = pd.DataFrame({"x": rng.standard_normal(n), "g": g.astype(str)})
    d["y"] = 1 + d.x + rng.standard_normal(m)[g] + 0.5 * rng.standard_normal(m)[g] * d.x + rng.standard_normal(n)
    fit = mmbook.lmer("y ~ x + (x | g)", d)
    assert fit.pls.inner.analytic_gradient_pays()
    f, grad = fit.pls.objective_gradient(fit.theta)
    assert np.max(np.abs(grad)) < 1e-4
    assert f == pytest.approx(fit.objective, abs=1e-9)


def test_optimizer_uses_the_analytic_gradient_where_it_pays():
    """One term: always; crossed terms: from three parameters on (two cost as much as forward differences)."""
    rng = np.random.default_rng(3)
    n = 5000
    d = pd.DataFrame({"x": rng.standard_normal(n), "y": rng.standard_normal(n),
                      "g": rng.integers(0, 1200, n).astype(str), "h": rng.integers(0, 40, n).astype(str)})
    assert PLS(model_frame("y ~ x + (x | g)", d)).analytic_gradient_pays()
    assert PLS(model_frame("y ~ x + (1 | g)", d)).analytic_gradient_pays()
    assert not PLS(model_frame("y ~ x + (1 | g) + (1 | h)", d)).analytic_gradient_pays()
    assert PLS(model_frame("y ~ x + (x | g) + (1 | h)", d)).analytic_gradient_pays()
    # small models: the evaluations are cheap and finite differences win
    assert not PLS(model_frame("y ~ x + (x | g)", crossed_data())).analytic_gradient_pays()
