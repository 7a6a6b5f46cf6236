"""The gradient of the Laplace deviance in ``(theta, beta)``, in closed form.

For a canonical link (logit for the binomial, log for the Poisson family) the Laplace deviance

.. math::  f(\\theta, \\beta) = D(\\tilde\\eta) + \\|\\tilde u\\|^2 + \\log|A|, \\qquad
           A = \\Lambda'Z'WZ\\Lambda + I, \\quad \\tilde\\eta = X\\beta + Z\\Lambda\\tilde u + o,

(``D = -2 log p(y | eta)``, ``W`` the working weights at the mode ``u~``) has the derivative

.. math::  \\frac{df}{d\\psi} = \\frac{\\partial D}{\\partial \\psi}\\Big|_{u}
    + \\frac{\\partial \\log|A|}{\\partial \\psi}\\Big|_{W}
    + s'\\frac{d\\tilde\\eta}{d\\psi}, \\qquad s_i = h_i\\,\\frac{dW_i}{d\\eta_i},
    \\quad h_i = [Z\\Lambda A^{-1}\\Lambda'Z']_{ii},

where the first term needs no derivative of ``u~`` (``u~`` minimises ``D + ||u||^2``: the envelope
theorem), and ``d eta~ / d psi = d eta / d psi |_u - Z Lambda A^{-1} (1/2) d^2(D + ||u||^2) / du dpsi``
(the implicit function theorem; for a canonical link the Hessian of ``D + ||u||^2`` in ``u`` is
``2 A``). With ``rho = A^{-1} Lambda'Z' s`` and ``d = dD/d eta = -2 w (y - mu)``:

.. math::  \\nabla_\\beta f = X'\\big(d + s - W \\circ Z\\Lambda\\rho\\big), \\qquad
    \\partial_{\\theta_t} f = (Z\\Lambda_t\\tilde u)'\\big(d + s - W \\circ Z\\Lambda\\rho\\big)
      - \\tfrac12 (Z\\Lambda_t\\rho)'d + 2\\sum_i W_i\\, (\\Lambda_t'z_i)' A^{-1} \\Lambda'z_i,

``Lambda_t = d Lambda / d theta_t``. Everything comes from the blocked factor of
:class:`mmbook.engine.pls.PLS`: the first term's blocks of ``A^{-1}``, and, with more terms, the
Schur complement's inverse and ``A_11^{-1} A_12`` as dense matrices (used only while they are small).
One gradient costs about one PIRLS iteration, against ``len(theta) + len(beta)`` evaluations of the
deviance by finite differences; the tests check it against those differences.
"""

from __future__ import annotations

import numpy as np
import scipy.linalg as sla
import scipy.sparse as sp

from .linalg import inv_lower_blocks

__all__ = ["laplace_gradient", "MAX_DENSE"]

MAX_DENSE = 20_000_000  # largest Q1 x Qr block of A^{-1} formed (else: finite differences)
_EPS = float(np.finfo(float).eps)


def laplace_gradient(crit, state, profiled: bool = False) -> np.ndarray | None:
    """Gradient of the Laplace deviance at a PIRLS mode.

    ``profiled=False`` (stage 2, ``beta`` given): the gradient in ``(theta, beta)``.
    ``profiled=True`` (stage 1, ``beta`` at the joint mode with ``u``): the gradient in ``theta``;
    then ``(u~, beta~)`` move together with ``theta``, and the implicit derivative solves with the
    joint matrix ``[[A, Lambda'Z'WX], [X'WZ Lambda, X'WX]]`` (its Schur complement is ``R_X R_X'``).

    Returns None where the closed form does not apply: a link that is not canonical, quadrature
    (nAGQ > 1), means at the clamps of the inverse link, or a random-effects structure whose dense
    blocks would exceed :data:`MAX_DENSE` entries.
    """
    resp = crit.response
    fam = resp.family
    if crit.nAGQ > 1 or (fam.name, fam.link.name) not in (("binomial", "logit"), ("poisson", "log")):
        return None
    mu, w = state.mu, resp.weights
    if fam.name == "binomial":
        V = mu * (1.0 - mu)
        if np.any(V <= _EPS) or np.any(fam.link.mu_eta(state.eta) <= _EPS):
            return None
        W, Wd = w * V, w * V * (1.0 - 2.0 * mu)  # working weight and its derivative in eta
    else:
        if np.any(mu <= _EPS):
            return None
        W, Wd = w * mu, w * mu
    d = -2.0 * w * (resp.y - mu)  # dD/d eta

    pls = crit.joint if profiled else crit.uonly
    theta = state.theta
    if pls.sqrtw is not state.sqrtw:  # the cross-products at the mode's weights
        pls.reweight(state.sqrtw, crit.working_response(state, beta_given=not profiled))
    blocks = _inverse_blocks(pls, theta)
    if blocks is None:
        return None
    terms = crit.terms
    Ts = [pls.T(k, theta) for k in range(len(terms))]
    offs = np.concatenate([[0], np.cumsum([t.nlevels * t.q for t in terms])]).astype(int)
    # v_i = Lambda' z_i per term (n, q_k), and P_i v_i with P_i the blocks of A^{-1} at row i's levels
    v = [np.asfortranarray(t.z @ T) for t, T in zip(terms, Ts)]
    Pv = _apply_rowwise(blocks, terms, v)
    h = sum(_rowdot(vk, pk) for vk, pk in zip(v, Pv))
    s = h * Wd
    # rho = A^{-1} Lambda'Z' s
    b = np.concatenate([(np.stack([np.bincount(t.refs, t.z[:, a] * s, minlength=t.nlevels)
                                   for a in range(t.q)], axis=1) @ T).ravel() for t, T in zip(terms, Ts)])
    X = crit.X
    if profiled and crit.p:
        # [rho_u; rho_beta] = [[A, B], [B', C]]^{-1} [b; X's], B = Lambda'Z'WX, C - B'A^{-1}B = R_X R_X'
        B = np.concatenate([np.einsum("maj,ab->mbj", np.stack([np.stack(
            [np.bincount(t.refs, t.z[:, a] * W * X[:, j], minlength=t.nlevels) for j in range(crit.p)], axis=1)
            for a in range(t.q)], axis=1), T).reshape(t.nlevels * t.q, crit.p) for t, T in zip(terms, Ts)])
        AinvB = np.column_stack([_solve(blocks, B[:, j]) for j in range(crit.p)])
        RX = blocks["RX"]
        rhs = X.T @ s - AinvB.T @ b
        rho_beta = sla.cho_solve((RX, True), rhs, check_finite=False)
        rho = _solve(blocks, b - B @ rho_beta)
    else:
        rho_beta = None
        rho = _solve(blocks, b)
    rho_terms = [rho[offs[k]:offs[k + 1]].reshape(t.nlevels, t.q) for k, t in enumerate(terms)]
    ZLrho = sum(sum(vk[:, a] * np.take(rk[:, a], t.refs) for a in range(t.q))
                for vk, rk, t in zip(v, rho_terms, terms))
    if rho_beta is not None:
        ZLrho = ZLrho + X @ rho_beta
    e = d + s - W * ZLrho
    grad_beta = X.T @ e
    grad_theta = []
    for k, t in enumerate(terms):
        rows, cols = np.tril_indices(t.q)[0], np.tril_indices(t.q)[1]
        order = sorted(zip(cols, rows))  # theta is T's lower triangle, column by column
        uk = [np.take(state.u[k][:, c], t.refs) for c in range(t.q)]
        rk = [np.take(rho_terms[k][:, c], t.refs) for c in range(t.q)]
        for c, r in order:
            # Lambda_t has a 1 at (r, c) of every level's T: (Z Lambda_t x)_i = z_ir x_{l(i), c}
            zr = t.z[:, r]
            ZLt_u, ZLt_rho = zr * uk[c], zr * rk[c]
            explicit = 2.0 * float(np.dot(W * zr, Pv[k][:, c]))
            grad_theta.append(float(ZLt_u @ e) - 0.5 * float(ZLt_rho @ d) + explicit)
    return np.array(grad_theta) if profiled else np.concatenate([grad_theta, grad_beta])


def _inverse_blocks(pls, theta):
    """The pieces of ``A^{-1}`` that the gradient needs, from the blocked factor at ``theta``."""
    F = pls.factor(theta, full=True)
    Linv = inv_lower_blocks(F.L11)  # (q1, q1, m1)
    A11inv = np.einsum("kim,kjm->mij", Linv, Linv)  # (m1, q1, q1): L11^{-T} L11^{-1}, per level
    out = {"A11inv": A11inv, "Linv": Linv, "Qr": F.Qr, "RX": np.array(F.RX)}
    if not F.Qr:
        return out
    m1, q1 = pls.m1, pls.q1
    if m1 * q1 * F.Qr > MAX_DENSE:
        return None
    R = sla.solve_triangular(F.Ld[:F.Qr, :F.Qr], np.eye(F.Qr), lower=True, check_finite=False)
    Sinv = R.T @ R
    Lr1 = F.Lr1.toarray() if sp.issparse(F.Lr1) else np.asarray(F.Lr1)
    # G = A11^{-1} A12 = L11^{-T} Lr1', level by level: (m1, q1, Qr)
    G = np.einsum("aim,rma->mir", Linv, Lr1.reshape(F.Qr, m1, q1))
    GS = G @ Sinv  # (m1, q1, Qr)
    out.update(Sinv=Sinv, G=G, GS=GS, P11=A11inv + np.einsum("mir,mjr->mij", GS, G))
    return out


def _rowdot(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise dot products of two (n, q) arrays."""
    return sum(a[:, j] * b[:, j] for j in range(a.shape[1]))


def _rest_columns(terms):
    """Row i's columns of Z_r (n, K) for the terms after the first, and which term and entry each is."""
    cols, which, off = [], [], 0
    for k, t in enumerate(terms[1:], start=1):
        for a in range(t.q):
            cols.append(off + t.refs * t.q + a)
            which.append((k, a))
        off += t.nlevels * t.q
    return np.column_stack(cols), which


def _apply_rowwise(blocks, terms, v):
    """``P_i v_i`` for every row: ``A^{-1}`` restricted to the row's levels, times ``Lambda' z_i``."""
    t1, v1 = terms[0], v[0]
    l1 = t1.refs
    if not blocks["Qr"]:  # one gather per entry of the q x q blocks: faster than (n, q, q) arrays
        A = blocks["A11inv"]
        out = np.zeros_like(v1, order="F")
        for i in range(t1.q):
            for j in range(t1.q):
                out[:, i] += np.take(A[:, i, j], l1) * v1[:, j]
        return [out]
    P11, GS, Sinv = blocks["P11"], blocks["GS"], blocks["Sinv"]
    colr, which = _rest_columns(terms)
    vr = np.column_stack([v[k][:, a] for k, a in which])  # (n, K)
    GSi = GS[l1][np.arange(len(l1))[:, None, None], np.arange(t1.q)[None, :, None], colr[:, None, :]]  # (n, q1, K)
    Srr = Sinv[colr[:, :, None], colr[:, None, :]]  # (n, K, K)
    out1 = np.einsum("nij,nj->ni", P11[l1], v1) - np.einsum("nik,nk->ni", GSi, vr)
    outr = -np.einsum("nik,ni->nk", GSi, v1) + np.einsum("nkl,nl->nk", Srr, vr)
    out = [out1] + [np.zeros_like(vk) for vk in v[1:]]
    for j, (k, a) in enumerate(which):
        out[k][:, a] = outr[:, j]
    return out


def _solve(blocks, b):
    """``A^{-1} b`` from the blocks: ``[A11^{-1} b1 + G S^{-1}(G'b1 - b2); S^{-1}(b2 - G'b1)]``."""
    A11inv = blocks["A11inv"]
    m1, q1 = A11inv.shape[0], A11inv.shape[1]
    b1 = b[:m1 * q1].reshape(m1, q1)
    x1 = np.einsum("mij,mj->mi", A11inv, b1)
    if not blocks["Qr"]:
        return x1.ravel()
    G, Sinv = blocks["G"], blocks["Sinv"]
    b2 = b[m1 * q1:]
    x2 = Sinv @ (b2 - np.einsum("mir,mi->r", G, b1))
    x1 = x1 - np.einsum("mir,r->mi", G, x2)
    return np.concatenate([x1.ravel(), x2])
