"""mmbook.engine.pls: the profiled criterion against its dense textbook form.

For a given theta, the marginal model is y ~ N(X beta, sigma^2 V) with V = Z Lambda Lambda' Z' + I
(Bates et al. 2015). Profiling beta (GLS) and sigma out gives

  ML:   -2 l = log|V| + n (1 + log(2 pi r2 / n)),                 r2 = (y - X b)' V^{-1} (y - X b)
  REML: -2 l_R = log|V| + log|X' V^{-1} X| + (n - p)(1 + log(2 pi r2 / (n - p)))

computed here with dense n x n matrices, independently of mmbook's blocked Cholesky.
"""

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

import mmbook
from mmbook.engine.design import model_frame
from mmbook.engine.pls import PLS


def dense_criterion(mf, theta, REML):
    Zs, Ls, off = [], [], 0
    for t in mf.terms:
        Zs.append(t.Z().toarray())
        T = t.T(theta[off:off + t.ntheta])
        Ls.append(np.kron(np.eye(t.nlevels), T))
        off += t.ntheta
    Z = np.hstack(Zs)
    Lam = sp.block_diag(Ls).toarray()
    n, p = mf.X.shape
    V = Z @ Lam @ Lam.T @ Z.T + np.eye(n)
    Vi = np.linalg.inv(V)
    XtViX = mf.X.T @ Vi @ mf.X
    b = np.linalg.solve(XtViX, mf.X.T @ Vi @ mf.y)
    r = mf.y - mf.X @ b
    r2 = r @ Vi @ r
    logdetV = np.linalg.slogdet(V)[1]
    if REML:
        return logdetV + np.linalg.slogdet(XtViX)[1] + (n - p) * (1 + np.log(2 * np.pi * r2 / (n - p))), b
    return logdetV + n * (1 + np.log(2 * np.pi * r2 / n)), b


def small_data(seed=0):
    rng = np.random.default_rng(seed)
    n = 120
    d = pd.DataFrame({"x": rng.standard_normal(n), "g": rng.choice(list("abcdefgh"), n),
                      "h": rng.choice(list("PQRST"), n), "f": rng.choice(["lo", "hi"], n)})
    d["y"] = 1 + d.x + (d.g == "b") * 1.5 + (d.h == "Q") * 0.7 + rng.standard_normal(n)
    return d


@pytest.mark.parametrize("formula,theta", [
    ("y ~ x + (1 | g)", [0.7]),
    ("y ~ x + (x | g)", [0.8, 0.3, 0.5]),
    ("y ~ x * f + (1 | g) + (1 | h)", [0.6, 0.4]),
    ("y ~ x + (x | g) + (1 | h)", [0.9, -0.2, 0.4, 0.3]),
    ("y ~ x + (1 | g/h)", [0.5, 0.6]),
    ("y ~ x + (1 | h) + (0 + x | g)", [0.5, 0.6]),
])
@pytest.mark.parametrize("REML", [True, False])
def test_criterion_equals_dense_form(formula, theta, REML):
    mf = model_frame(formula, small_data(), drop_rank=True)
    pls = PLS(mf, REML=REML)
    theta = np.array(theta)
    ref, b = dense_criterion(mf, theta, REML)
    assert pls.objective(theta) == pytest.approx(ref, rel=1e-11)
    np.testing.assert_allclose(pls.solve(theta).beta, b, rtol=1e-9)


def test_sleepstudy_matches_lme4_criterion_at_lme4_theta():
    # tests/data/lme4_sleepstudy.json: lme4 1.1-31's theta and REML criterion for (Days | Subject)
    import json
    from pathlib import Path

    ref = json.loads((Path(__file__).parent / "data" / "lme4_sleepstudy.json").read_text())
    fit = ref["fits"]["sleepstudy_slope_REML"]
    mf = model_frame("Reaction ~ Days + (Days | Subject)", mmbook.load_sleepstudy())
    val = PLS(mf, REML=True).objective(np.array(list(fit["theta"].values())))
    assert val == pytest.approx(fit["criterion"], abs=1e-9)


def test_conditional_modes_solve_the_penalized_problem():
    # u minimises ||y - X beta - Z Lambda u||^2 + ||u||^2 at the given beta: the normal equations
    mf = model_frame("y ~ x + (x | g) + (1 | h)", small_data(3))
    pls = PLS(mf)
    theta = np.array([0.9, -0.2, 0.4, 0.3])
    s = pls.solve(theta)
    ZL = np.hstack([t.Z().toarray() @ np.kron(np.eye(t.nlevels), pls.T(k, theta))
                    for k, t in enumerate(mf.terms)])
    u = np.concatenate([uk.ravel() for uk in s.u])
    r = mf.y - mf.X @ s.beta - ZL @ u
    np.testing.assert_allclose(ZL.T @ r - u, 0, atol=1e-9)
    assert r @ r + u @ u == pytest.approx(s.pwrss, rel=1e-10)
