"""mmbook.forms.mme: Henderson's mixed-model equations, the penalized loss and ridge regression.

References, stated per test:
- lme4_sleepstudy.json: R 4.2.2, lme4 1.1-31 (tests/data/README.md): fixef and ranef of
  Reaction ~ Days + (1 | Subject) and + (Days | Subject), REML and ML, with theta and sigma.
  The mixed-model equations at lme4's psi = sigma^2 T T' and sigma must give lme4's fixef/ranef.
- lme4_designs.json, designs/crossed.csv: R 4.2.2, lme4 1.1-31, written by make_lme4_designs.R
  (set.seed(404), 20 subjects x 12 items): the crossed model y ~ x + (1 | subj) + (1 | item).
- mmbook.lmer: its fixef/ranef come from mmbook.engine.pls (lme4's spherical formulation, a different
  computation that never inverts psi); the two must agree to rounding.
- Ridge: numpy.linalg.lstsq on the augmented system [X; sqrt(lam) D^(1/2)] (a closed form).
"""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from scipy import stats

import mmbook
from mmbook.engine.design import model_frame
from mmbook.forms.marginal import Z_matrix, gamma_vector, psi_big
from mmbook.forms.mme import mixed_model_equations, mme_system, penalized_loss, ridge

DATA = Path(__file__).parent / "data"
SLEEP_REF = json.loads((DATA / "lme4_sleepstudy.json").read_text())["fits"]
DESIGN_REF = json.loads((DATA / "lme4_designs.json").read_text())["fits"]

SLEEP_MODELS = ["sleepstudy_int_REML", "sleepstudy_int_ML", "sleepstudy_slope_REML", "sleepstudy_slope_ML"]


@pytest.fixture(scope="module")
def sleep():
    return mmbook.load_sleepstudy()


@pytest.fixture(scope="module")
def fits(sleep):
    return {name: mmbook.lmer(SLEEP_REF[name]["formula"], sleep, REML=SLEEP_REF[name]["REML"])
            for name in SLEEP_MODELS}


def _lme4_psi(ref, term_q):
    """Per-term psi_k = sigma^2 T_k T_k' from lme4's theta (column-major lower triangles)."""
    theta = ref["theta"]
    theta = np.array(list(theta.values()) if isinstance(theta, dict) else theta, dtype=float)
    blocks, off = [], 0
    for q in term_q:
        T = np.zeros((q, q))
        cols, rows = np.triu_indices(q)
        T[rows, cols] = theta[off:off + len(rows)]
        off += len(rows)
        blocks.append(ref["sigma"] ** 2 * T @ T.T)
    assert off == theta.size
    return blocks


def _lme4_gamma(ref, terms):
    """lme4's ranef stacked in mmbook's column order of Z (term by term, level by level)."""
    out = []
    for t in terms:
        r = ref["ranef"][t.group]
        values = r["values"]            # sleepstudy file: one list per term; designs file: term -> list
        cols = values if isinstance(values, dict) else dict(zip(r["terms"], values))
        vals = pd.DataFrame(cols, index=r["levels"])
        out.append(vals.loc[t.levels, t.cnames].to_numpy().ravel())
    return np.concatenate(out)


# ----------------------------------------------------------- vs lmer and lme4
@pytest.mark.parametrize("name", SLEEP_MODELS)
def test_mme_equals_lmer_sleepstudy(fits, name):
    fit = fits[name]
    beta, gamma = mixed_model_equations(fit.mf.X, Z_matrix(fit), fit.mf.y, psi_big(fit), fit.sigma)
    np.testing.assert_allclose(beta, fit.fixef.to_numpy(), rtol=1e-8)
    g = gamma_vector(fit)
    np.testing.assert_allclose(gamma, g, rtol=0, atol=1e-8 * np.abs(g).max())


@pytest.mark.parametrize("name", SLEEP_MODELS)
def test_mme_at_lme4_parameters_gives_lme4_estimates(sleep, name):
    ref = SLEEP_REF[name]
    mf = model_frame(ref["formula"], sleep)
    Z = sp.hstack([t.Z() for t in mf.terms], format="csr")
    psi = _lme4_psi(ref, [t.q for t in mf.terms])
    beta, gamma = mixed_model_equations(mf.X, Z, mf.y, psi, ref["sigma"], nlevels=[t.nlevels for t in mf.terms])
    np.testing.assert_allclose(beta, [ref["fixef"][c] for c in mf.xnames], rtol=1e-9)
    g = _lme4_gamma(ref, mf.terms)
    np.testing.assert_allclose(gamma, g, rtol=0, atol=1e-8 * np.abs(g).max())


@pytest.mark.parametrize("name", ["crossed_REML", "crossed_ML"])
def test_mme_crossed_design(name):
    ref = DESIGN_REF[name]
    data = pd.read_csv(DATA / ref["data"])
    fit = mmbook.lmer(ref["formula"], data, REML=ref["REML"])
    assert [t.group for t in fit.terms] == ["subj", "item"]          # two crossed factors
    X, Z, y = fit.mf.X, Z_matrix(fit), fit.mf.y
    g_fit = gamma_vector(fit)
    # at mmbook's estimates: mmbook's fixef and ranef
    beta, gamma = mixed_model_equations(X, Z, y, psi_big(fit), fit.sigma)
    np.testing.assert_allclose(beta, fit.beta, rtol=1e-8)
    np.testing.assert_allclose(gamma, g_fit, rtol=0, atol=1e-8 * np.abs(g_fit).max())
    # at lme4's estimates: lme4's fixef and ranef
    psi = _lme4_psi(ref, [1, 1])
    beta, gamma = mixed_model_equations(X, Z, y, psi, ref["sigma"], nlevels=[20, 12])
    np.testing.assert_allclose(beta, ref["fixef"], rtol=1e-8)
    g = _lme4_gamma(ref, fit.terms)
    np.testing.assert_allclose(gamma, g, rtol=0, atol=1e-7 * np.abs(g).max())


def test_mme_equals_pls_solution_at_any_theta(fits):
    """Henderson's equations and lme4's PLS are the same problem, also away from the optimum."""
    fit = fits["sleepstudy_slope_REML"]
    X, Z, y = fit.mf.X, Z_matrix(fit), fit.mf.y
    sigma = 20.0
    for theta in ([0.5, 0.1, 0.3], [2.0, -0.5, 0.05]):
        sol = fit.pls.solve(np.array(theta))
        T = fit.terms[0].T(np.array(theta))
        beta, gamma = mixed_model_equations(X, Z, y, sigma**2 * T @ T.T, sigma)
        np.testing.assert_allclose(beta, sol.beta, rtol=1e-9)
        np.testing.assert_allclose(gamma, sol.gamma[0].ravel(), rtol=0, atol=1e-9 * np.abs(gamma).max())


def test_psi_forms_agree(fits):
    """Full dense, full sparse, one repeated block, and a list of blocks give the same solution."""
    fit = fits["sleepstudy_slope_REML"]
    X, Z, y = fit.mf.X, Z_matrix(fit), fit.mf.y
    ref = mixed_model_equations(X, Z, y, psi_big(fit), fit.sigma)
    for psi, kw in [(psi_big(fit).toarray(), {}), (fit.psi(0), {}), ([fit.psi(0)], {}),
                    ([fit.psi(0)], {"nlevels": [18]})]:
        b, g = mixed_model_equations(X, Z.toarray(), y, psi, fit.sigma, **kw)
        np.testing.assert_allclose(b, ref.beta, rtol=1e-12)
        np.testing.assert_allclose(g, ref.gamma, rtol=0, atol=1e-10)


def test_mme_system_is_symmetric_and_solved(fits):
    fit = fits["sleepstudy_int_REML"]
    X, Z, y = fit.mf.X, Z_matrix(fit), fit.mf.y
    C, c = mme_system(X, Z, y, psi_big(fit), fit.sigma)
    assert C.shape == (20, 20) and sp.issparse(C)
    assert abs(C - C.T).max() == 0
    sol = mixed_model_equations(X, Z, y, psi_big(fit), fit.sigma)
    np.testing.assert_allclose(C @ np.r_[sol.beta, sol.gamma], c, rtol=1e-10)
    # the penalty block is Z'Z + sigma^2 / tau^2 I
    lam = fit.sigma**2 / fit.psi(0)[0, 0]
    np.testing.assert_allclose(C[2:, 2:].toarray(), (Z.T @ Z).toarray() + lam * np.eye(18), rtol=1e-12)


# ------------------------------------------------------------ penalized loss
def test_penalized_loss_is_minimized_by_the_mme_solution(fits):
    fit = fits["sleepstudy_slope_REML"]
    X, Z, y, P, s = fit.mf.X, Z_matrix(fit), fit.mf.y, psi_big(fit), fit.sigma
    beta, gamma = mixed_model_equations(X, Z, y, P, s)
    best = penalized_loss(y, X, Z, beta, gamma, P, s)
    rng = np.random.default_rng(1)
    for _ in range(5):
        db, dg = rng.normal(size=2), rng.normal(size=gamma.size)
        assert penalized_loss(y, X, Z, beta + db, gamma + dg, P, s) > best
    # the loss is a quadratic with zero gradient at the solution: a tiny step changes it to 2nd order
    step = 1e-4 * rng.normal(size=gamma.size)
    assert penalized_loss(y, X, Z, beta, gamma + step, P, s) - best < 1e-6


def test_penalized_loss_is_minus_twice_log_joint_density(fits):
    """-2 log p(y | gamma) p(gamma) = loss + constant: differences between two points agree."""
    fit = fits["sleepstudy_int_REML"]
    X, Z, y, s = fit.mf.X, Z_matrix(fit), fit.mf.y, fit.sigma
    tau2 = fit.psi(0)[0, 0]

    def minus2_log_joint(b, g):
        return -2 * (stats.norm(X @ b + Z @ g, s).logpdf(y).sum() + stats.norm(0, np.sqrt(tau2)).logpdf(g).sum())

    b0, g0 = fit.beta, gamma_vector(fit)
    b1, g1 = b0 + [3.0, -1.0], g0 * 0.5
    d_loss = penalized_loss(y, X, Z, b1, g1, [[tau2]], s) - penalized_loss(y, X, Z, b0, g0, [[tau2]], s)
    assert d_loss == pytest.approx(minus2_log_joint(b1, g1) - minus2_log_joint(b0, g0), rel=1e-10)


# --------------------------------------------------------------------- ridge
def test_ridge_equals_random_intercept_model(fits):
    for name in ("sleepstudy_int_REML", "sleepstudy_int_ML"):
        fit = fits[name]
        X, Z, y = fit.mf.X, Z_matrix(fit), fit.mf.y
        lam = fit.sigma**2 / fit.psi(0)[0, 0]
        assert lam == pytest.approx(1 / fit.theta[0] ** 2, rel=1e-12)
        penalize = np.r_[False, False, np.ones(18, dtype=bool)]
        coef = ridge(sp.hstack([sp.csr_matrix(X), Z]), y, lam, penalize)
        np.testing.assert_allclose(coef[:2], fit.beta, rtol=1e-8)
        g = gamma_vector(fit)
        np.testing.assert_allclose(coef[2:], g, rtol=0, atol=1e-8 * np.abs(g).max())
        # dense [X Z] gives the same
        np.testing.assert_allclose(ridge(np.column_stack([X, Z.toarray()]), y, lam, penalize), coef, rtol=1e-10)


def test_ridge_closed_form_and_limits():
    rng = np.random.default_rng(7)
    X = np.column_stack([np.ones(30), rng.normal(size=(30, 4))])
    y = X @ [1.0, 2.0, -1.0, 0.5, 0.0] + rng.normal(size=30)
    pen = np.array([False, True, True, True, True])
    # lam = 0 is least squares
    np.testing.assert_allclose(ridge(X, y, 0.0, pen), np.linalg.lstsq(X, y, rcond=None)[0], rtol=1e-10)
    # any lam: least squares on the augmented rows sqrt(lam) * e_j for the penalized j
    lam = 3.7
    A = np.vstack([X, np.sqrt(lam) * np.eye(5)[pen]])
    b = np.r_[y, np.zeros(pen.sum())]
    np.testing.assert_allclose(ridge(X, y, lam, pen), np.linalg.lstsq(A, b, rcond=None)[0], rtol=1e-10)
    # default: every coefficient penalized
    A_all = np.vstack([X, np.sqrt(lam) * np.eye(5)])
    np.testing.assert_allclose(ridge(X, y, lam), np.linalg.lstsq(A_all, np.r_[y, np.zeros(5)], rcond=None)[0],
                               rtol=1e-10)
    # a path: one row per lambda; huge lambda leaves only the intercept, the mean of y
    path = ridge(X, y, [0.0, lam, 1e12], pen)
    assert path.shape == (3, 5)
    np.testing.assert_allclose(path[1], ridge(X, y, lam, pen), rtol=1e-12)
    np.testing.assert_allclose(path[2], [y.mean(), 0, 0, 0, 0], atol=1e-9)


# ----------------------------------------------------------------- bad input
@pytest.fixture(scope="module")
def small():
    rng = np.random.default_rng(3)
    X = np.column_stack([np.ones(12), rng.normal(size=12)])
    Z = np.kron(np.eye(4), np.ones((3, 1)))          # 4 clusters of 3 rows
    y = rng.normal(size=12)
    return X, Z, y


def test_shape_mismatch_raises_clear_error(small):
    X, Z, y = small
    with pytest.raises(ValueError, match="X must have 12 rows"):
        mixed_model_equations(X[:10], Z, y, [[1.0]], 1.0)
    with pytest.raises(ValueError, match="Z must have 12 rows"):
        mixed_model_equations(X, Z[:11], y, [[1.0]], 1.0)
    with pytest.raises(ValueError, match="psi is 3 x 3 but Z has 4 columns"):
        mixed_model_equations(X, Z, y, np.eye(3), 1.0)
    with pytest.raises(ValueError, match="psi must be a square matrix"):
        mixed_model_equations(X, Z, y, np.ones((2, 3)), 1.0)
    with pytest.raises(ValueError, match="cover 6 random effects"):
        mixed_model_equations(X, Z, y, [np.eye(1), np.eye(1)], 1.0, nlevels=[2, 4])
    with pytest.raises(ValueError, match="give nlevels"):
        mixed_model_equations(X, Z, y, [np.eye(1), np.eye(1)], 1.0)
    with pytest.raises(ValueError, match="y must be a vector"):
        mixed_model_equations(X, Z, np.ones((12, 2)), [[1.0]], 1.0)
    with pytest.raises(ValueError, match="gamma has 3 values but Z has 4 columns"):
        penalized_loss(y, X, Z, [0.0, 0.0], np.zeros(3), [[1.0]], 1.0)
    with pytest.raises(ValueError, match="beta has 3 values but X has 2 columns"):
        penalized_loss(y, X, Z, np.zeros(3), np.zeros(4), [[1.0]], 1.0)
    with pytest.raises(ValueError, match="X must have 12 rows"):
        ridge(X[:5], y, 1.0)
    with pytest.raises(ValueError, match="penalize must be 2 booleans"):
        ridge(X, y, 1.0, penalize=[True, False, True])


def test_bad_parameters_raise_clear_error(small):
    X, Z, y = small
    with pytest.raises(ValueError, match="sigma must be a positive"):
        mixed_model_equations(X, Z, y, [[1.0]], 0.0)
    with pytest.raises(ValueError, match="not positive definite"):
        mixed_model_equations(X, Z, y, [[0.0]], 1.0)       # a zero variance: psi has no inverse
    with pytest.raises(ValueError, match="not symmetric"):
        mixed_model_equations(X, np.column_stack([Z, Z]), y, [[1.0, 0.5], [0.0, 1.0]], 1.0)
    with pytest.raises(ValueError, match="linearly dependent"):
        mixed_model_equations(np.column_stack([X, 2 * X[:, 1]]), Z, y, [[1.0]], 1.0)
    with pytest.raises(ValueError, match="lam must be finite and >= 0"):
        ridge(X, y, -1.0)
    with pytest.raises(ValueError, match="singular"):
        ridge(np.column_stack([X, Z]), y, 0.0)            # intercept and all dummies, no penalty
