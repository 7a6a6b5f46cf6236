"""mmbook.engine.sparse: the sparse Cholesky factor of the later terms equals the dense path.

The reference is the dense path of the same PLS (mmbook.engine.pls: LAPACK's Cholesky factor
of the whole Schur complement, with its gram-pattern and SYRK branches), which
tests/test_pls.py checks against the textbook n x n form; and, on a small design, that
textbook form itself (tests/test_pls.py: dense_criterion).
"""

import numpy as np
import pandas as pd
import pytest

import mmbook
import mmbook.engine.sparse as sparse_mod
from mmbook.engine.design import model_frame
from mmbook.engine.pls import PLS
from test_pls import crossed_data, dense_criterion


def sampled_crossed(seed=3, n=4000, n_s=1500, n_d=400, n_dept=12):
    """InstEval's shape in small: many students with few ratings each, lecturers nested in departments."""
    rng = np.random.default_rng(seed)
    s = np.concatenate([np.arange(n_s), rng.integers(0, n_s, n - n_s)])
    d = np.concatenate([np.arange(n_d), rng.choice(n_d, n - n_d, p=rng.dirichlet(np.ones(n_d)))])
    rng.shuffle(d)
    dept_of_d = np.concatenate([np.arange(n_dept), rng.integers(0, n_dept, n_d - n_dept)])
    x = rng.standard_normal(n)
    y = (1 + 0.3 * x + rng.normal(0, 0.4, n_s)[s] + rng.normal(0, 0.6, n_d)[d]
         + rng.normal(0, 0.2, n_dept)[dept_of_d[d]] + rng.standard_normal(n))
    return pd.DataFrame({"y": y, "x": x, "s": s.astype(str), "d": ("d" + pd.Series(d).astype(str)).to_numpy(),
                         "dept": ("k" + pd.Series(dept_of_d[d]).astype(str)).to_numpy()})


def dense_value(pls, theta):
    """The same PLS's criterion through the dense Schur complement."""
    saved = pls._sparse
    pls._sparse = None
    try:
        return pls.objective(theta)
    finally:
        pls._sparse = saved


FORMULA = "y ~ x + (1 | s) + (1 | d) + (1 | dept)"


@pytest.mark.parametrize("REML", [True, False])
def test_sparse_path_is_chosen_and_equals_dense(REML):
    mf = model_frame(FORMULA, sampled_crossed())
    pls = PLS(mf, REML=REML)
    theta = np.array([0.5, 0.7, 0.3])
    assert pls.uses_sparse_factor(theta)  # few ratings per student: the fill is small
    S = pls._sparse
    assert S.nnz_factor < 0.5 * S.n * (S.n + 1) / 2
    assert 3 * S.flops_sparse < S.flops_dense
    rng = np.random.default_rng(0)
    for t in [theta, theta * 2.5, np.array([0.05, 1.3, 0.9]), rng.uniform(0.1, 2, 3)]:
        assert pls.objective(t) == pytest.approx(dense_value(pls, t), rel=1e-10)


def test_sparse_equals_dense_with_and_without_gram_pattern():
    """Three factorisations of one Schur complement: sparse, dense via the gram pattern, dense via sparse products."""
    mf = model_frame(FORMULA, sampled_crossed(seed=8))
    pls = PLS(mf)
    theta = np.array([0.8, 0.6, 0.2])
    assert pls.uses_sparse_factor(theta) and pls._gram is not None
    sparse_value = pls.objective(theta)
    gram_value = dense_value(pls, theta)
    pls._gram, saved = None, pls._gram
    product_value = pls.objective(theta)  # no gram pattern: neither the sparse path nor the mat-vec
    pls._gram = saved
    assert sparse_value == pytest.approx(gram_value, rel=1e-10)
    assert sparse_value == pytest.approx(product_value, rel=1e-10)


def test_sparse_path_equals_textbook_form(monkeypatch):
    """Forced onto a small design (where it would not pay), the sparse path gives the n x n form's value."""
    monkeypatch.setattr(sparse_mod, "_MIN_QR", 1)
    monkeypatch.setattr(sparse_mod, "_ADVANTAGE", 0.0)
    mf = model_frame("y ~ x + (1 | g) + (1 | h)", crossed_data(n=400))
    for REML in (True, False):
        pls = PLS(mf, REML=REML)
        theta = np.array([0.6, 0.4])
        assert pls.uses_sparse_factor(theta)
        assert pls.objective(theta) == pytest.approx(dense_criterion(mf, theta, REML)[0], rel=1e-10)


def test_sparse_path_with_prior_weights():
    d = sampled_crossed(seed=11)
    mf = model_frame(FORMULA, d)
    sw = np.sqrt(np.random.default_rng(2).uniform(0.5, 2.0, mf.n))
    pls = PLS(mf, sqrtw=sw)
    theta = np.array([0.4, 0.9, 0.5])
    assert pls.uses_sparse_factor(theta)
    assert pls.objective(theta) == pytest.approx(dense_value(pls, theta), rel=1e-10)


def test_dense_fill_keeps_dense_path():
    """Every student rates many lecturers: the factor would be nearly full, so the dense path is kept."""
    rng = np.random.default_rng(4)
    n, n_s, n_d = 30000, 600, 250
    s = np.repeat(np.arange(n_s), n // n_s)
    d = rng.integers(0, n_d, n)
    dat = pd.DataFrame({"y": rng.standard_normal(n), "x": rng.standard_normal(n),
                        "s": s.astype(str), "d": ("d" + pd.Series(d).astype(str)).to_numpy()})
    pls = PLS(model_frame("y ~ x + (1 | s) + (1 | d)", dat))
    theta = np.array([0.5, 0.5])
    pls.objective(theta)
    assert not pls.uses_sparse_factor(theta)


def test_invalid_theta_is_infinite_on_sparse_path():
    mf = model_frame(FORMULA, sampled_crossed())
    pls = PLS(mf)
    assert pls.uses_sparse_factor(np.array([0.5, 0.7, 0.3]))
    assert pls.objective(np.array([np.nan, 0.7, 0.3])) == np.inf


def test_fit_through_sparse_path_matches_dense_fit(monkeypatch):
    """The whole fit: the sparse path (finite-difference gradient) and the dense path (analytic
    gradient) reach the same optimum."""
    d = sampled_crossed(seed=5)
    sparse_fit = mmbook.lmer(FORMULA, d)
    assert sparse_fit.pls.inner.uses_sparse_factor()
    monkeypatch.setattr(sparse_mod, "_ADVANTAGE", np.inf)
    dense_fit = mmbook.lmer(FORMULA, d)
    assert not dense_fit.pls.inner.uses_sparse_factor()
    assert sparse_fit.objective == pytest.approx(dense_fit.objective, rel=1e-10)
    np.testing.assert_allclose(sparse_fit.theta, dense_fit.theta, rtol=1e-4)
    np.testing.assert_allclose(sparse_fit.fixef, dense_fit.fixef, rtol=1e-6)
