"""The set-up of a fit: cross-product patterns, the sparse pattern handed to CHOLMOD, the rank and scale screens.

Each fast routine is checked against the plain computation it replaces: ``A diag(v) A'`` formed
densely (:class:`mmbook.engine.crossprod.GramPattern`), ``np.unique`` (``unique_keys``), cvxopt's
own triplet constructor (the sparse pattern), the QR decomposition (``drop_rank_deficient``'s
screen) and a column-by-column look at ``X`` (``scale_message``).
"""

import numpy as np
import pytest
import scipy.sparse as sp

import mmbook.engine.sparse as sparse_mod
from mmbook.engine.crossprod import GramPattern
from mmbook.engine.design import drop_rank_deficient
from mmbook.engine.stages import scale_message


def random_csr(rng, n, m, density):
    A = sp.random(n, m, density=density, random_state=int(rng.integers(1 << 30)), format="csr")
    A.data = rng.normal(size=A.nnz)
    return A


@pytest.mark.parametrize("csc_max_rows", [0, 1 << 20])  # M in CSR form (many pairs) and in CSC form
def test_gram_pattern_is_the_lower_triangle_of_A_diag_v_At(csc_max_rows):
    rng = np.random.default_rng(1)
    for _ in range(60):
        n, m = (int(v) for v in rng.integers(1, 25, 2))
        A = random_csr(rng, n, m, rng.uniform(0.0, 0.7))
        gp = GramPattern.build(A, csc_max_rows=csc_max_rows)
        v = rng.uniform(0.1, 2.0, m)
        G = np.tril((A @ sp.diags(v) @ A.T).toarray())
        M = gp.matrix(A.data)
        got = np.zeros((n, n))
        rows = np.repeat(np.arange(n), np.diff(gp.indptr))
        got[rows, gp.indices] = M @ v
        np.testing.assert_allclose(got, G, rtol=1e-13, atol=1e-13)
        # the pattern: every structural pair (i, j), i >= j, that meets in a column, in CSR order
        S = (abs(A).astype(bool).astype(float) @ abs(A).astype(bool).astype(float).T).tocoo()
        want = sorted((i, j) for i, j in zip(S.row, S.col) if i >= j)
        assert list(zip(rows.tolist(), gp.indices.tolist())) == want


def test_gram_pattern_csc_and_csr_forms_give_identical_values():
    """Both forms add each entry's terms in increasing column order: the same floating-point sums."""
    rng = np.random.default_rng(2)
    A = random_csr(rng, 300, 900, 0.02)
    v = rng.uniform(0.1, 2.0, 900)
    a = GramPattern.build(A, csc_max_rows=0).matrix(A.data)
    b = GramPattern.build(A).matrix(A.data)
    assert sp.isspmatrix_csr(a) and sp.isspmatrix_csc(b)
    assert np.array_equal(a @ v, b @ v)


def test_gram_pattern_gives_up_beyond_max_entries():
    rng = np.random.default_rng(3)
    A = random_csr(rng, 40, 10, 0.9)
    assert GramPattern.build(A, max_entries=10) is None


def test_unique_keys_equals_numpy_unique():
    rng = np.random.default_rng(4)
    for size in [1, 7, 1000, 100_000]:
        for nkey in [0, 1, 50, 5000]:
            key = rng.integers(0, size, nkey)
            uniq, inv = sparse_mod.unique_keys(key, size)
            u2, i2 = np.unique(key, return_inverse=True)
            assert np.array_equal(uniq, u2) and np.array_equal(inv, i2.ravel())


@pytest.mark.parametrize("n", [2, 7, 97, 200, 1009, 1128])  # primes and composites
def test_cvxopt_pattern_built_through_short_columns(n):
    rng = np.random.default_rng(n)
    for density in [0.01, 0.3, 1.0]:
        r, c = np.tril_indices(n)
        keep = rng.random(len(r)) < density
        keys = np.union1d((c[keep] * n + r[keep]).astype(np.int64), np.arange(n, dtype=np.int64) * (n + 1))
        A = sparse_mod._spmatrix_pattern(keys, n)
        assert A.size == (n, n)
        colptr, rowind = (np.asarray(x).ravel() for x in A.CCS[:2])
        assert np.array_equal(rowind, keys % n)
        assert np.array_equal(colptr, np.concatenate([[0], np.cumsum(np.bincount(keys // n, minlength=n))]))


def test_sparse_schur_pattern_with_Arr_outside_the_gram_pattern():
    """Z_r'Z_r entries that the gram pattern lacks are added to the union (the general path)."""
    rng = np.random.default_rng(5)
    n = 30
    A = random_csr(rng, n, 60, 0.05)
    gp = GramPattern.build(A)
    M = gp.matrix(A.data)
    Arr = np.zeros((n, n))
    Arr[np.arange(n), np.arange(n)] = rng.uniform(1, 2, n)
    Arr[7, 3] = Arr[3, 7] = 0.25  # perhaps outside the gram pattern
    Arr[n - 1, 0] = Arr[0, n - 1] = -0.5
    rows, cols = np.nonzero(np.tril(Arr))
    S = sparse_mod.SparseSchur(n, rows, cols, Arr[rows, cols], (M, gp.indices, gp.indptr))
    lam, k = rng.uniform(0.2, 1.0, n), rng.uniform(0.1, 0.5, 60)
    dense = np.zeros((n, n))
    dense[S.rows, S.cols] = S.values(lam, k)
    G = np.tril((A @ sp.diags(k * k) @ A.T).toarray())
    want = np.tril(lam[:, None] * (Arr - G) * lam[None, :]) + np.eye(n)
    np.testing.assert_allclose(dense, want, rtol=1e-13, atol=1e-13)


def qr_keeps(X, tol=1e-7):
    """Columns R's rule keeps: QR without pivoting, |R_jj| > tol * ||x_j|| (full rank only)."""
    R = np.linalg.qr(X, mode="r")
    return bool(np.all(np.abs(np.diag(R)) > tol * np.linalg.norm(X, axis=0)))


def test_drop_rank_screen_agrees_with_the_qr_rule():
    rng = np.random.default_rng(6)
    for trial in range(400):
        n, p = int(rng.integers(3, 60)), int(rng.integers(1, 7))
        X = rng.normal(size=(n, p)) * 10.0 ** rng.integers(-6, 7, p)
        if p > 1 and trial % 3 == 0:  # nearly collinear: the screen must hand over to the QR path
            X[:, 1] = X[:, 0] * 3 + 10.0 ** rng.integers(-14, -3) * rng.normal(size=n) * np.abs(X[:, 0]).max()
        kept, names, dropped = drop_rank_deficient(X, [f"c{j}" for j in range(p)])
        if n >= p and qr_keeps(X):
            assert not dropped and np.array_equal(kept, X)
        if not dropped:
            assert qr_keeps(X)


def test_scale_message_reads_every_row_of_a_0_1_column():
    n = 50_000
    rng = np.random.default_rng(7)
    dummy = (rng.random(n) < 0.5).astype(float)
    x = rng.normal(0, 1e5, n)
    X = np.column_stack([np.ones(n), dummy, x])
    assert scale_message(X) is not None  # sd(x) = 1e5 against 1: reported; the dummy is left out
    almost = dummy.copy()
    almost[-3] = 1e7  # one value in the last block of rows: not a 0/1 column, and its sd is ~4e4
    assert scale_message(np.column_stack([np.ones(n), almost])) is not None
    assert scale_message(np.column_stack([np.ones(n), dummy])) is None
    tiny = dummy * 1e-5
    tiny[:20_000] = np.round(tiny[:20_000])  # 0/1 for the first blocks of rows only
    assert scale_message(np.column_stack([np.ones(n), dummy, tiny])) is not None
