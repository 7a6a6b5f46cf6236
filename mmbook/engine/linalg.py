"""Batched small-matrix linear algebra, vectorised across groups.

A model with one grouping factor has a block-diagonal ``Lambda' Z'Z Lambda + I``
with one small ``q x q`` block per level. Factorising thousands of 2 x 2
blocks one LAPACK call at a time (or with a batched ``np.linalg.cholesky``)
is slow. Here a stack of ``m`` blocks is stored "element-major", as an array
of shape ``(q, q, m)``: ``A[i, j]`` is the contiguous vector of the (i, j)
elements of all blocks, and every operation below is a handful of vector
operations over the ``m`` groups, looping only over the ``q`` rows/columns.
"""

from __future__ import annotations

import numpy as np

__all__ = ["chol_blocks", "solve_lower_blocks", "solve_upper_blocks", "inv_lower_blocks",
           "congruence_blocks", "trans_mult_blocks"]


def chol_blocks(A: np.ndarray) -> np.ndarray:
    """Lower Cholesky factors of a stack of symmetric positive definite blocks.

    Parameters
    ----------
    A : ndarray, shape (q, q, m)
        Only the lower triangle is read.

    Returns
    -------
    L : ndarray, shape (q, q, m)
        ``L[:, :, k] @ L[:, :, k].T == A[:, :, k]``, zero above the diagonal.

    Raises
    ------
    numpy.linalg.LinAlgError
        If a block is not positive definite.
    """
    q = A.shape[0]
    L = np.zeros_like(A)
    for j in range(q):
        s = A[j, j].copy()
        for k in range(j):
            s -= L[j, k] * L[j, k]
        if not np.all(s > 0):
            raise np.linalg.LinAlgError("matrix is not positive definite")
        d = np.sqrt(s)
        L[j, j] = d
        for i in range(j + 1, q):
            t = A[i, j].copy()
            for k in range(j):
                t -= L[i, k] * L[j, k]
            L[i, j] = t / d
    return L


def solve_lower_blocks(L: np.ndarray, B: np.ndarray) -> np.ndarray:
    """Solve ``L_k W_k = B_k`` for every block: ``L`` (q, q, m), ``B`` (q, r, m) -> ``W`` (q, r, m).

    Forward substitution row by row, each step on all blocks at once. A single
    ``L`` (q, q) with ``B`` (q, ...) works the same way (``L^{-1} B``).
    """
    q = L.shape[0]
    W = np.empty(B.shape)
    for i in range(q):
        acc = B[i].copy()
        for k in range(i):
            acc -= L[i, k] * W[k]
        W[i] = acc / L[i, i]
    return W


def solve_upper_blocks(L: np.ndarray, B: np.ndarray) -> np.ndarray:
    """Solve ``L_k' W_k = B_k`` for every block: ``L`` (q, q, m) lower, ``B`` (q, r, m)."""
    q = L.shape[0]
    W = np.empty(B.shape)
    for i in range(q - 1, -1, -1):
        acc = B[i].copy()
        for k in range(i + 1, q):
            acc -= L[k, i] * W[k]
        W[i] = acc / L[i, i]
    return W


def inv_lower_blocks(L: np.ndarray) -> np.ndarray:
    """Inverses of a stack of lower triangular blocks, shape (q, q, m)."""
    q, _, m = L.shape
    eye = np.zeros((q, q, m))
    for i in range(q):
        eye[i, i] = 1.0
    return solve_lower_blocks(L, eye)


def congruence_blocks(T: np.ndarray, A: np.ndarray, add_identity: bool = False) -> np.ndarray:
    """``T' A_k T`` (+ I) for every block, with one small dense ``T`` (q x q).

    Only the lower triangle of the result is filled (and read by
    :func:`chol_blocks`). Zero entries of ``T`` are skipped.
    """
    q = T.shape[0]
    AT = np.zeros(A.shape)
    for a in range(q):
        for j in range(q):
            for b in range(q):
                if T[b, j] != 0.0:
                    AT[a, j] += A[a, b] * T[b, j]
    M = np.zeros(A.shape)
    for i in range(q):
        for j in range(i + 1):
            for a in range(q):
                if T[a, i] != 0.0:
                    M[i, j] += T[a, i] * AT[a, j]
            if add_identity and i == j:
                M[i, i] += 1.0
    return M


def trans_mult_blocks(T: np.ndarray, B: np.ndarray) -> np.ndarray:
    """``T' B_k`` for every block: ``T`` (q x q), ``B`` (q, r, m) -> (q, r, m)."""
    q = T.shape[0]
    out = np.zeros(B.shape)
    for i in range(q):
        for a in range(q):
            if T[a, i] != 0.0:
                out[i] += T[a, i] * B[a]
    return out


def factor_first_term(T: np.ndarray, A: np.ndarray, B: np.ndarray):
    """Factor the first term's blocks and solve for the ``[X y]`` rows in one go.

    For every level ``l``: ``L_l L_l' = T' A_l T + I`` and ``W_l = L_l^{-1} T' B_l``.

    Parameters
    ----------
    T : ndarray (q, q), lower triangular
    A : ndarray (q, q, m)
    B : ndarray (q, r, m)

    Returns
    -------
    L : ndarray (q, q, m)
    W : ndarray (q, r, m)
    logdet : float
        ``sum_l log |L_l|^2``.

    Closed forms for q = 1 and q = 2 (the common random intercept and
    intercept-plus-slope terms) use a handful of passes over the groups;
    q = 3, 4 the general routines above; wider blocks LAPACK's batched
    Cholesky factorisation.
    """
    q = T.shape[0]
    if q == 1:
        t = T[0, 0]
        d = np.sqrt(t * t * A[0, 0] + 1.0)
        L = d[None, None, :]
        W = (t / d) * B[0]
        return L, W[None], 2.0 * np.log(d).sum()
    if q == 2:
        # in place, into L and W: with a million levels every temporary is a fresh 8 MB array
        t00, t10, t11 = T[0, 0], T[1, 0], T[1, 1]
        a00, a10, a11 = A[0, 0], A[1, 0], A[1, 1]
        L = np.empty((2, 2, a00.shape[0]))
        l00, l10, l11 = L[0, 0], L[1, 0], L[1, 1]
        L[0, 1] = 0.0
        tmp = np.empty(a00.shape[0])
        # M = T' A T + I, lower triangle: m00 into l00, m10 into l10, m11 into l11
        np.multiply(a00, t00 * t00, out=l00)
        l00 += np.multiply(a10, 2.0 * t00 * t10, out=tmp)
        l00 += np.multiply(a11, t10 * t10, out=tmp)
        l00 += 1.0
        np.sqrt(l00, out=l00)
        np.multiply(a10, t11 * t00, out=l10)
        l10 += np.multiply(a11, t11 * t10, out=tmp)
        l10 /= l00
        np.multiply(a11, t11 * t11, out=l11)
        l11 += 1.0
        l11 -= np.multiply(l10, l10, out=tmp)
        np.sqrt(l11, out=l11)
        W = np.empty(B.shape)
        W0, W1 = W[0], W[1]
        tmpr = np.empty(W0.shape)
        np.multiply(B[0], t00, out=W0)
        W0 += np.multiply(B[1], t10, out=tmpr)
        W0 /= l00
        np.multiply(B[1], t11, out=W1)
        W1 -= np.multiply(W0, l10, out=tmpr)
        W1 /= l11
        np.multiply(l00, l11, out=tmp)
        return L, W, 2.0 * np.log(tmp, out=tmp).sum()
    if q > 4:  # wide blocks (a smooth's k - 2 columns): LAPACK on the stack, level-major
        Am = np.moveaxis(A, 2, 0)
        M = np.matmul(np.matmul(T.T, Am), T)
        M[:, np.arange(q), np.arange(q)] += 1.0
        Lm = np.linalg.cholesky(M)
        Wm = np.linalg.solve(Lm, np.matmul(T.T, np.moveaxis(B, 2, 0)))
        logdet = 2.0 * float(np.log(np.diagonal(Lm, axis1=1, axis2=2)).sum())
        return np.ascontiguousarray(np.moveaxis(Lm, 0, 2)), np.ascontiguousarray(np.moveaxis(Wm, 0, 2)), logdet
    L = chol_blocks(congruence_blocks(T, A, add_identity=True))
    W = solve_lower_blocks(L, trans_mult_blocks(T, B))
    logdet = 2.0 * sum(np.log(L[i, i]).sum() for i in range(q))
    return L, W, logdet
