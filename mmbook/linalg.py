"""Batched small-matrix linear algebra.

A model with one grouping factor has a block-diagonal ``Lambda' Z'Z Lambda + I``
with one small ``q x q`` block per level. Factorising thousands of 2 x 2
blocks one LAPACK call at a time (or with a batched ``np.linalg.cholesky``)
is slow; these functions do the arithmetic for all blocks at once, looping
only over the ``q`` columns.
"""

from __future__ import annotations

import numpy as np

__all__ = ["chol_batched", "solve_lower_batched", "solve_upper_batched", "inv_lower_batched"]


def chol_batched(A: np.ndarray) -> np.ndarray:
    """Lower Cholesky factors of a stack of symmetric positive definite matrices.

    Parameters
    ----------
    A : ndarray, shape (m, q, q)

    Returns
    -------
    L : ndarray, shape (m, q, q)
        Lower triangular with ``L[k] @ L[k].T == A[k]``.

    Raises
    ------
    numpy.linalg.LinAlgError
        If a block is not positive definite.
    """
    m, q, _ = A.shape
    if q == 1:
        d = A[:, 0, 0]
        if np.any(d <= 0):
            raise np.linalg.LinAlgError("matrix is not positive definite")
        return np.sqrt(A)
    L = np.zeros_like(A)
    for j in range(q):
        s = A[:, j, j] - np.einsum("mk,mk->m", L[:, j, :j], L[:, j, :j])
        if np.any(s <= 0):
            raise np.linalg.LinAlgError("matrix is not positive definite")
        d = np.sqrt(s)
        L[:, j, j] = d
        if j + 1 < q:
            L[:, j + 1:, j] = (A[:, j + 1:, j] - np.einsum("mik,mk->mi", L[:, j + 1:, :j], L[:, j, :j])) / d[:, None]
    return L


def solve_lower_batched(L: np.ndarray, B: np.ndarray) -> np.ndarray:
    """Solve ``L[k] @ W[k] = B[k]`` for lower triangular ``L``.

    ``L``: (m, q, q); ``B``: (m, q, r). Returns ``W`` of shape (m, q, r).
    """
    m, q, _ = L.shape
    if q == 1:
        return B / L
    W = np.empty(np.broadcast_shapes(B.shape, (m, q, B.shape[-1])))
    for i in range(q):
        acc = B[:, i, :] - np.einsum("mk,mkr->mr", L[:, i, :i], W[:, :i, :])
        W[:, i, :] = acc / L[:, i, i][:, None]
    return W


def solve_upper_batched(L: np.ndarray, B: np.ndarray) -> np.ndarray:
    """Solve ``L[k].T @ W[k] = B[k]`` for lower triangular ``L``.

    ``L``: (m, q, q); ``B``: (m, q, r). Returns ``W`` of shape (m, q, r).
    """
    m, q, _ = L.shape
    if q == 1:
        return B / L
    W = np.empty(np.broadcast_shapes(B.shape, (m, q, B.shape[-1])))
    for i in range(q - 1, -1, -1):
        acc = B[:, i, :] - np.einsum("mk,mkr->mr", L[:, i + 1:, i], W[:, i + 1:, :])
        W[:, i, :] = acc / L[:, i, i][:, None]
    return W


def inv_lower_batched(L: np.ndarray) -> np.ndarray:
    """Inverses of a stack of lower triangular matrices, shape (m, q, q)."""
    m, q, _ = L.shape
    eye = np.broadcast_to(np.eye(q), (m, q, q))
    return solve_lower_batched(L, eye)
