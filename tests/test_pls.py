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


# ---------------------------------------------------------------- every branch of the factorisation
def crossed_data(seed=5, n=600):
    """Many levels and few rows per level: the cross-tabulation of g and h is under 15 % filled,
    so the later terms take the sparse branches of PLS.factor."""
    rng = np.random.default_rng(seed)
    d = pd.DataFrame({"x": rng.standard_normal(n), "g": rng.integers(0, 150, n).astype(str),
                      "h": rng.integers(0, 100, n).astype(str)})
    d["y"] = 1 + d.x + rng.standard_normal(n)
    return d


def dense_condvar(mf, theta):
    """Lambda (Lambda' Z' Z Lambda + I)^{-1} Lambda': conditional covariance of b / sigma^2 given beta."""
    Zs, Ls, off = [], [], 0
    for t in mf.terms:
        Zs.append(t.Z().toarray())
        Ls.append(np.kron(np.eye(t.nlevels), t.T(theta[off:off + t.ntheta])))
        off += t.ntheta
    Z, Lam = np.hstack(Zs), sp.block_diag(Ls).toarray()
    ZL = Z @ Lam
    return Lam @ np.linalg.inv(ZL.T @ ZL + np.eye(ZL.shape[1])) @ Lam.T


@pytest.mark.parametrize("formula,theta,branch", [
    ("y ~ x + (1 | g) + (1 | h)", [0.6, 0.4], "scalar, sparse, gram pattern"),
    ("y ~ x + (x | g) + (1 | h)", [0.7, 0.2, 0.5, 0.4], "vector first term, sparse later term"),
    ("y ~ x + (1 | g) + (x | h)", [0.6, 0.5, -0.3, 0.4], "vector later term, scalar first term"),
    ("y ~ x + (x | g) + (x | h)", [0.7, 0.2, 0.5, 0.6, -0.3, 0.4], "two vector-valued terms"),
])
@pytest.mark.parametrize("REML", [True, False])
def test_sparse_and_vector_branches_equal_dense_form(formula, theta, branch, REML):
    mf = model_frame(formula, crossed_data(), drop_rank=True)
    pls = PLS(mf, REML=REML)
    assert pls.Qr > 0 and not pls._rest_dense, branch
    theta = np.array(theta)
    ref, b = dense_criterion(mf, theta, REML)
    assert pls.objective(theta) == pytest.approx(ref, rel=1e-10)
    np.testing.assert_allclose(pls.solve(theta).beta, b, rtol=1e-8)


def test_sparse_branch_without_gram_pattern():
    """Where the precomputed pattern would be too large, the product is formed directly: same value."""
    mf = model_frame("y ~ x + (1 | g) + (1 | h)", crossed_data())
    pls = PLS(mf)
    theta = np.array([0.6, 0.4])
    with_pattern = pls.objective(theta)
    assert pls._gram is not None
    pls._gram = None
    assert pls.objective(theta) == pytest.approx(with_pattern, rel=1e-12)
    assert pls.objective(theta) == pytest.approx(dense_criterion(mf, theta, True)[0], rel=1e-10)


@pytest.mark.parametrize("formula,theta", [
    ("y ~ x + (x | g) + (x | h)", [0.7, 0.2, 0.5, 0.6, -0.3, 0.4]),
    ("y ~ x + (1 | g) + (1 | h)", [0.6, 0.4]),
])
def test_condvar_equals_dense_form(formula, theta):
    mf = model_frame(formula, crossed_data(n=300))
    pls = PLS(mf)
    theta = np.array(theta)
    C = dense_condvar(mf, theta)
    off = 0
    for t, V in zip(mf.terms, pls.condvar(theta)):
        for lev in (0, t.nlevels // 2, t.nlevels - 1):
            sl = slice(off + lev * t.q, off + (lev + 1) * t.q)
            np.testing.assert_allclose(V[lev], C[sl, sl], atol=1e-10)
        off += t.nlevels * t.q


def test_reweight_forms_weighted_cross_products():
    """The reweighting seam: PLS with row weights w is PLS on sqrt(w)-scaled rows of [Z X y];
    reweighting an existing PLS re-forms every cached cross-product (nothing stale survives)."""
    d = crossed_data(n=300)
    mf = model_frame("y ~ x + (x | g) + (1 | h)", d)
    sw = np.sqrt(np.random.default_rng(1).uniform(0.5, 2.0, mf.n))
    theta = np.array([0.7, 0.2, 0.5, 0.4])
    scaled = model_frame("y ~ x + (x | g) + (1 | h)", d)
    scaled.X, scaled.y = mf.X * sw[:, None], mf.y * sw
    for t in scaled.terms:
        t.z = t.z * sw[:, None]
    ref = dense_criterion(scaled, theta, True)[0]
    assert PLS(mf, sqrtw=sw).objective(theta) == pytest.approx(ref, rel=1e-10)
    pls = PLS(mf)
    unweighted = pls.objective(theta)
    assert pls.reweight(sw).objective(theta) == pytest.approx(ref, rel=1e-10)
    assert pls.reweight(None).objective(theta) == pytest.approx(unweighted, rel=1e-12)
