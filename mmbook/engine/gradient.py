"""The analytic gradient of the profiled REML criterion or ML deviance with respect to ``theta``.

With ``Lambda = sum_i theta_i E_i`` (each ``theta_i`` sits at fixed places of
the blocks ``T_k``), the profiled criteria are (Bates et al. 2015, eqs. 34
and 41)

.. math::

    f(\\theta) = \\log\\det\\Omega + \\nu \\log r^2(\\theta) + c, \\qquad
    \\Omega = \\begin{pmatrix}\\Lambda'Z'Z\\Lambda + I & \\Lambda'Z'X \\\\
                             X'Z\\Lambda & X'X\\end{pmatrix}

for REML (``nu = n - p``; ``log det Omega = log|L_theta|^2 + log|R_X|^2``) and
the same with ``Omega`` replaced by ``Lambda'Z'Z Lambda + I`` and ``nu = n``
for ML. Two identities make the derivative cheap.

*Penalised residual sum of squares.* ``r^2`` is a minimum over ``u`` and
``beta``, so (envelope theorem) its derivative holds them fixed:
``d r^2 / d theta_i = -2 rho' E_i u`` with ``rho = Z'(y - X beta - Z Lambda u)``;
the normal equations give ``Lambda' rho = u``, so term by term
``rho_l = T_k^{-T} u_l``.

*Log-determinant.* With ``V = Omega^{-1}`` and ``H = V_uu Lambda'Z'Z + V_ux X'Z``,
``d log det Omega / d theta_i = 2 tr(E_i H)``, and ``V Omega = I`` gives
``H Lambda = I - V_uu``.

Both only need, per term ``k``, the sums over its levels ``l`` of small
``q_k x q_k`` matrices:

.. math::

    \\frac{\\partial f}{\\partial\\theta_i} = \\Big\\langle \\frac{\\partial T_k}{\\partial \\theta_i},
        \\; T_k^{-T}\\Big(2 Q_k - \\frac{2\\nu}{r^2} U_k\\Big) \\Big\\rangle,
    \\qquad Q_k = \\sum_l (I - V_{kl,kl}), \\quad U_k = \\sum_l u_{kl} u_{kl}'.

The diagonal blocks of ``V`` come from the blocked factor of
:class:`mmbook.engine.pls.PLS`: for the first term
``V_{1l,1l} = K_l'K_l + J_l' V_22 J_l`` (``K_l = L_11,l^{-1}``, ``J_l`` the
level's columns of ``L_21 K``), for the later terms the diagonal blocks of
``V_22 = L_22^{-T} L_22^{-1}``. One evaluation with its gradient costs about
two of the criterion alone, where finite differences cost one per
parameter. The formula divides by ``T_k``; at ``theta_k = 0`` of a scalar
term the derivative is 0 (the criterion is even in ``theta_k``), and where a
larger ``T_k`` is singular the caller falls back to finite differences
(:func:`objective_gradient` returns no gradient).

The derivation is self-contained (it uses only the definitions of Bates et
al. 2015, section 3); tests/test_gradient.py checks it against
Richardson-extrapolated finite differences on one-term, crossed, nested,
vector-valued, weighted, REML and ML models.
"""

from __future__ import annotations

import numpy as np
import scipy.linalg as sla
import scipy.sparse as sp

from .linalg import inv_lower_blocks, solve_lower_blocks

__all__ = ["objective_gradient"]

# Largest dense n2 x (levels x q1) block formed for the first term's part of V.
_MAX_DENSE_J = 40_000_000


def objective_gradient(pls, theta):
    """The criterion and its gradient at ``theta`` (the gradient None where the analytic form does not apply).

    Parameters
    ----------
    pls : mmbook.engine.pls.PLS
    theta : ndarray, shape (ntheta,)

    Returns
    -------
    (float, ndarray or None)
        ``f(theta)`` (``inf`` where it is undefined, with a zero gradient)
        and ``df/dtheta``; the gradient is None (use finite differences)
        where the sparse factor is in use (its evaluations are cheap enough
        for them), a ``T_k`` of a vector-valued term is singular, or the
        first term's dense block would be too large. This is the protocol of
        ``fgrad`` in :func:`mmbook.engine.optimize.minimize_theta`.
    """
    theta = np.asarray(theta, dtype=float)
    if pls.uses_sparse_factor(theta):
        return pls.objective(theta), None
    try:
        F = pls.factor(theta)
        if not F.is_valid():
            return np.inf, np.zeros_like(theta)
        sol = pls.solve(theta, factor=F)
    except (np.linalg.LinAlgError, sla.LinAlgError, ValueError, FloatingPointError):
        return np.inf, np.zeros_like(theta)
    f = pls.response.objective(F.logdet_L, F.logdet_RX, F.pwrss)
    if not np.isfinite(f):
        return np.inf, np.zeros_like(theta)
    sums = _level_sums_of_V(pls, theta, F)
    if sums is None:
        return float(f), None
    nu_r2 = pls.response.dof / F.pwrss
    grad = np.empty_like(theta)
    for k, t in enumerate(pls.terms):
        o0, o1 = pls.theta_offsets[k], pls.theta_offsets[k + 1]
        T = pls.T(k, theta)
        u = sol.u[k]  # (nlevels, q)
        Q = t.nlevels * np.eye(t.q) - sums[k]
        U = u.T @ u
        B = 2.0 * Q - 2.0 * nu_r2 * U
        diag = np.diagonal(T)
        if np.all(diag != 0.0):
            G = sla.solve_triangular(T, B, trans="T", lower=True)
        elif t.q == 1:
            G = np.zeros((1, 1))  # the criterion is even in a scalar theta_k: zero slope at 0
        else:
            return float(f), None
        cols, rows = np.triu_indices(t.q)  # column-major lower triangle, theta's order
        grad[o0:o1] = G[rows, cols]
    return float(f), grad


def _gram_of_columns(C: np.ndarray) -> np.ndarray:
    """``G[a, b] = sum over all other axes of C[..., a, :] * C[..., b, :]`` for ``C`` of shape (..., q, m)."""
    q = C.shape[-2]
    G = np.empty((q, q))
    for a in range(q):
        for b in range(a + 1):
            G[a, b] = G[b, a] = np.vdot(C[..., a, :], C[..., b, :])
    return G


def _forward(L: np.ndarray, B: np.ndarray) -> np.ndarray:
    """``L^{-1} B`` for lower triangular ``L``: row by row when ``L`` is small and ``B`` wide
    (LAPACK's TRSM copies a wide ``B`` to column-major order first), else LAPACK."""
    if L.shape[0] > 16:
        return sla.solve_triangular(L, B, lower=True, check_finite=False)
    return solve_lower_blocks(L, B)


def _level_sums_of_V(pls, theta, F):
    """``sum_l V_{kl,kl}`` for every term (a list of q_k x q_k arrays), or None (too large)."""
    p, Qr, q1, m1 = pls.p, pls.Qr, pls.q1, pls.m1
    nx = p if pls.REML else 0
    n2 = Qr + nx
    K = inv_lower_blocks(F.L11)  # (q1, q1, m1): L11_l^{-1}
    S1 = _gram_of_columns(K)  # sum_l K_l' K_l
    if n2 == 0:
        return [S1]
    L22 = F.Ld[:n2, :n2]
    if pls.gram_pattern() is not None and sp.issparse(F.Lr1):
        # V_22 on the gram pattern: its lower triangle from the factor (LAPACK potri)
        V, info = sla.lapack.dpotri(L22, lower=1)
        if info != 0:
            return None
        sums = [S1 + _first_term_gram(pls, theta, F, V, nx)]
        off = 0
        for t in pls.rest:
            w = t.nlevels * t.q
            sums.append(np.array([[np.diagonal(V)[off:off + w].sum()]]))  # the gram path: scalar terms
            off += w
        return sums
    if n2 * m1 * q1 > _MAX_DENSE_J:
        return None
    # J = L21 K with columns grouped by the position b within a level: shape (n2, q1, m1)
    J = np.empty((n2, q1, m1))
    if Qr:
        Lr1 = F.Lr1
        Lr1d = Lr1.toarray() if sp.issparse(Lr1) else np.asarray(Lr1)
        Lr1d = Lr1d.reshape(Qr, m1, q1)  # columns are level-major: (level, position)
        for b in range(q1):
            acc = J[:Qr, b, :]
            acc[...] = Lr1d[:, :, b] * K[b, b][None, :]
            for a in range(b + 1, q1):
                acc += Lr1d[:, :, a] * K[a, b][None, :]
    if nx:
        for b in range(q1):  # rows of X: Lx1_l K_l, with Lx1_l = W1[:, :p, l]'
            acc = J[Qr:, b, :]
            acc[...] = F.W1[b, :p, :] * K[b, b][None, :]
            for a in range(b + 1, q1):
                acc += F.W1[a, :p, :] * K[a, b][None, :]
    if q1 == 1 and Qr:
        # sum_l J_l' V22 J_l = <V22, J J'>: a SYRK and LAPACK's potri (cheaper than a TRSM with m1 columns)
        V, info = sla.lapack.dpotri(L22, lower=1)
        if info != 0:
            return None
        G = sla.blas.dsyrk(1.0, J.reshape(n2, m1), lower=1)
        both = np.tril(V) * np.tril(G)
        S1 = S1 + 2.0 * both.sum() - np.trace(both)
        sums = [S1]
        off = 0
        diagV = np.diagonal(V)
        for t in pls.rest:  # scalar first term: later terms may still be vector-valued
            w = t.nlevels * t.q
            idx = off + np.arange(t.nlevels)[:, None] * t.q + np.arange(t.q)[None, :]
            B = np.tril(V)[idx[:, :, None], idx[:, None, :]].sum(axis=0) if t.q > 1 else \
                np.array([[diagV[off:off + w].sum()]])
            sums.append(B + np.tril(B, -1).T if t.q > 1 else B)
            off += w
        return sums
    Y = _forward(L22, J.reshape(n2, q1 * m1))
    sums = [S1 + _gram_of_columns(Y.reshape(n2, q1, m1))]
    if Qr:
        # the later terms' blocks of V_22 = L22^{-T} L22^{-1}: inner products of the inverse's columns
        Linv, info = sla.lapack.dtrtri(L22, lower=1)
        if info != 0:
            return None
        off = 0
        for t in pls.rest:
            w = t.nlevels * t.q
            C = Linv[:, off:off + w].reshape(n2, t.nlevels, t.q).transpose(0, 2, 1)
            sums.append(_gram_of_columns(C))
            off += w
    return sums


def _first_term_gram(pls, theta, F, V, nx):
    """``sum_l J_l' V_22 J_l`` for a scalar first term and scalar later terms, on the gram pattern.

    ``J_r = Lambda_r A_r1 diag(k / L_11)`` is sparse: its Gram matrix is a
    linear map of the weights (:meth:`PLS.gram_pattern`), and only the
    entries of ``V_22`` on that pattern are read.
    """
    p, Qr = pls.p, pls.Qr
    M, indices, indptr = pls.gram_pattern()
    L11 = F.L11[0, 0]
    k = pls.T(0, theta)[0, 0] / L11
    kl = k / L11
    lam = pls.Lambda_rest(theta)
    g_rows = np.repeat(np.arange(Qr), np.diff(indptr))
    g_cols = indices
    vals = M @ (kl * kl)
    weight = np.where(g_rows == g_cols, 1.0, 2.0) * lam[g_rows] * lam[g_cols]
    total = float(np.dot(weight * V[g_rows, g_cols], vals))
    if nx:
        Jx = F.W1[0, :p, :] / L11[None, :]  # (p, m1)
        JrJx = lam[:, None] * np.asarray(pls.Ar1 @ (kl[:, None] * Jx.T))  # (Qr, p)
        Vxx = np.tril(V[Qr:, Qr:])
        Vxx = Vxx + np.tril(Vxx, -1).T
        total += 2.0 * float(np.sum(V[Qr:, :Qr].T * JrJx)) + float(np.sum(Vxx * (Jx @ Jx.T)))
    return np.array([[total]])
