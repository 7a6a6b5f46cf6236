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
    """Solve ``L_k W_k = B_k`` for every block: ``L`` (q, q, m), ``B`` (q, r, m) -> ``W`` (q, r, m)."""
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
