"""A sparse Cholesky factor of the later terms, where their sparsity pays.

:class:`mmbook.engine.pls.PLS` eliminates the first (largest) random-effects
term in closed form (its block of ``M(theta)`` is block diagonal) and is left
with the Schur complement of the remaining terms and ``[X y]``:

.. math::

    S(\\theta) = \\begin{pmatrix} S_{rr} & S_{rz}' \\\\ S_{rz} & S_{zz} \\end{pmatrix},
    \\qquad S_{rr} = \\Lambda_r (A_{rr} - A_{r1} D_k^2 A_{r1}') \\Lambda_r + I,

with ``r`` the random effects of the later terms and ``z = [X y]``
(``D_k = diag(T_1 / L_11)`` per level of the first term). The dense path
factors all of ``S`` with LAPACK. When the later terms are many and the first
term's levels touch few of them (a sample of InstEval: each student rates a
handful of the 1,128 lecturers), ``S_rr`` is sparse and a fill-reducing
ordered sparse Cholesky factor ``P S_rr P' = L_r L_r'`` is much cheaper:

.. math::

    W = L_r^{-1} P S_{rz}', \\qquad S_{zz} - W'W = L_z L_z',

so ``log|L_theta|^2`` gains ``2 sum log diag(L_r)``, and ``R_X`` and
``sqrt(pwrss)`` are the diagonal blocks of the small dense ``L_z``, exactly
as in the dense path (the same matrix, factored in another order).

The factor is CHOLMOD's supernodal Cholesky (Chen, Davis, Hager and
Rajamanickam 2008) with its AMD ordering, through ``cvxopt.cholmod``. Which
path a model takes is decided by measured fill, not a fixed size: one
symbolic analysis and one numeric factorisation at the starting ``theta``
give the factor's column counts ``c_j``; the sparse path is taken when its
operation count ``sum_j c_j^2`` (plus the solves for ``[X y]``) is below a
third of the dense path's ``n^3 / 3`` (plus forming the dense matrix). The
pattern of ``S_rr`` does not depend on ``theta``, so the analysis is done once
per set of weights and every evaluation is a numeric factorisation.

This path applies when the first term and all later terms are scalar (random
intercepts and other single-column terms, the crossed designs where it
matters); other models keep the dense path.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

__all__ = ["SparseSchur", "sparse_schur", "unique_keys"]

try:  # optional at import time: without cvxopt every model takes the dense path
    import cvxopt
    import cvxopt.cholmod as _cholmod
except ImportError:  # pragma: no cover - cvxopt is a dependency; this guards a broken install
    cvxopt = None
    _cholmod = None

# The sparse path must be this many times cheaper by operation count than the dense one: dense
# LAPACK runs several times more operations per second than a sparse factorisation does.
_ADVANTAGE = 3.0
# Below this many later random effects the dense factor costs microseconds: no analysis.
_MIN_QR = 200


def unique_keys(key: np.ndarray, size: int, dense_limit: int = 1 << 25):
    """``np.unique(key, return_inverse=True)`` for integer keys in ``[0, size)``.

    Where ``size`` is small (at most ``dense_limit``) a dense map of the key
    range replaces the sort: O(len(key) + size) instead of O(len(key) log len(key)).
    The inverse is int32 when it fits.
    """
    if size > dense_limit:
        return np.unique(key, return_inverse=True)
    present = np.zeros(size, dtype=bool)
    present[key] = True
    uniq = np.flatnonzero(present)
    # the rank of each present key, written only where keys are (the pages of an np.empty array
    # that are never written cost nothing): no pass over the whole range
    rank = np.empty(size, dtype=np.int32 if len(uniq) < 2**31 else np.int64)
    rank[uniq] = np.arange(len(uniq), dtype=rank.dtype)
    return uniq, rank[key]


class SparseSchur:
    """The fixed sparsity pattern of ``S_rr`` and CHOLMOD's analysis of it.

    Built by :func:`sparse_schur`, which also decides whether the sparse
    path pays; :meth:`factor_pieces` factors it at each ``theta``.

    Attributes
    ----------
    n : int
        Order of ``S_rr`` (the later terms' random effects, ``Q_r``).
    nnz_pattern : int
        Non-zeros in the lower triangle of ``S_rr``.
    nnz_factor : int
        Non-zeros of the supernodal factor ``L_r`` (with CHOLMOD's padding).
    flops_sparse, flops_dense : float
        Operation counts the decision compared.
    """

    def __init__(self, Qr, arr_rows, arr_cols, arr_vals, gram, arr_on_gram: bool = False):
        M, g_indices, g_indptr = gram
        n = Qr
        # union of the two lower-triangular patterns and the diagonal, in CSC order (column, then row)
        key_arr = np.asarray(arr_cols, dtype=np.int64) * n + arr_rows
        diag_key = np.arange(n, dtype=np.int64) * (n + 1)
        keys, pos_g = _csc_keys(g_indices, g_indptr, n)
        # arr_on_gram: Z_r'Z_r given at the gram pattern's entries, in its CSR order
        pos_arr = pos_g if arr_on_gram else _positions(keys, key_arr)
        pos_diag = _positions(keys, diag_key)
        if pos_arr is None or pos_diag is None:  # Z_r'Z_r or the diagonal reach outside the gram pattern
            g_rows = np.repeat(np.arange(n), np.diff(g_indptr))
            key_g = np.asarray(g_indices, dtype=np.int64) * n + g_rows
            keys, inv = unique_keys(np.concatenate([key_arr, key_g, diag_key]), n * n)
            n_arr, n_g = len(key_arr), len(key_g)
            pos_arr, pos_g, pos_diag = inv[:n_arr], inv[n_arr:n_arr + n_g], inv[n_arr + n_g:]
        self.n = n
        self.rows = (keys % n).astype(np.int64)
        self.cols = (keys // n).astype(np.int64)
        self.pos_arr = pos_arr
        self.arr_vals = np.asarray(arr_vals, dtype=float)
        self.pos_diag = pos_diag
        self.M = M  # one row per entry of the gram pattern (CSR order); pos_g places them in the union
        self.pos_g = pos_g
        self.nnz_pattern = len(keys)
        # per evaluation: S_rr's values are base - M_u k^2, scaled, with M_u = M with its rows at their
        # places in the union (a column-compressed M: its row indices renamed, the sums unchanged)
        self._base = np.zeros(self.nnz_pattern)
        self._base[pos_arr] = self.arr_vals
        self._M_union = (sp.csc_matrix((M.data, pos_g[M.indices], M.indptr), shape=(self.nnz_pattern, M.shape[1]))
                         if sp.isspmatrix_csc(M) else None)
        self._A = _spmatrix_pattern(keys, n)
        colptr = np.asarray(self._A.CCS[0]).ravel()
        rowind = np.asarray(self._A.CCS[1]).ravel()
        expected = np.concatenate([[0], np.cumsum(np.bincount(self.cols, minlength=n))])
        if not (np.array_equal(colptr, expected) and np.array_equal(rowind, self.rows)):
            raise RuntimeError("cvxopt stored the pattern in an unexpected order")  # pragma: no cover
        self.F = None
        self._perm = None
        self.nnz_factor = 0
        self.flops_sparse = self.flops_dense = np.inf

    # ------------------------------------------------------------------ values
    def gram_values(self, k):
        """Values of ``A_r1 D_k^2 A_r1'`` (one sparse mat-vec): on the union pattern, or on the gram
        pattern where its rows could not be renamed (:meth:`values` places them)."""
        return (self.M if self._M_union is None else self._M_union) @ (k * k)

    def values(self, lam, k, gram_values=None):
        """Values of ``S_rr`` on the pattern, for ``Lambda_r = diag(lam)`` and ``D_k = diag(k)``.

        ``gram_values``: :meth:`gram_values` at ``k``, where already computed (``k`` is then not read).
        """
        g = self.gram_values(k) if gram_values is None else gram_values
        if self._M_union is not None:
            v = self._base - g
        else:
            v = self._base.copy()
            v[self.pos_g] -= g
        if np.all(lam == lam[0]):  # one later term (or equal scales): one scalar
            v *= lam[0] * lam[0]
        else:
            v *= lam[self.rows] * lam[self.cols]
        v[self.pos_diag] += 1.0
        return v

    def _load(self, v):
        self._A.V = cvxopt.matrix(v)
        return self._A

    # ---------------------------------------------------------------- analysis
    def analyse(self, lam, k, extra_cols: int) -> bool:
        """Symbolic analysis, one probe factorisation, and the decision; True if sparse pays.

        ``lam`` and ``k`` define a positive definite ``S_rr`` (any valid
        ``theta``); ``extra_cols`` is the number of ``[X y]`` columns.
        """
        opts = dict(_cholmod.options)
        try:
            _cholmod.options["supernodal"] = 2
            _cholmod.options["postorder"] = True
            A = self._load(self.values(lam, k))
            probe = _cholmod.symbolic(A, uplo="L")
            _cholmod.numeric(A, probe)
            L = _cholmod.getfactor(probe)  # converts the probe to a simplicial factor with the same pattern
            counts = np.diff(np.asarray(L.CCS[0]).ravel()).astype(float)
            self.nnz_factor = int(counts.sum())
            n, r = self.n, extra_cols
            self.flops_sparse = float(np.sum(counts * counts)) + 4.0 * r * self.nnz_factor + 10.0 * self.nnz_pattern
            nd = n + r
            self.flops_dense = nd ** 3 / 3.0 + 10.0 * n * n
            if self.flops_sparse * _ADVANTAGE >= self.flops_dense:
                return False
            self.F = _cholmod.symbolic(A, uplo="L")
            return True
        except ArithmeticError:
            return False
        finally:
            _cholmod.options.clear()
            _cholmod.options.update(opts)

    # -------------------------------------------------------------- criterion
    def factor_pieces(self, lam, k, S_rz, S_zz, gram_values=None):
        """Numeric factorisation at one ``theta``: ``(2 sum log diag L_r, L_z)``.

        Parameters
        ----------
        lam, k : ndarray
            ``diag(Lambda_r)`` (Q_r,) and ``T_1 / L_11`` per level of the first term.
        S_rz : ndarray, shape (p + 1, Q_r)
            Rows of ``[X y]`` in the later terms' columns of the Schur complement.
        S_zz : ndarray, shape (p + 1, p + 1)
            Its ``[X y]`` block (lower triangle read).
        gram_values : ndarray, optional
            :meth:`gram_values` at ``k``, where already computed.

        Returns
        -------
        logdet_r : float
            ``log |L_r|^2``.
        Lz : ndarray, shape (p + 1, p + 1)
            Lower Cholesky factor of ``S_zz - W'W``.

        Raises
        ------
        numpy.linalg.LinAlgError
            ``S`` is not positive definite.
        """
        A = self._load(self.values(lam, k, gram_values))
        opts = dict(_cholmod.options)
        try:
            _cholmod.options["supernodal"] = 2
            _cholmod.numeric(A, self.F)
            d = np.asarray(_cholmod.diag(self.F)).ravel()
            if self._perm is None:  # the fill-reducing permutation: P b = b[perm]
                e = cvxopt.matrix(np.arange(self.n, dtype=float))
                _cholmod.solve(self.F, e, sys=7)
                self._perm = np.asarray(e).ravel().astype(np.int64)
            B = cvxopt.matrix(np.asfortranarray(S_rz.T[self._perm]))
            _cholmod.solve(self.F, B, sys=4)  # B <- L^{-1} P S_rz'
        except ArithmeticError:
            raise np.linalg.LinAlgError("matrix is not positive definite") from None
        finally:
            _cholmod.options.clear()
            _cholmod.options.update(opts)
        W = np.asarray(B)
        Szz = S_zz - W.T @ W
        return float(2.0 * np.log(d).sum()), np.linalg.cholesky(Szz)


def _csc_keys(indices, indptr, n):
    """Keys ``col * n + row`` of a CSR pattern (``indices``, ``indptr``) in CSC order, and the CSC
    position of every CSR entry (one integer-valued transpose, no sort)."""
    nnz = len(indices)
    T = sp.csr_matrix((np.arange(nnz, dtype=np.intp), indices, indptr), shape=(n, n)).tocsc()
    T.sort_indices()
    cols = np.repeat(np.arange(n, dtype=np.int64), np.diff(T.indptr))
    keys = cols * n + T.indices
    pos = np.empty(nnz, dtype=np.intp)
    pos[T.data] = np.arange(nnz)
    return keys, pos


def _positions(keys, wanted):
    """Positions of ``wanted`` in the sorted ``keys``, or None if one is missing."""
    pos = np.searchsorted(keys, wanted)
    if np.any(pos >= len(keys)) or not np.array_equal(keys[np.minimum(pos, len(keys) - 1)], wanted):
        return None
    return pos


def _spmatrix_pattern(keys, n):
    """A cvxopt ``n x n`` sparse matrix (values 0) with non-zeros at the sorted column-major ``keys``.

    cvxopt's triplet constructor looks for a duplicate of each entry among the entries of its
    column, which is quadratic in the column's length (12 ms for the Schur complement of
    InstEval). The entries are therefore loaded as an ``R x (n^2 / R)`` matrix with short
    columns and reshaped to ``n x n`` (cvxopt's ``size``, which keeps the column-major order).
    """
    R = _short_side(n, len(keys))
    if R is None:
        return cvxopt.spmatrix(0.0, cvxopt.matrix(keys % n), cvxopt.matrix(keys // n), (n, n))
    A = cvxopt.spmatrix(0.0, cvxopt.matrix(keys % R), cvxopt.matrix(keys // R), (R, n * n // R))
    A.size = (n, n)
    return A


def _short_side(n, nnz):
    """The number of rows ``R`` (a divisor of ``n^2``) of the temporary matrix, or None (keep ``n``).

    Cost model, fitted to cvxopt 1.3's constructor: about ``10 n^2 / R`` for its pass over the
    columns plus ``nnz^2 R / (2 n^2)`` for the duplicate search within columns. None beyond the
    32-bit arithmetic of cvxopt's reshape.
    """
    nsq = n * n
    if nsq >= 2**31 - 1 or n < 2:
        return None
    f, m, p = {}, n, 2  # prime factors of n (exponents doubled: of n^2)
    while p * p <= m:
        while m % p == 0:
            f[p] = f.get(p, 0) + 2
            m //= p
        p += 1
    if m > 1:
        f[m] = f.get(m, 0) + 2
    divisors = [1]
    for p, e in f.items():
        divisors = [d * p ** k for d in divisors for k in range(e + 1)]
    cost = {R: 10.0 * nsq / R + float(nnz) ** 2 * R / (2.0 * nsq) for R in divisors if R <= n}
    R = min(cost, key=cost.get)
    return R if R < n else None


def sparse_schur(Qr, Arr, gram, lam, k, extra_cols):
    """A :class:`SparseSchur` for the later terms if the sparse factor pays, else None.

    Parameters
    ----------
    Qr : int
        Number of random effects after the first term.
    Arr : ndarray or scipy.sparse matrix, shape (Qr, Qr)
        ``Z_r' Z_r`` (weighted).
    gram : tuple
        The gram pattern of ``A_r1`` (``(M, indices, indptr)``, see
        :func:`mmbook.engine.pls` ``_gram_pattern``): ``A_r1 diag(w) A_r1'``
        has lower-triangle values ``M @ w``.
    lam, k : ndarray
        A valid ``theta``'s ``diag(Lambda_r)`` and ``T_1 / L_11`` (for the probe factorisation).
    extra_cols : int
        ``p + 1``.
    """
    if _cholmod is None or gram is None or Qr < _MIN_QR:
        return None
    if sp.issparse(Arr):
        low = sp.tril(sp.coo_matrix(Arr))
        rows, cols, vals = low.row, low.col, low.data
    else:
        Arr = np.asarray(Arr)
        # Z_r'Z_r lies on the gram pattern when the later terms meet in rows that a level of the
        # first term holds (always, for scalar terms): read it there; else find its non-zeros
        _, g_indices, g_indptr = gram
        rows = np.repeat(np.arange(Qr), np.diff(g_indptr))
        cols = np.asarray(g_indices)
        vals = Arr[rows, cols]
        nz = np.count_nonzero(vals)
        on_gram = 2 * nz - np.count_nonzero(vals[rows == cols]) == np.count_nonzero(Arr)
        if not on_gram:
            rows, cols = np.nonzero(Arr)
            low = rows >= cols
            rows, cols = rows[low], cols[low]
            vals = Arr[rows, cols]
        S = SparseSchur(Qr, rows, cols, vals, gram, arr_on_gram=on_gram)
        return S if S.analyse(lam, k, extra_cols) else None
    S = SparseSchur(Qr, rows, cols, vals, gram)
    return S if S.analyse(lam, k, extra_cols) else None
