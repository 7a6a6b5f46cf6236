"""Kenward & Roger's adjusted covariance and degrees of freedom, as pbkrtest computes them.

The marginal covariance of :math:`y` is linear in the variance parameters
:math:`\\gamma` of pbkrtest's parameterisation - the entries of each term's
covariance matrix :math:`\\psi_k` (its lower triangle, column by column),
then :math:`\\sigma^2`:

.. math::

    \\Sigma = \\sum_r \\gamma_r G_r, \\qquad
    G_r = Z_k (I_{m_k} \\otimes E_{ij}) Z_k' \\ \\text{(entry } (i, j) \\text{ of term } k\\text{)},
    \\qquad G_{\\sigma^2} = I_n,

with :math:`E_{ij}` the symmetric indicator of entry :math:`(i, j)`.
With :math:`\\Phi = (X'\\Sigma^{-1}X)^{-1}`, :math:`P_r = -X'\\Sigma^{-1}G_r\\Sigma^{-1}X`,
:math:`Q_{rs} = X'\\Sigma^{-1}G_r\\Sigma^{-1}G_s\\Sigma^{-1}X` and the expected
information :math:`I_{rs} = \\tfrac12[\\mathrm{tr}(\\Sigma^{-1}G_r\\Sigma^{-1}G_s)
- 2\\,\\mathrm{tr}(\\Phi Q_{rs}) + \\mathrm{tr}(\\Phi P_r \\Phi P_s)]` of the
REML criterion, :math:`W = I^{-1}` estimates :math:`\\mathrm{Var}(\\hat\\gamma)`
and the adjusted covariance of :math:`\\hat\\beta` is (Kenward & Roger 1997, eq. 5)

.. math::

    \\Phi_A = \\Phi + 2\\Phi \\Big[\\sum_{r,s} W_{rs}(Q_{rs} - P_r\\Phi P_s)\\Big]\\Phi ,

(pbkrtest drops the second-derivative term :math:`R_{rs}`, zero for a
covariance linear in :math:`\\gamma`). The F test of :math:`L\\beta = 0`
scales the Wald statistic and picks its denominator df from the moments of
:math:`\\Theta = L'(L\\Phi L')^{-1}L` (Kenward & Roger 1997, sec. 4;
pbkrtest's ``.KR_adjust`` and ``Lb_ddf``).

Everything is dense in ``n``: :math:`\\Sigma^{-1}` is an ``n x n`` matrix, so
the method is limited to moderate ``n`` (:data:`MAX_N`), as in pbkrtest.

Sources: Kenward & Roger (1997); Halekoh & Hojsgaard (2014); pbkrtest 0.5.2's
``vcovAdj.lmerMod``, ``get_SigmaG``, ``vcovAdj_internal``, ``.KR_adjust``,
``Lb_ddf``.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass

import numpy as np
import scipy.linalg as sla
import scipy.sparse as sp

__all__ = ["MAX_N", "KRSetup", "kr_setup", "kr_adjust", "lb_ddf"]

#: Largest number of observations for which :func:`kr_setup` forms the dense ``n x n`` inverse
#: of ``Sigma`` (5,000 rows: 200 MB per ``n x n`` matrix).
MAX_N = 5000


@dataclass(frozen=True)
class KRSetup:
    """pbkrtest's ``vcovAdj`` result.

    Attributes
    ----------
    Phi : ndarray, shape (p, p)
        Unadjusted ``vcov(beta)``.
    PhiA : ndarray, shape (p, p)
        Kenward-Roger adjusted ``vcov(beta)``.
    P : ndarray, shape (r, p, p)
        ``P_r = -X' Sigma^-1 G_r Sigma^-1 X`` for every variance parameter.
    W : ndarray, shape (r, r)
        ``2 IE2^-1``: the estimated covariance of the variance parameters.
    ggamma : ndarray, shape (r,)
        The variance parameters (covariance entries, then ``sigma^2``).
    """

    Phi: np.ndarray
    PhiA: np.ndarray
    P: np.ndarray
    W: np.ndarray
    ggamma: np.ndarray


def _components(fit):
    """Variance parameters in pbkrtest's order and, per parameter, (term index, E) or None for sigma^2."""
    comps, ggamma = [], []
    for k, t in enumerate(fit.terms):
        psi = fit.psi(k)
        if t.structure == "identity":  # a smooth: psi = tau^2 I, one parameter with G = Z Z'
            comps.append((k, np.eye(t.q)))
            ggamma.append(psi[0, 0])
            continue
        cols, rows = np.triu_indices(t.q)  # column-major lower triangle: (row, col) with row >= col
        for i, j in zip(rows, cols):
            E = np.zeros((t.q, t.q))
            E[i, j] = E[j, i] = 1.0
            comps.append((k, E))
            ggamma.append(psi[i, j])
    comps.append(None)
    ggamma.append(fit.sigma ** 2)
    return comps, np.array(ggamma)


def _apply_D(E: np.ndarray, A: np.ndarray) -> np.ndarray:
    """``(I_m kron E) @ A`` for ``A`` with ``m q`` rows, without forming the Kronecker product."""
    q = E.shape[0]
    m = A.shape[0] // q
    return np.einsum("ab,mbc->mac", E, A.reshape(m, q, -1)).reshape(A.shape)


def kr_setup(fit) -> KRSetup:
    """Kenward-Roger's adjusted covariance of ``beta`` (pbkrtest's ``vcovAdj``), cached on the fit.

    Parameters
    ----------
    fit : LmerFit
        A REML fit with at most :data:`MAX_N` observations.

    Returns
    -------
    KRSetup

    Raises
    ------
    ValueError
        ``fit`` is an ML fit (the method is derived for REML; refit with
        ``REML=True``, as lmerTest asks), or it has more than :data:`MAX_N`
        observations (use Satterthwaite's method).
    """
    hit = _SETUPS.get(fit)
    if hit is not None:
        return hit
    if not fit.REML:
        raise ValueError("Kenward-Roger's method is only available for REML model fits: refit with REML=True "
                         "(or use ddf='Satterthwaite')")
    if getattr(fit.mf, "residual", None) is not None:
        raise NotImplementedError("Kenward-Roger's method here assumes Sigma linear in the variance parameters "
                                  "(pbkrtest's), which correlated residuals are not: use ddf='Satterthwaite'")
    n = fit.nobs
    if n > MAX_N:
        raise ValueError(f"Kenward-Roger's method works with the dense n x n marginal covariance; n = {n} "
                         f"exceeds mmbook.inference.kenward_roger.MAX_N = {MAX_N} "
                         f"({8 * n * n / 2**30:.1f} GB per matrix). Use ddf='Satterthwaite'")
    X = fit.X
    Phi = fit.vcov.to_numpy()
    comps, ggamma = _components(fit)
    Zs = [t.Z().tocsc() for t in fit.terms]

    # Sigma = sum_k Z_k (I kron psi_k) Z_k' + sigma^2 I, and its inverse S
    Sigma = np.zeros((n, n))
    for k, Z in enumerate(Zs):
        psi_bd = sp.kron(sp.identity(fit.terms[k].nlevels), sp.csr_matrix(fit.psi(k)))
        Sigma += (Z @ psi_bd @ Z.T).toarray()
    Sigma[np.diag_indices(n)] += fit.sigma ** 2
    cho = sla.cho_factor(Sigma, lower=True, overwrite_a=True, check_finite=False)
    S = sla.cho_solve(cho, np.eye(n), overwrite_b=True, check_finite=False)
    del Sigma, cho

    B = S @ X                                            # Sigma^-1 X, (n, p)
    SZ = [np.asarray((Z.T @ S).T) for Z in Zs]           # Sigma^-1 Z_k, (n, m_k q_k)
    C = [np.asarray(Z.T @ B) for Z in Zs]                # Z_k' Sigma^-1 X
    M = {(k, l): np.asarray(Zs[k].T @ SZ[l]) for k in range(len(Zs)) for l in range(len(Zs))}
    N = [SZ_k.T @ SZ_k for SZ_k in SZ]                   # Z_k' Sigma^-2 Z_k
    SZB = [SZ_k.T @ B for SZ_k in SZ]                    # Z_k' Sigma^-2 X

    r = len(comps)
    P = np.empty((r, fit.mf.p, fit.mf.p))
    DC = []  # D_r C_k (or B for sigma^2)
    for a, c in enumerate(comps):
        if c is None:
            DC.append(B)
            P[a] = -(B.T @ B)
        else:
            k, E = c
            DC.append(_apply_D(E, C[k]))
            P[a] = -(C[k].T @ DC[a])
    Q = np.empty((r, r, fit.mf.p, fit.mf.p))
    K = np.empty((r, r))
    for a, ca in enumerate(comps):
        for b in range(a, r):
            cb = comps[b]
            if ca is None and cb is None:
                Q[a, b] = B.T @ (S @ B)
                K[a, b] = np.sum(S * S)
            elif cb is None:  # a: term k, b: sigma^2
                k, E = ca
                Q[a, b] = DC[a].T @ SZB[k]
                K[a, b] = np.sum(_apply_D(E, N[k]).diagonal())
            elif ca is None:  # cannot happen: sigma^2 is last
                raise AssertionError
            else:
                (k, Ea), (l, Eb) = ca, cb
                Q[a, b] = DC[a].T @ (M[(k, l)] @ DC[b])
                DM_ab = _apply_D(Ea, M[(k, l)])
                DM_ba = _apply_D(Eb, M[(l, k)])
                K[a, b] = np.sum(DM_ab * DM_ba.T)
            Q[b, a] = Q[a, b].T
            K[b, a] = K[a, b]

    IE2 = np.empty((r, r))
    for a in range(r):
        PhiP = Phi @ P[a]
        for b in range(a, r):
            IE2[a, b] = IE2[b, a] = K[a, b] - 2.0 * np.sum(Phi * Q[a, b]) + np.sum(PhiP * (P[b] @ Phi))
    condi = np.min(np.abs(np.linalg.eigvalsh(IE2)))
    W = 2.0 * (np.linalg.inv(IE2) if condi > 1e-10 else np.linalg.pinv(IE2))
    W = (W + W.T) / 2.0
    U = np.zeros_like(Phi)
    for a in range(r):
        for b in range(r):
            U += W[a, b] * (Q[a, b] - P[a] @ Phi @ P[b])
    PhiA = Phi + 2.0 * Phi @ U @ Phi
    setup = KRSetup(Phi=Phi, PhiA=(PhiA + PhiA.T) / 2.0, P=P, W=W, ggamma=ggamma)
    _SETUPS[fit] = setup
    return setup


_SETUPS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def _A1_A2(setup: KRSetup, Theta: np.ndarray):
    """``A1 = sum W_rs tr(Theta Phi P_r Phi) tr(Theta Phi P_s Phi)``, ``A2 = sum W_rs tr(Theta Phi P_r Phi Theta Phi P_s Phi)``."""
    Phi = setup.Phi
    u = np.einsum("ab,rbc,cd->rad", Theta @ Phi, setup.P, Phi)  # u_r = Theta Phi P_r Phi
    tr = np.einsum("raa->r", u)
    A1 = float(tr @ setup.W @ tr)
    A2 = float(np.einsum("rs,rab,sba->", setup.W, u, u))
    return A1, A2


def _ddf(A1: float, A2: float, q: int):
    """pbkrtest's moment-matching: the denominator df and the scale of the F statistic.

    Divisions by zero follow R's (IEEE) arithmetic, as in pbkrtest: in a
    balanced design ``V2`` can be exactly 0, ``rho`` infinite, and the df
    ``4 + (q + 2) / inf = 4`` (the exact ``m - 2`` of a cluster-level
    two-group comparison with 6 clusters, for instance).
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        return _ddf_ieee(np.float64(A1), np.float64(A2), q)


def _ddf_ieee(A1, A2, q: int):
    B = (A1 + 6.0 * A2) / (2.0 * q)
    g = ((q + 1) * A1 - (q + 4) * A2) / ((q + 2) * A2)
    den = 3 * q + 2 * (1 - g)
    c1, c2, c3 = g / den, (q - g) / den, (q + 2 - g) / den
    V0 = 1 + c1 * B
    V1 = 1 - c2 * B
    V2 = 1 - c3 * B
    V0 = 0.0 if abs(V0) < 1e-10 else V0
    x = 1 - A2 / q
    ratio = 1.0 if (abs(x) < 1e-14 and abs(V1) < 1e-14) else x / V1  # pbkrtest's .divZero
    rho = ratio ** 2 * V0 / V2 / q
    df2 = 4 + (q + 2) / (q * rho - 1)
    scaling = 1.0 if abs(df2 - 2) < 0.01 else df2 * (1 - A2 / q) / (df2 - 2)
    return float(df2), float(scaling)


def lb_ddf(setup: KRSetup, L) -> float:
    """Kenward-Roger df of one contrast ``L' beta`` (pbkrtest's ``Lb_ddf``, as lmerTest and emmeans call it)."""
    L = np.atleast_2d(np.asarray(L, dtype=float))
    Theta = L.T @ np.linalg.solve(L @ setup.Phi @ L.T, L)
    A1, A2 = _A1_A2(setup, Theta)
    return _ddf(A1, A2, L.shape[0])[0]


def kr_adjust(setup: KRSetup, L, beta, betaH=0.0):
    """Kenward-Roger F test of ``L beta = L betaH`` (pbkrtest's ``.KR_adjust``).

    Rows of ``L`` that are linear combinations of others are dropped first
    (pbkrtest's ``force_full_rank``).

    Returns
    -------
    dict
        ``ndf`` (rank of ``L``), ``ddf``, ``F_scaling``, ``FstatU`` (Wald
        statistic with ``PhiA``, divided by ``ndf``) and ``Fstat``
        (``F_scaling * FstatU``).
    """
    L = np.atleast_2d(np.asarray(L, dtype=float))
    L = _full_row_rank(L)
    q = L.shape[0]
    Theta = L.T @ np.linalg.solve(L @ setup.Phi @ L.T, L)
    A1, A2 = _A1_A2(setup, Theta)
    df2, scaling = _ddf(A1, A2, q)
    diff = L @ (np.asarray(beta, dtype=float) - betaH)
    wald = float(diff @ np.linalg.solve(L @ setup.PhiA @ L.T, diff))
    FstatU = wald / q
    return {"ndf": q, "ddf": df2, "F_scaling": scaling, "FstatU": FstatU, "Fstat": scaling * FstatU}


def _full_row_rank(L: np.ndarray, tol: float = 1e-7) -> np.ndarray:
    """A basis of the row space of ``L`` (``L`` itself when it has full row rank)."""
    if np.linalg.matrix_rank(L) == L.shape[0]:
        return L
    Q, R, piv = sla.qr(L.T, pivoting=True, mode="economic")
    rank = int(np.sum(np.abs(np.diag(R)) > tol * np.abs(R[0, 0])))
    return L[np.sort(piv[:rank])]
