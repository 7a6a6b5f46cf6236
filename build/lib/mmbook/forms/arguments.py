"""Argument checks shared by the forms of the model: vectors, matrices and covariance blocks."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

__all__ = ["as_vector", "as_matrix", "square_psi"]


def as_vector(v, name: str, n: int | None = None) -> np.ndarray:
    v = np.asarray(v, dtype=float).ravel()
    if n is not None and v.size != n:
        raise ValueError(f"{name} has {v.size} values, expected {n}")
    return v


def as_matrix(X, name: str, n: int) -> np.ndarray:
    X = np.asarray(X.toarray() if sp.issparse(X) else X, dtype=float)
    if X.ndim == 1:
        X = X[:, None]
    if X.ndim != 2 or X.shape[0] != n:
        raise ValueError(f"{name} must have {n} rows (one per observation), got shape {X.shape}")
    return X


def square_psi(psi):
    """``psi`` as a float matrix (sparse stays sparse), checked to be square."""
    if sp.issparse(psi):
        P = sp.csr_matrix(psi, dtype=float)
    else:
        P = np.atleast_2d(np.asarray(psi, dtype=float))
    if P.ndim != 2 or P.shape[0] != P.shape[1]:
        raise ValueError(f"psi must be a square matrix, got shape {P.shape}")
    return P
