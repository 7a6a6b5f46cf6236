"""The spline bases of mgcv that ``s()`` terms use: their model matrices and wiggliness penalties.

* :class:`CubicRegressionSpline` - ``bs = "cr"`` (mgcv's
  ``smooth.construct.cr.smooth.spec`` and its C routine ``crspl``);
* :class:`ThinPlateSpline` - ``bs = "tp"``, mgcv's default (its C routine
  ``tprs_setup``), in one dimension.

Each takes the covariate's values and ``k`` and offers ``basis(x)`` (the
``n x k`` model matrix at any ``x``) and ``S`` (the ``k x k`` penalty), exactly
as mgcv builds them before its constraint and penalty rescaling
(:mod:`mmbook.engine.smooth` does those).
"""

from __future__ import annotations

import numpy as np
import scipy.linalg as sla

__all__ = ["CubicRegressionSpline", "ThinPlateSpline"]


class CubicRegressionSpline:
    """mgcv's cubic regression spline basis (``bs = "cr"``) for one covariate.

    The spline is parameterised by its values ``beta`` at ``k`` knots; its
    second derivatives at the knots are ``delta = F beta`` (``F`` is ``k x k``
    with zero first and last rows: a natural spline), and its wiggliness is
    ``int f''(x)^2 dx = beta' S beta`` with ``S = D' B^{-1} D`` (Wood 2017,
    section 5.3.1; mgcv's C routine ``crspl``). Beyond the outer knots the
    basis continues linearly, as mgcv's.

    Parameters
    ----------
    x : array_like
        The covariate's values (knots at quantiles of its unique values:
        R's ``quantile(unique(x), seq(0, 1, length = k))``).
    k : int
        Number of knots (basis dimension).

    Raises
    ------
    ValueError
        Fewer than ``k`` unique values of ``x``.
    """

    def __init__(self, x, k: int = 10, name: str = "x"):
        x = np.asarray(x, dtype=float)
        xu = np.unique(x)
        if len(xu) < k:
            raise ValueError(f"{name} has insufficient unique values ({len(xu)}) to support {k} knots: reduce k")
        self.k = int(k)
        self.knots = np.quantile(xu, np.linspace(0.0, 1.0, k))  # R's type 7 quantiles
        self.F, self.S = self._penalty(self.knots)

    @staticmethod
    def _penalty(xk: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``F`` (second derivatives at the knots from the values) and ``S = D' B^{-1} D``."""
        k = len(xk)
        h = np.diff(xk)
        D = np.zeros((k - 2, k))
        i = np.arange(k - 2)
        D[i, i] = 1.0 / h[:-1]
        D[i, i + 2] = 1.0 / h[1:]
        D[i, i + 1] = -D[i, i] - D[i, i + 2]
        # B: symmetric tridiagonal, diagonal (h_i + h_{i+1}) / 3, off-diagonal h_{i+1} / 6
        ab = np.zeros((2, k - 2))
        ab[0] = (h[:-1] + h[1:]) / 3.0
        ab[1, :-1] = h[1:-1] / 6.0
        BinvD = sla.solveh_banded(ab, D, lower=True)
        F = np.zeros((k, k))
        F[1:-1] = BinvD
        S = D.T @ BinvD
        return F, (S + S.T) / 2.0

    def basis(self, x) -> np.ndarray:
        """The basis at ``x``: shape ``(len(x), k)``."""
        x = np.asarray(x, dtype=float)
        xk, F, k = self.knots, self.F, self.k
        n = len(x)
        X = np.zeros((n, k))
        rows = np.arange(n)
        lo, hi = x < xk[0], x > xk[-1]
        mid = ~(lo | hi)
        # inside: xk[j] <= x <= xk[j+1]
        j = np.clip(np.searchsorted(xk, x[mid], side="left") - 1, 0, k - 2)
        xm = x[mid]
        h = xk[j + 1] - xk[j]
        am, ap = xk[j + 1] - xm, xm - xk[j]
        cm = am * (am * am / h - h) / 6.0
        cp = ap * (ap * ap / h - h) / 6.0
        r = rows[mid]
        X[r] = cm[:, None] * F[j] + cp[:, None] * F[j + 1]
        X[r, j] += am / h
        X[r, j + 1] += ap / h
        if lo.any():  # linear extrapolation below the first knot
            h0 = xk[1] - xk[0]
            d = x[lo] - xk[0]
            r = rows[lo]
            X[r] = (-d * h0 / 3.0)[:, None] * F[0] + (-d * h0 / 6.0)[:, None] * F[1]
            X[r, 0] += 1.0 - d / h0
            X[r, 1] += d / h0
        if hi.any():  # and above the last
            h1 = xk[-1] - xk[-2]
            d = x[hi] - xk[-1]
            r = rows[hi]
            X[r] = (d * h1 / 6.0)[:, None] * F[k - 2] + (d * h1 / 3.0)[:, None] * F[k - 1]
            X[r, k - 2] += -d / h1
            X[r, k - 1] += 1.0 + d / h1
        return X


class ThinPlateSpline:
    """mgcv's thin plate regression spline (``bs = "tp"``, the default) of one covariate.

    The thin plate spline of order ``m = 2`` in one dimension puts a function
    ``eta(r) = r^3 / 12`` at each unique value ``x_j`` of the (centred)
    covariate, plus the null space ``{1, x}`` of its penalty. Its wiggliness
    is ``delta' E delta`` with ``E_ij = eta(|x_i - x_j|)`` and the constraint
    ``T' delta = 0``. mgcv truncates it (Wood 2003; its C routine
    ``tprs_setup``): ``E = U D U'`` restricted to the ``k`` eigenvalues of
    largest magnitude (in decreasing order), the constraint ``T' U_k delta_k = 0`` absorbed by a
    Householder factorisation ``T' U_k Q = [0, B]`` (the first ``k - 2``
    columns of ``Q``, ``Z``), so that

    .. math:: X = [U_k D_k Z,\\; T], \\qquad S = \\operatorname{blockdiag}(Z' D_k Z, 0),

    and every column is scaled to a root mean square of 1 over the data.
    New ``x`` get ``eta(|x - x_j|) U_k Z`` and ``T(x)``.

    With more than 2000 unique values mgcv puts the functions at 2000 of
    them drawn at random with R's ``set.seed(1)``; mmbook draws the same
    ones with R's generator (:meth:`mmbook.RRandom.sample`).

    Raises
    ------
    ValueError
        Fewer than ``k`` unique values of ``x``.
    """

    max_knots = 2000

    def __init__(self, x, k: int = 10, name: str = "x"):
        x = np.asarray(x, dtype=float)
        self.k = int(k)
        self.shift = float(x.mean())
        xu = np.unique(x - self.shift)
        if len(xu) < k:
            raise ValueError(f"{name} has fewer unique values ({len(xu)}) than k = {k}: reduce k")
        if len(xu) > self.max_knots:  # mgcv: 2000 of the sorted unique values, set.seed(1); sample(...)
            from ..rcompat.rng import RRandom

            xu = np.sort(xu[RRandom(1).sample(len(xu), self.max_knots) - 1])
        self.xu = xu
        E = np.abs(xu[:, None] - xu[None, :]) ** 3 / 12.0
        T = np.column_stack([np.ones(len(xu)), xu])
        self.M = T.shape[1]
        if len(xu) == k:  # as many unique values as k: mgcv skips the eigen step ("pure knot")
            U, ED = np.eye(k), E
        else:
            d, U = _extreme_eigh(E, k)
            top = np.argsort(-np.abs(d), kind="stable")[:k]   # the k eigenvalues largest in magnitude,
            order = top[np.argsort(-d[top], kind="stable")]      # in decreasing order (mgcv's Lanczos)
            d, U = d[order], U[:, order]
            ED = np.diag(d)
        Z = _householder_qt(T.T @ U)[:, :k - self.M]  # T'U Q = [0, B]: Z spans the constraint's null space
        self._UZ = U @ Z                               # maps eta(|x - x_j|) to the penalized columns
        Xdata = self._raw(x)
        self.w = np.sqrt(np.mean(Xdata ** 2, axis=0))  # mgcv's rescaling: columns of rms 1
        S = np.zeros((k, k))
        S[:k - self.M, :k - self.M] = Z.T @ ED @ Z
        S = S / np.outer(self.w, self.w)
        self.S = (S + S.T) / 2.0

    def _raw(self, x) -> np.ndarray:
        xc = np.asarray(x, dtype=float) - self.shift
        out = np.empty((len(xc), self.k))
        step = max(1, 2_000_000 // max(len(self.xu), 1))  # eta(|x - x_j|) a block of rows at a time
        for i in range(0, len(xc), step):
            G = np.abs(xc[i:i + step, None] - self.xu[None, :]) ** 3 / 12.0
            out[i:i + step, :self.k - self.M] = G @ self._UZ
        out[:, self.k - self.M] = 1.0
        out[:, self.k - self.M + 1] = xc
        return out

    def basis(self, x) -> np.ndarray:
        """The basis at ``x``: shape ``(len(x), k)``."""
        return self._raw(x) / self.w[None, :]


def _extreme_eigh(E: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Eigenpairs of the symmetric ``E`` among which are its ``k`` eigenvalues largest in magnitude.

    All of them for a small matrix; for a large one only the ``k`` largest
    and ``k`` smallest (LAPACK's ``syevr`` on index ranges), as a thin plate
    basis needs.
    """
    n = len(E)
    if n <= 4 * k or n <= 200:
        return np.linalg.eigh(E)
    lo_d, lo_U = sla.eigh(E, subset_by_index=[0, k - 1], driver="evr")
    hi_d, hi_U = sla.eigh(E, subset_by_index=[n - k, n - 1], driver="evr")
    return np.concatenate([lo_d, hi_d]), np.column_stack([lo_U, hi_U])


def _householder_qt(A: np.ndarray) -> np.ndarray:
    """``Q`` of mgcv's ``QT``: Householder reflections from the right with ``A Q = [0, B]``.

    Row ``i`` of ``A`` (``M x k``) is rotated into its element ``k - i - 1``,
    with mgcv's sign convention; ``Q = H_1 H_2 ...`` is returned in full.
    """
    A = np.array(A, dtype=float)
    M, k = A.shape
    Q = np.eye(k)
    for i in range(M):
        p = A[i, :k - i].copy()
        m = np.abs(p).max()
        if m > 0:
            p = p / m
        lsq = np.sqrt(p @ p)
        if p[-1] < 0:
            lsq = -lsq
        p[-1] += lsq
        g = 1.0 / (lsq * p[-1]) if lsq else 0.0
        u = np.zeros(k)
        u[:k - i] = p
        A[i + 1:] -= g * np.outer(A[i + 1:] @ u, u)
        Q -= g * np.outer(Q @ u, u)
        A[i, :k - i] = 0.0
    return Q


