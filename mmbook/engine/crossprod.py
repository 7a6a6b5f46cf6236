"""Weighted cross-products of the random-effects terms after the first, formed again for new weights.

:meth:`mmbook.engine.pls.PLS.reweight` needs, for row weights ``w`` (``W = diag(w^2)``),

.. math::  A_{r1} = Z_r' W Z_1, \\qquad A_{rr} = Z_r' W Z_r, \\qquad A_{rxy} = Z_r' W [X\\ y],

with ``Z_1`` the first (largest) term and ``Z_r`` the others side by side. ``Z`` does not change
when only the weights do - a GLMM re-forms these products at every PIRLS iteration - so the place
of every row's contribution is found once here; each call is then a few ``np.bincount`` passes over
the rows, without building sparse matrices. The sparsity pattern of ``A_r1`` is fixed, so the
products ``A_r1 diag(k) A_r1'`` that the factorisation needs (:class:`GramPattern`) also keep their
structure between calls.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

__all__ = ["RestProducts", "GramPattern"]


class RestProducts:
    """The positions of ``Z_r' W Z_1``, ``Z_r' W Z_r`` and ``Z_r' W [X y]``, ready for any weights.

    Parameters
    ----------
    first : RandomTerm
    rest : list of RandomTerm
    """

    def __init__(self, first, rest):
        cols, vals, off = [], [], 0
        for t in rest:
            for a in range(t.q):
                cols.append(off + t.refs.astype(np.int64) * t.q + a)
                vals.append(t.z[:, a])
            off += t.nlevels * t.q
        self.Qr = off
        self.colr = np.column_stack(cols)  # (n, K): the column of Z_r each row's k-th entry is in
        self.valr = np.column_stack(vals)
        q1 = first.q
        self.Q1 = first.nlevels * q1
        col1 = first.refs.astype(np.int64)[:, None] * q1 + np.arange(q1)[None, :]
        self.val1 = first.z
        key = (self.colr[:, :, None] * self.Q1 + col1[:, None, :]).ravel()
        uniq, self._ar1_pos = np.unique(key, return_inverse=True)
        rows = uniq // self.Q1
        self._ar1_indices = (uniq % self.Q1).astype(np.int32)
        self._ar1_indptr = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=self.Qr))]).astype(np.int32)
        self.nnz = len(uniq)
        self.dense = self.nnz > 0.15 * self.Qr * self.Q1  # PLS's rule for a dense A_r1
        self._arr_pos = (self.colr[:, :, None] * self.Qr + self.colr[:, None, :]).ravel()
        n = self.colr.shape[0]
        self._ZrT = sp.csr_matrix((self.valr.ravel(), (self.colr.ravel(), np.repeat(np.arange(n), self.colr.shape[1]))),
                                  shape=(self.Qr, n))

    def products(self, w, XYw):
        """``(A_r1, A_rr, A_rxy)`` for square-root weights ``w`` (None: 1) and ``XYw = w [X y]``.

        ``A_r1`` is a CSR matrix with a fixed pattern (or dense, see :attr:`dense`); ``A_rr`` and
        ``A_rxy`` are dense.
        """
        w2 = None if w is None else w * w
        p1 = self.valr[:, :, None] * self.val1[:, None, :]
        if w2 is not None:
            p1 = p1 * w2[:, None, None]
        data = np.bincount(self._ar1_pos, p1.ravel(), minlength=self.nnz)
        Ar1 = sp.csr_matrix((data, self._ar1_indices, self._ar1_indptr), shape=(self.Qr, self.Q1))
        prr = self.valr[:, :, None] * self.valr[:, None, :]
        if w2 is not None:
            prr = prr * w2[:, None, None]
        Arr = np.bincount(self._arr_pos, prr.ravel(), minlength=self.Qr * self.Qr).reshape(self.Qr, self.Qr)
        Arxy = self._ZrT @ (XYw if w is None else XYw * w[:, None])
        return (Ar1.toarray() if self.dense else Ar1), Arr, np.asarray(Arxy)


class GramPattern:
    """``A diag(v) A'`` (lower triangle) as a linear map of ``v``, for a CSR matrix ``A`` of fixed pattern.

    Every entry ``(i, j)``, ``i >= j``, is ``sum_l A[i, l] A[j, l] v_l``. The pairs of structural
    non-zeros that meet in a column are found once; for new values of ``A`` the map is a sparse
    matrix ``M`` (one row per entry of the lower triangle) with ``M @ v`` the entries. ``None``
    (from :meth:`build`) when the pattern would have more than ``max_entries`` pairs.
    """

    def __init__(self, A: sp.csr_matrix, I, J, csr_to_csc, perm, M_indices, M_indptr, shape, indices, indptr):
        self._I, self._J, self._csr_to_csc, self._perm = I, J, csr_to_csc, perm
        self._M_indices, self._M_indptr, self._M_shape = M_indices, M_indptr, shape
        self.indices, self.indptr = indices, indptr

    @classmethod
    def build(cls, A: sp.csr_matrix, max_entries: int = 20_000_000):
        A = A.tocsr()
        A.sort_indices()
        # position of each CSR entry in CSC order
        # (positions are stored as values + 1: a stored zero could be dropped by a conversion)
        marker = sp.csr_matrix((np.arange(1, A.nnz + 1, dtype=np.float64), A.indices, A.indptr), shape=A.shape).tocsc()
        marker.sort_indices()
        csr_to_csc = marker.data.astype(np.int64) - 1  # CSC entry k is CSR entry csr_to_csc[k]
        Ac_indptr, Ac_indices = marker.indptr, marker.indices
        m = A.shape[1]
        nnz_col = np.diff(Ac_indptr)
        counts = np.arange(A.nnz) - np.repeat(Ac_indptr[:-1], nnz_col) + 1  # partners j <= i in the column
        total = int(counts.sum())
        if total > max_entries:
            return None
        I = np.repeat(np.arange(A.nnz), counts)
        start = np.repeat(np.repeat(Ac_indptr[:-1], nnz_col), counts)
        offset = np.arange(total) - np.repeat(np.cumsum(counts) - counts, counts)
        J = start + offset
        rows, cols = Ac_indices[I], Ac_indices[J]
        col_l = np.repeat(np.repeat(np.arange(m), nnz_col), counts)
        n = A.shape[0]
        key = rows.astype(np.int64) * n + cols
        uniq, inv = np.unique(key, return_inverse=True)
        M = sp.csr_matrix((np.arange(1, total + 1, dtype=np.float64), (inv, col_l)), shape=(len(uniq), m))
        perm = M.data.astype(np.int64) - 1  # M's k-th stored value is pair perm[k]
        urow, ucol = uniq // n, uniq % n
        indptr = np.concatenate([[0], np.cumsum(np.bincount(urow, minlength=n))])
        return cls(A, I, J, csr_to_csc, perm, M.indices, M.indptr, M.shape, ucol.astype(np.int32), indptr)

    def matrix(self, A_data: np.ndarray) -> sp.csr_matrix:
        """``M`` for the CSR values ``A_data`` of the pattern: ``M @ v`` gives the lower triangle's entries."""
        c = A_data[self._csr_to_csc]
        vals = (c[self._I] * c[self._J])[self._perm]
        return sp.csr_matrix((vals, self._M_indices, self._M_indptr), shape=self._M_shape)
