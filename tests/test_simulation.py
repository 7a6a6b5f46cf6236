"""mmbook.rcompat.simulation: the reference document's two simulations.

References, stated per test:
- sim_ri.csv, sim_ris.csv and seed_sims.json: R 4.2.2 (MASS 7.3-58.2) running the
  document's code ("Simulate a mixed model" and the Appendix) after set.seed(1234);
  the CSVs hold x, y, clus at 17 significant digits. Read from tests/data/ if a
  copy is there, else from ../shared/reference/.
- Algebra: the four ways of computing y in the Appendix are the same numbers;
  mvrnorm(empirical = TRUE) makes the sample covariance of gamma exactly psi.
"""


import numpy as np
import pandas as pd
import pytest
from conftest import reference_path

from mmbook.rcompat.rng import RRandom
from mmbook.rcompat.simulation import simulate_random_intercepts, simulate_random_slopes

@pytest.fixture(scope="module")
def ref(seed_sims):
    return seed_sims


@pytest.fixture(scope="module")
def ri():
    return simulate_random_intercepts()


@pytest.fixture(scope="module")
def ris():
    return simulate_random_slopes()


def read_r_csv(name):
    return pd.read_csv(reference_path(name), dtype={"clus": str})


# --- random intercepts ("Simulate a mixed model") -------------------------------------

def test_ri_data_equal_r(ri):
    # R 4.2.2: the document's d, written at 17 significant digits (round-trips doubles)
    d = read_r_csv("sim_ri.csv")
    np.testing.assert_allclose(ri.data["x"], d["x"], rtol=1e-14, atol=0)
    np.testing.assert_allclose(ri.data["y"], d["y"], rtol=1e-14, atol=0)
    assert np.array_equal(ri.data["y"], d["y"])           # in fact bit for bit
    assert (ri.data["clus"].astype(str) == d["clus"]).all()


def test_ri_gamma_and_head_equal_r(ri, ref):
    # R 4.2.2: gamma_[1:10] and head(d) from seed_sims.json
    assert ri.gamma[:10].tolist() == ref["sim_ri"]["gamma_first10"]
    assert ri.data["y"].head(6).tolist() == ref["sim_ri"]["data_head6"]["y"]
    assert ri.data["x"].head(6).tolist() == ref["sim_ri"]["data_head6"]["x"]


def test_ri_clus_is_a_factor_in_numeric_order(ri):
    # R: factor(rep(1:100, each = 10)) has levels "1", "2", ..., "100" (not a string sort)
    clus = ri.data["clus"]
    assert isinstance(clus.dtype, pd.CategoricalDtype)
    assert list(clus.cat.categories) == [str(i) for i in range(1, 101)]
    assert list(ri.data.columns) == ["x", "y", "clus"]


def test_ri_matrix_form(ri):
    # document: y2 = X %*% B + Z %*% gamma_ + e equals y
    assert ri.X.shape == (1000, 2) and ri.Z.shape == (1000, 100)
    assert np.array_equal(ri.Z.sum(axis=0), np.full(100, 10.0))
    np.testing.assert_allclose(ri.y2, ri.y, rtol=0, atol=1e-12)


def test_ri_draw_order():
    # document: gamma_ first (sd tau), then e (sd sigma), then x
    z = RRandom(1234).rnorm(100 + 1000 + 1000)
    sim = simulate_random_intercepts()
    assert np.array_equal(sim.gamma, 0.5 * z[:100])
    assert np.array_equal(sim.e, z[100:1100]) and np.array_equal(sim.x, z[1100:])


# --- random intercepts and slopes (Appendix) -------------------------------------------

def test_ris_gamma_equals_r(ris, ref):
    # R 4.2.2, MASS 7.3-58.2: MASS::mvrnorm(100, c(0,0), psi, empirical=TRUE)[1:10, ]
    assert ris.gamma[:10, 0].tolist() == ref["sim_ris"]["gamma_first10"]["col1"]
    assert ris.gamma[:10, 1].tolist() == ref["sim_ris"]["gamma_first10"]["col2"]


def test_ris_data_equal_r(ris):
    # R 4.2.2: the Appendix's d at 17 significant digits
    d = read_r_csv("sim_ris.csv")
    np.testing.assert_allclose(ris.data["x"], d["x"], rtol=1e-14, atol=0)
    np.testing.assert_allclose(ris.data["y"], d["y"], rtol=1e-14, atol=0)
    assert np.array_equal(ris.data["y"], d["y"])          # in fact bit for bit
    assert (ris.data["clus"].astype(str) == d["clus"]).all()


def test_ris_gamma_has_exact_moments(ris):
    # empirical = TRUE: column means 0 and sample covariance psi
    np.testing.assert_allclose(ris.gamma.mean(axis=0), 0.0, rtol=0, atol=1e-12)
    np.testing.assert_allclose(np.cov(ris.gamma, rowvar=False), ris.psi, rtol=0, atol=1e-12)


def test_ris_four_ways_to_y_agree(ris):
    # Appendix: y, y2 (rowSums shortcut), y3 (block-diagonal Z), y4 (ybycluster)
    for y in (ris.y_rowsum, ris.y_blockdiag, ris.y_bycluster):
        np.testing.assert_allclose(y, ris.y, rtol=0, atol=1e-12)


def test_ris_block_diagonal_z(ris):
    # Appendix loop: cluster c's rows of X in columns 2c-1:2c (1-based), nothing else
    Z = ris.Z.toarray()
    assert Z.shape == (1000, 200)
    assert np.array_equal(Z[:10, :2], ris.X[:10]) and np.array_equal(Z[990:, 198:], ris.X[990:])
    assert np.count_nonzero(Z[:10, 2:]) == 0 and ris.Z.nnz == 2000


def test_marginal_draw(ris):
    # y5 = mvrnorm(1, X B, Z psiBig Z' + I) after set.seed(1234): R's numbers are not
    # reproducible (repeated eigenvalue, see the docstring); check what is determined
    V = ris.marginal_cov()
    np.testing.assert_allclose(V[:10, :10], ris.X[:10] @ ris.psi @ ris.X[:10].T + np.eye(10),
                               rtol=1e-14, atol=1e-14)
    assert np.count_nonzero(V[:10, 10:]) == 0
    y5 = ris.marginal_draw()
    assert y5.shape == (1000,) and np.all(np.isfinite(y5))
    assert np.array_equal(y5, ris.marginal_draw(rng=RRandom(1234)))
    # y5 - X beta is a linear image of 1000 standard normals: its covariance structure is
    # V, so V^{-1/2}-whitened residuals have mean square near 1 (chi^2_1000 / 1000)
    L = np.linalg.cholesky(V)
    w = np.linalg.solve(L, y5 - ris.X @ ris.beta)
    assert abs(np.mean(w**2) - 1.0) < 0.2


# --- bad input ------------------------------------------------------------------------

@pytest.mark.parametrize("call, match", [
    (lambda: simulate_random_intercepts(nclus=0), "nclus"),
    (lambda: simulate_random_intercepts(size=2.5), "size"),
    (lambda: simulate_random_intercepts(tau=-1.0), "sd"),
    (lambda: simulate_random_intercepts(beta=(1.0,)), "beta"),
    (lambda: simulate_random_slopes(psi=np.eye(3)), "psi"),
    (lambda: simulate_random_slopes(psi=[[1.0, 2.0], [2.0, 1.0]]), "positive definite"),
])
def test_bad_input(call, match):
    with pytest.raises(ValueError, match=match):
        call()
