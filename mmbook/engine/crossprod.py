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

from .sparse import unique_keys

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
        uniq, self._ar1_pos = unique_keys(key, self.Qr * self.Q1)
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

    The pairs are generated column by column of ``A``; with the rows of each column sorted they
    come, within a column, in increasing order of their entry ``(i, j)``. That order is ``M`` in
    compressed sparse column form, as it stands: no sort of the pairs. ``M @ v`` then adds each
    entry's terms in increasing ``l``, exactly as the row-wise (CSR) product does. Where the
    entries are many (``M @ v`` scattering into a vector larger than ``csc_max_rows`` doubles),
    ``M`` is handed out in CSR form instead.
    """

    def __init__(self, I_csr, J_csr, M_indices, M_indptr, shape, indices, indptr, csr: bool):
        self._I, self._J = I_csr, J_csr  # the A entries (CSR positions) of M's stored values, in M's order
        self._M_indices, self._M_indptr, self._M_shape = M_indices, M_indptr, shape
        self._csr = csr
        self.indices, self.indptr = indices, indptr

    @classmethod
    def build(cls, A: sp.csr_matrix, max_entries: int = 20_000_000, csc_max_rows: int = 1 << 20):
        A = A.tocsr()
        A.sort_indices()
        n, m = A.shape
        nnz = A.nnz
        # the CSR entries in CSC order (an integer-valued transpose: no stored value can be lost)
        At = sp.csr_matrix((np.arange(nnz, dtype=np.intp), A.indices, A.indptr), shape=A.shape).tocsc()
        At.sort_indices()
        csc_to_csr = At.data  # CSC entry k is CSR entry csc_to_csr[k]
        Ac_indptr, Ac_rows = At.indptr.astype(np.intp), At.indices.astype(np.intp)
        col_start = np.repeat(Ac_indptr[:-1], np.diff(Ac_indptr))  # first CSC entry of each entry's column
        counts = np.arange(nnz, dtype=np.intp) - col_start + 1  # partners j <= i in the column
        total = int(counts.sum())
        if total > max_entries:
            return None
        ends = np.cumsum(counts)
        # pair t: entry i (CSC position) with an entry j at or above it in the same column
        J = np.arange(total, dtype=np.intp) - np.repeat(ends - counts - col_start, counts)
        key = np.repeat(Ac_rows, counts) * n + Ac_rows[J]  # (row_i, row_j), i >= j, row-major
        uniq, inv = unique_keys(key, n * n)
        del key
        if nnz < 2**31:  # half the memory (and the traffic of every matrix() call)
            csc_to_csr = csc_to_csr.astype(np.int32)
        I_csr, J_csr = np.repeat(csc_to_csr, counts), csc_to_csr[J]
        del J
        pair_ptr = np.concatenate([[0], ends])[Ac_indptr]  # M's columns: the pairs of A's column l
        indptr = np.concatenate([[0], np.cumsum(np.bincount(uniq // n, minlength=n))])
        return cls(I_csr, J_csr, inv, pair_ptr, (len(uniq), m), (uniq % n).astype(np.int32), indptr,
                   csr=len(uniq) > csc_max_rows)

    def matrix(self, A_data: np.ndarray):
        """``M`` for the CSR values ``A_data`` of the pattern: ``M @ v`` gives the lower triangle's entries."""
        vals = A_data[self._I] * A_data[self._J]
        M = sp.csc_matrix((vals, self._M_indices, self._M_indptr), shape=self._M_shape)
        return M.tocsr() if self._csr else M
