"""Numerical derivatives by Richardson extrapolation, as R's numDeriv computes them.

lmerTest differentiates the deviance and ``vcov(beta)`` numerically with
numDeriv's defaults, and the Satterthwaite degrees of freedom inherit the
steps those defaults choose. To reproduce lmerTest's printed digits the same
steps and the same extrapolation are used here:

* :func:`hessian` is numDeriv's ``hessian.default`` -> ``genD``: central
  differences with initial step ``h0 = |d x| + eps [|x| < zero_tol]``
  (``d = 0.1``, ``eps = 1e-4``), halved ``r = 4`` times, and Richardson's
  extrapolation ``D_k <- (4^m D_{k+1} - D_k) / (4^m - 1)``; mixed second
  derivatives from the diagonal ones, as genD does.
* :func:`jacobian` is ``jacobian.default`` with ``method = "Richardson"``
  (``d = 1e-4``, the same ``eps``, ``r`` and extrapolation).

Source: Gilbert & Varadhan, numDeriv 2016.8-1.1 (R), functions ``genD.default``,
``hessian.default`` and ``jacobian.default``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

__all__ = ["hessian", "jacobian"]

_ZERO_TOL = float(np.sqrt(np.finfo(float).eps / 7e-7))


def _initial_step(x: np.ndarray, d: float, eps: float) -> np.ndarray:
    return np.abs(d * x) + eps * (np.abs(x) < _ZERO_TOL)


def _richardson(a: np.ndarray) -> np.ndarray:
    """Richardson extrapolation over the first axis of ``a`` (r step sizes, each half the last)."""
    r = a.shape[0]
    for m in range(1, r):
        a = (a[1:r + 1 - m] * 4.0 ** m - a[:r - m]) / (4.0 ** m - 1.0)
    return a[0]


def hessian(func: Callable[[np.ndarray], float], x, d: float = 0.1, eps: float = 1e-4, r: int = 4) -> np.ndarray:
    """Hessian of a scalar function by numDeriv's ``genD`` (``hessian.default``'s defaults).

    Parameters
    ----------
    func : callable
        ``func(x) -> float``.
    x : array_like, shape (k,)
    d, eps, r : float, float, int
        numDeriv's ``method.args``: relative step, absolute step near zero,
        number of step halvings.

    Returns
    -------
    ndarray, shape (k, k)
    """
    x = np.asarray(x, dtype=float)
    k = x.size
    f0 = float(func(x))
    h0 = _initial_step(x, d, eps)
    E = np.eye(k)
    hdiag = np.empty(k)
    for i in range(k):
        h = h0.copy()
        approx = np.empty(r)
        for s in range(r):
            f1, f2 = func(x + E[i] * h), func(x - E[i] * h)
            approx[s] = (f1 - 2.0 * f0 + f2) / h[i] ** 2
            h = h / 2.0
        hdiag[i] = _richardson(approx)
    H = np.diag(hdiag)
    for i in range(k):
        for j in range(i):
            h = h0.copy()
            approx = np.empty(r)
            for s in range(r):
                step = E[i] * h + E[j] * h
                f1, f2 = func(x + step), func(x - step)
                approx[s] = (f1 - 2.0 * f0 + f2 - hdiag[i] * h[i] ** 2 - hdiag[j] * h[j] ** 2) / (2.0 * h[i] * h[j])
                h = h / 2.0
            H[i, j] = H[j, i] = _richardson(approx)
    return H


def jacobian(func: Callable[[np.ndarray], np.ndarray], x, d: float = 1e-4, eps: float = 1e-4,
             r: int = 4) -> np.ndarray:
    """Jacobian of a vector (or array) valued function by numDeriv's Richardson method.

    Parameters
    ----------
    func : callable
        ``func(x) -> ndarray`` of any shape ``S``.
    x : array_like, shape (k,)

    Returns
    -------
    ndarray, shape ``S + (k,)``
        ``out[..., i]`` is the derivative with respect to ``x[i]``.
    """
    x = np.asarray(x, dtype=float)
    k = x.size
    f0 = np.asarray(func(x), dtype=float)
    h = _initial_step(x, d, eps)
    a = np.empty((r,) + f0.shape + (k,))
    E = np.eye(k)
    for s in range(r):
        for i in range(k):
            a[(s,) + (Ellipsis, i)] = (np.asarray(func(x + E[i] * h)) - np.asarray(func(x - E[i] * h))) / (2.0 * h[i])
        h = h / 2.0
    return _richardson(a)
