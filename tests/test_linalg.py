"""mmbook.engine.linalg: batched block factorisations, checked against numpy on each block."""

import numpy as np
import pytest

from mmbook.engine.linalg import (chol_blocks, congruence_blocks, factor_first_term, inv_lower_blocks,
                           solve_lower_blocks, solve_upper_blocks)


def _stack(q, m, seed):
    rng = np.random.default_rng(seed)
    G = rng.standard_normal((m, q, q + 2))
    A = G @ np.swapaxes(G, 1, 2)  # symmetric positive definite blocks
    return np.ascontiguousarray(A.transpose(1, 2, 0)), A


@pytest.mark.parametrize("q", [1, 2, 3, 4])
def test_blocks_match_numpy(q):
    Aqqm, A = _stack(q, 7, q)
    L = chol_blocks(Aqqm)
    np.testing.assert_allclose(L.transpose(2, 0, 1), np.linalg.cholesky(A), rtol=1e-12, atol=1e-12)
    B = np.random.default_rng(1).standard_normal((q, 3, 7))
    W = solve_lower_blocks(L, B)
    Lm = L.transpose(2, 0, 1)
    np.testing.assert_allclose(np.matmul(Lm, W.transpose(2, 0, 1)), B.transpose(2, 0, 1), atol=1e-10)
    U = solve_upper_blocks(L, B)
    np.testing.assert_allclose(np.matmul(np.swapaxes(Lm, 1, 2), U.transpose(2, 0, 1)),
                               B.transpose(2, 0, 1), atol=1e-10)
    inv = inv_lower_blocks(L).transpose(2, 0, 1)
    np.testing.assert_allclose(inv, np.linalg.inv(Lm), atol=1e-10)


@pytest.mark.parametrize("q", [1, 2, 3])
def test_factor_first_term_closed_forms(q):
    Aqqm, A = _stack(q, 9, 10 + q)
    T = np.tril(np.random.default_rng(q).uniform(0.2, 1.5, (q, q)))
    B = np.random.default_rng(5).standard_normal((q, 4, 9))
    L, W, logdet = factor_first_term(T, Aqqm, B)
    M = T.T[None] @ A @ T[None] + np.eye(q)
    Lref = np.linalg.cholesky(M)
    np.testing.assert_allclose(L.transpose(2, 0, 1), Lref, rtol=1e-12, atol=1e-12)
    Wref = np.linalg.solve(Lref, T.T[None] @ B.transpose(2, 0, 1))
    np.testing.assert_allclose(W.transpose(2, 0, 1), Wref, rtol=1e-10, atol=1e-12)
    assert logdet == pytest.approx(np.linalg.slogdet(M)[1].sum(), rel=1e-12)
    np.testing.assert_allclose(congruence_blocks(T, Aqqm, True).transpose(2, 0, 1)[:, np.tril_indices(q)[0],
                                                                             np.tril_indices(q)[1]],
                               M[:, np.tril_indices(q)[0], np.tril_indices(q)[1]], rtol=1e-12)


def test_not_positive_definite_raises():
    A = np.zeros((2, 2, 3))
    A[0, 0] = [1.0, -1.0, 2.0]
    A[1, 1] = 1.0
    with pytest.raises(np.linalg.LinAlgError):
        chol_blocks(A)
