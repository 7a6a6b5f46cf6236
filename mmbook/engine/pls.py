"""Penalized least squares and the profiled REML/ML criterion of a linear mixed model.

For the model :math:`y = X\\beta + Z\\Lambda_\\theta u + e`, with
:math:`u \\sim N(0, \\sigma^2 I)` and :math:`e \\sim N(0, \\sigma^2 I)`, the
conditional modes of ``u`` and the estimates of ``beta`` for given ``theta``
solve the penalized least squares problem (Bates et al. 2015, eq. 14)

.. math::  r^2(\\theta) = \\min_{u, \\beta} \\|y - X\\beta - Z\\Lambda_\\theta u\\|^2 + \\|u\\|^2 .

All of it comes from one Cholesky factorisation of the symmetric matrix

.. math::

    M(\\theta) = \\begin{pmatrix}
        \\Lambda'Z'Z\\Lambda + I & \\Lambda'Z'X & \\Lambda'Z'y \\\\
        X'Z\\Lambda & X'X & X'y \\\\
        y'Z\\Lambda & y'X & y'y \\end{pmatrix} = L L',

whose diagonal blocks give :math:`L_\\theta` (``Lambda'Z'Z Lambda + I = L_theta L_theta'``),
:math:`R_X` and, in the last cell, :math:`\\sqrt{r^2}` - the penalized
residual sum of squares ``pwrss``. The profiled criteria are then

.. math::

    -2\\ell(\\theta) = \\log|L_\\theta|^2 + n\\left(1 + \\log\\frac{2\\pi r^2}{n}\\right),
    \\qquad
    -2\\ell_R(\\theta) = \\log|L_\\theta|^2 + \\log|R_X|^2
        + (n-p)\\left(1 + \\log\\frac{2\\pi r^2}{n-p}\\right).

The cross-products in ``M`` are formed once (:meth:`PLS.reweight`, the seam
through which prior weights and a GLMM's working weights enter); an
evaluation for a new ``theta`` costs nothing in ``n``. This module is the
*predictor* half of the model (lme4's ``merPredD``); the criterion belongs to
the *response* (:mod:`mmbook.engine.response`). The first (largest) random-effects term
gives a block-diagonal leading block with one ``q x q`` block per level,
factorised with batched arithmetic; the remaining terms and ``[X y]`` form
one dense Schur complement (MixedModels.jl's blocked layout, with all later
blocks merged).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import scipy.linalg as sla
import scipy.sparse as sp

from .crossprod import GramPattern, RestProducts
from .design import ModelFrame, RandomTerm
from .gradient import objective_gradient
from .linalg import factor_first_term, inv_lower_blocks, solve_upper_blocks
from .residual import check_nesting
from .response import GaussianResponse
from .sparse import sparse_schur

__all__ = ["PLS", "PLSSolution", "BlockedFactor", "CrossProducts", "cross_products", "moment_theta"]


@dataclass
class PLSSolution:
    """Everything the penalized least squares problem gives at one ``theta``.

    Attributes
    ----------
    theta : ndarray
    beta : ndarray, shape (p,)
    u : list of ndarray
        Spherical random effects per term, each of shape (nlevels, q).
    gamma : list of ndarray
        Random effects on the data scale (lme4's ``b``), ``gamma = Lambda u``,
        per term, each (nlevels, q).
    pwrss : float
        Penalized residual sum of squares ``r^2``.
    logdet_L : float
        ``log |L_theta|^2``.
    logdet_RX : float
        ``log |R_X|^2``.
    RX : ndarray, shape (p, p)
        Lower triangular with ``RX RX' = X'X - X'Z Lambda (L_theta L_theta')^{-1} Lambda' Z'X``,
        so that ``vcov(beta) = sigma^2 (RX RX')^{-1}``.
    """

    theta: np.ndarray
    beta: np.ndarray
    u: list
    gamma: list
    pwrss: float
    logdet_L: float
    logdet_RX: float
    RX: np.ndarray


@dataclass
class BlockedFactor:
    """The blocked Cholesky factor ``L`` of ``M(theta)`` (see the module docstring).

    Attributes
    ----------
    L11 : ndarray, shape (q1, q1, m1)
        Diagonal blocks for the first term, ``L11_l L11_l' = T1' A11_l T1 + I``
        (element-major, as in :mod:`mmbook.engine.linalg`).
    W1 : ndarray, shape (q1, p + 1, m1)
        Rows of ``[X y]`` in the first term's columns, ``L11_l^{-1} T1' Z1_l' [X y]``.
    Lr1 : ndarray, scipy.sparse matrix or None
        Rows of the remaining terms in the first term's columns (None without
        other terms, or when only the criterion was asked for).
    Ld : ndarray, shape (Qr + p + 1, Qr + p + 1)
        Dense lower factor of the Schur complement: remaining terms, then
        ``X`` (its block is ``R_X``), then ``y`` (its diagonal is ``sqrt(pwrss)``).
    logdet11 : float
        ``log |L11|^2``.
    Qr : int
        Number of random effects after the first term.
    p : int
        Number of fixed effects.
    """

    L11: np.ndarray
    W1: np.ndarray
    Lr1: object
    Ld: np.ndarray
    logdet11: float
    Qr: int
    p: int

    @property
    def RX(self) -> np.ndarray:
        """``R_X``: lower triangular, ``vcov(beta) = sigma^2 (R_X R_X')^{-1}``."""
        return self.Ld[self.Qr:self.Qr + self.p, self.Qr:self.Qr + self.p]

    @property
    def pwrss(self) -> float:
        """Penalized weighted residual sum of squares ``r^2(theta)``."""
        return float(self.Ld[-1, -1] ** 2)

    @property
    def logdet_L(self) -> float:
        """``log |L_theta|^2`` over all random effects."""
        return float(self.logdet11 + 2.0 * np.log(np.diagonal(self.Ld)[:self.Qr]).sum())

    @property
    def logdet_RX(self) -> float:
        """``log |R_X|^2``."""
        return float(2.0 * np.log(np.diagonal(self.Ld)[self.Qr:self.Qr + self.p]).sum())

    def is_valid(self) -> bool:
        d = np.diagonal(self.Ld)
        return bool(np.all(np.isfinite(d)) and d[-1] > 0 and self.logdet11 == self.logdet11)


@dataclass
class CrossProducts:
    """The cross-products of ``[Z X y]`` that the factorisation needs (all sums over rows).

    Attributes
    ----------
    A11 : ndarray, shape (q1, q1, m1)
        ``Z_1'Z_1`` per level of the first term (element-major).
    A1xy : ndarray, shape (q1, p + 1, m1)
        ``Z_1'[X y]`` per level of the first term.
    Axyxy : ndarray, shape (p + 1, p + 1)
        ``[X y]'[X y]``.
    Ar1, Arr : scipy.sparse matrix or None
        ``Z_r'Z_1`` and ``Z_r'Z_r`` for the later terms ``r`` (None without them).
    Arxy : ndarray, shape (Q_r, p + 1), or None
        ``Z_r'[X y]``.

    Sums over disjoint sets of rows add (``cp1 + cp2``): the larger-than-memory path
    (:mod:`mmbook.engine.bigdata`) forms them partition by partition.
    """

    A11: np.ndarray
    A1xy: np.ndarray
    Axyxy: np.ndarray
    Ar1: object = None
    Arr: object = None
    Arxy: np.ndarray | None = None

    def __add__(self, other: "CrossProducts") -> "CrossProducts":
        plus = lambda a, b: None if a is None else a + b  # noqa: E731
        return CrossProducts(self.A11 + other.A11, self.A1xy + other.A1xy, self.Axyxy + other.Axyxy,
                             plus(self.Ar1, other.Ar1), plus(self.Arr, other.Arr), plus(self.Arxy, other.Arxy))


def cross_products(terms, X: np.ndarray, y: np.ndarray, sqrtw=None) -> CrossProducts:
    """The cross-products of ``[Z X y]`` with row ``i`` scaled by ``sqrtw[i]`` (one pass over the rows).

    Parameters
    ----------
    terms : list of RandomTerm
        The first term's levels index the per-level blocks; ``refs`` and ``z`` give the rows.
    X : ndarray, shape (n, p)
    y : ndarray, shape (n,)
    sqrtw : ndarray, shape (n,), optional
    """
    w = sqrtw
    XY = np.column_stack([X, y])
    if w is not None:
        XY = XY * w[:, None]
    Axyxy = XY.T @ XY
    # first term: block diagonal, by bincount (one pass per pair of columns)
    t1 = terms[0]
    m1, q1, r = t1.nlevels, t1.q, XY.shape[1]
    z1 = t1.z if w is None else t1.z * w[:, None]
    A11 = np.empty((q1, q1, m1))  # element-major (q, q, m): see mmbook.engine.linalg
    for a in range(q1):
        for b in range(a + 1):
            A11[a, b] = A11[b, a] = np.bincount(t1.refs, z1[:, a] * z1[:, b], minlength=m1)
    A1xy = np.empty((q1, r, m1))
    for a in range(q1):
        for c in range(r):
            A1xy[a, c] = np.bincount(t1.refs, z1[:, a] * XY[:, c], minlength=m1)
    if len(terms) == 1:
        return CrossProducts(A11, A1xy, Axyxy)
    # remaining terms: sparse cross-products with everything else
    Zr = sp.hstack([t.Z() for t in terms[1:]], format="csc")
    Z1 = t1.Z().tocsc()
    if w is not None:
        W = sp.diags(w)
        Zr, Z1 = (W @ Zr).tocsc(), (W @ Z1).tocsc()
    return CrossProducts(A11, A1xy, Axyxy, (Zr.T @ Z1).tocsr(), (Zr.T @ Zr).tocsr(), np.asarray(Zr.T @ XY))


def joined_columns(X: np.ndarray, y: np.ndarray) -> np.ndarray | None:
    """The column-major ``(n, p + 1)`` array ``[X y]`` whose columns ``X`` and ``y`` are, or None.

    :meth:`mmbook.engine.conditioning.Conditioning.of` stores the conditioned
    ``X~`` and ``y~`` side by side in one such array, so :meth:`PLS.reweight`
    reads them without a copy of ``n (p + 1)`` numbers. The result shares
    memory with ``X`` and ``y``: it must not be written to.
    """
    base = X.base
    if (base is None or y.base is not base or base.ndim != 2 or not base.flags.f_contiguous
            or base.dtype != np.float64 or base.shape != (X.shape[0], X.shape[1] + 1)):
        return None
    start = base.__array_interface__["data"][0]
    if (X.__array_interface__["data"][0] != start or X.strides != base[:, :-1].strides
            or y.__array_interface__["data"][0] != start + X.shape[1] * base.strides[1]
            or y.strides != base[:, -1].strides):
        return None
    return base


class PLS:
    """The penalized least squares problem of a linear mixed model, as a function of ``theta``.

    Parameters
    ----------
    mf : ModelFrame
        ``y``, ``X`` and at least one random-effects term.
    REML : bool
        Criterion: REML (True) or ML deviance (False); it is owned by
        :attr:`response` (a :class:`~mmbook.engine.response.GaussianResponse`).
    sqrtw : array_like, optional
        Square roots of the weights, one per row (default: the square roots of
        the model frame's prior weights ``mf.weights``; all 1 without them).

    Notes
    -----
    With prior weights ``w`` and an offset ``o`` (both on the model frame) the
    problem is the weighted one, ``min ||W^{1/2}(y - o - X beta - Z Lambda u)||^2 + ||u||^2``;
    the criterion counts the observations with positive weight (``mf.n_eff``)
    and subtracts ``sum(log w_i)`` (:class:`~mmbook.engine.response.GaussianResponse`),
    as lme4's ``lmerResp`` does. Rows of weight 0 then drop out entirely:
    the fit equals the fit without them.

    Follows lme4's ``merPredD`` (Bates et al. 2015, section 3) with
    MixedModels.jl's blocked layout: the first term's diagonal blocks are
    factored with batched arithmetic, everything after it is one dense
    Schur complement.
    """

    def __init__(self, mf: ModelFrame, REML: bool = True, sqrtw=None):
        if not mf.terms:
            raise ValueError("a linear mixed model needs at least one random-effects term, like (1 | g)")
        self.terms: list[RandomTerm] = mf.terms
        self.n, self.p = mf.n, mf.p
        self.response = GaussianResponse(n=mf.n_eff, p=self.p, REML=REML, logdet_w=mf.logdet_w)
        self.X, self.y = mf.X, mf.y_offset
        if sqrtw is None and mf.weights is not None:
            sqrtw = np.sqrt(mf.weights)

        # theta layout: term k owns theta[off[k]:off[k+1]]; a residual correlation's parameter follows
        sizes = [t.ntheta for t in self.terms]
        self.theta_offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(int)
        self.ntheta = int(self.theta_offsets[-1])
        self.lower = np.concatenate([t.theta_lower() for t in self.terms])
        self.theta0 = np.concatenate([t.theta_start() for t in self.terms])
        self.residual = getattr(mf, "residual", None)
        self._eta, self.logdet_R = 0.0, 0.0
        if self.residual is not None:
            check_nesting(self.residual, self.terms[0])
            self.lower = np.append(self.lower, -np.inf)  # eta: nlme's unconstrained scale
            self.theta0 = np.append(self.theta0, 0.0)
            self.logdet_R = self.residual.logdet(self._eta)

        t1 = self.terms[0]
        self.m1, self.q1 = t1.nlevels, t1.q
        self.rest = self.terms[1:]
        self.Qr = int(sum(t.nlevels * t.q for t in self.rest))
        if self.rest:
            self._lam_pattern = self._lambda_pattern(self.rest, self.theta_offsets[1])
            self._rest_scalar = all(t.q == 1 or t.structure == "identity" for t in self.rest)  # diagonal Lambda
        self.sqrtw = None
        self._rest_products = self._gram_structure = None
        # the first term's columns in column-major order (every product in reweight reads whole columns):
        # no copy when the conditioned model frame already holds them so (mmbook.engine.conditioning)
        self._z1F = np.asfortranarray(t1.z, dtype=float)
        # rows sorted by the first term's levels (longitudinal data usually are): runs of rows
        refs = t1.refs
        sorted_refs = refs.size and bool(np.all(refs[1:] >= refs[:-1])) and refs[0] == 0 and refs[-1] == self.m1 - 1
        starts = np.flatnonzero(np.r_[True, refs[1:] != refs[:-1]]) if sorted_refs else None
        self._level_starts = starts if starts is not None and len(starts) == self.m1 else None
        self.reweight(sqrtw)

    @property
    def REML(self) -> bool:
        return self.response.REML

    def _whiten_at(self, theta: np.ndarray) -> None:
        """Re-form the cross-products when ``theta`` carries a new residual correlation parameter."""
        if self.residual is None:
            return
        eta = float(theta[self.ntheta])
        if eta != self._eta:
            if not np.isfinite(eta):
                raise ValueError("the residual correlation parameter is not finite")
            self._eta = eta
            self.reweight(self.sqrtw)

    def correlation(self, theta: np.ndarray) -> float:
        """The residual correlation parameter (``phi`` or ``rho``) at ``theta`` (NaN without one)."""
        return np.nan if self.residual is None else self.residual.value(float(theta[self.ntheta]))

    def _level_sums(self, x: np.ndarray) -> np.ndarray:
        """Sums of ``x`` over the rows of each level of the first term: contiguous runs
        (``np.add.reduceat``) when the rows are sorted by level, else ``np.bincount``."""
        if self._level_starts is not None:
            return np.add.reduceat(x, self._level_starts)
        return np.bincount(self.terms[0].refs, x, minlength=self.m1)

    # -------------------------------------------------------- cross-products
    def reweight(self, sqrtw=None, y=None) -> "PLS":
        """Form the cross-products of ``[Z X y]`` with row ``i`` scaled by ``sqrtw[i]``.

        The one place where the data enter the factorisation (lme4's
        ``updateXwts``): prior weights for ``lmer``, the working weights and
        working response of each PIRLS step for a GLMM. Every cached
        cross-product is re-formed here, so nothing stale survives a change
        of weights.

        Parameters
        ----------
        sqrtw : ndarray, shape (n,), optional
            Square roots of the weights (None: unit weights).
        y : ndarray, shape (n,), optional
            A new response for the least squares problem, offset already
            subtracted (default: keep the current one).
        """
        if y is not None:
            self.y = np.asarray(y, dtype=float)
        self.sqrtw = None if sqrtw is None else np.asarray(sqrtw, dtype=float)
        w = self.sqrtw
        corr = self.residual
        # [X y] column-major (every product below reads whole columns); when X and y are the columns of
        # one such array already (the conditioned frame's, mmbook.engine.conditioning) it is read in place
        XY = joined_columns(self.X, self.y)
        if XY is None:
            n, p = self.n, self.p
            XY = np.empty((n, p + 1), order="F")
            XY[:, :p] = self.X
            XY[:, p] = self.y
            if w is not None:
                XY *= w[:, None]
        elif w is not None:
            XY = XY * w[:, None]  # a new (column-major) array: the shared one stays as it is
        if corr is not None:  # correlated residuals: rows whitened within clusters (mmbook.engine.residual)
            XY = np.asfortranarray(corr.whiten_columns(self._eta, XY))
            self.logdet_R = corr.logdet(self._eta)
        self.Axyxy = XY.T @ XY
        self._gram = None
        self._first_products = FirstTermProducts()
        self._scaled_Ar1 = None
        self._sparse, self._sparse_checked = None, False  # decided at the first evaluation

        # first term: block diagonal, one sum per level and pair of columns
        m1, q1 = self.m1, self.q1
        z1 = self._z1F if w is None else self._z1F * w[:, None]
        if corr is not None:  # the residual clusters are nested in the first term's levels (checked)
            z1 = np.asfortranarray(corr.whiten_columns(self._eta, z1))
        A11 = np.empty((q1, q1, m1))  # element-major (q, q, m): see mmbook.engine.linalg
        for a in range(q1):
            for b in range(a + 1):
                A11[a, b] = A11[b, a] = self._level_sums(z1[:, a] * z1[:, b])
        self.A11 = A11
        A1xy = np.empty((q1, self.p + 1, m1))
        for a in range(q1):
            for c in range(self.p + 1):
                A1xy[a, c] = self._level_sums(z1[:, a] * XY[:, c])
        self.A1xy = A1xy

        # remaining terms: cross-products with everything else, at positions found on the first call
        if self.rest:
            if corr is not None:  # whitened rows reach into several levels of the later terms: sparse products
                W = sp.diags(w) if w is not None else None
                Zr = sp.hstack([t.Z() for t in self.rest], format="csc")
                Z1 = self.terms[0].Z().tocsc()
                if W is not None:
                    Zr, Z1 = (W @ Zr).tocsc(), (W @ Z1).tocsc()
                Zr, Z1 = corr.whiten_columns(self._eta, Zr), corr.whiten_columns(self._eta, Z1)
                Ar1 = (Zr.T @ Z1).tocsr()
                self._rest_dense = Ar1.nnz > 0.15 * Ar1.shape[0] * Ar1.shape[1]
                self.Ar1 = Ar1.toarray() if self._rest_dense else Ar1
                self.Arr = (Zr.T @ Zr).toarray()
                self.Arxy = np.asarray(Zr.T @ XY)
                self._gram = None  # the pattern of Ar1 may change with the correlation parameter
                return self
            if self._rest_products is None:
                self._rest_products = RestProducts(self.terms[0], self.rest)
            rp = self._rest_products
            self.Ar1, self.Arr, self.Arxy = rp.products(w, XY)
            self._rest_dense = rp.dense
            self._gram = None
            if self._rest_scalar and q1 == 1 and not self._rest_dense:
                if self._gram_structure is None:
                    self._gram_structure = GramPattern.build(self.Ar1) or False
                if self._gram_structure:
                    gp = self._gram_structure
                    self._gram = (gp.matrix(self.Ar1.data), gp.indices, gp.indptr)
        self._sparse, self._sparse_checked = None, False  # decided at the first evaluation
        return self

    def set_cross_products(self, cp: "CrossProducts") -> "PLS":
        """Install cross-products of ``[Z X y]`` formed elsewhere (:func:`cross_products`, or summed
        over the partitions of a larger-than-memory data set: :mod:`mmbook.engine.bigdata`) and what
        the factorisation derives from them."""
        self.Axyxy, self.A11, self.A1xy = cp.Axyxy, cp.A11, cp.A1xy
        self._gram = None
        self._first_products = FirstTermProducts()
        self._scaled_Ar1 = None
        if self.rest:
            Ar1 = cp.Ar1.tocsr()
            self._rest_dense = Ar1.nnz > 0.15 * Ar1.shape[0] * Ar1.shape[1]
            self.Ar1 = Ar1.toarray() if self._rest_dense else Ar1
            self.Arr = cp.Arr.toarray() if sp.issparse(cp.Arr) else np.asarray(cp.Arr)
            self.Arxy = np.asarray(cp.Arxy)
            if self._rest_scalar and self.q1 == 1 and not self._rest_dense:
                gp = GramPattern.build(Ar1)
                if gp is not None:
                    self._gram = (gp.matrix(Ar1.data), gp.indices, gp.indptr)
        self._sparse, self._sparse_checked = None, False
        return self


    # ------------------------------------------------------------------ start
    def moment_start(self) -> np.ndarray:
        """A starting ``theta`` near the optimum, from moments.

        lme4 starts every term at ``T = I``. For a random-intercept term a
        cheap estimate does better: with ``r`` the OLS residuals, the variance
        of the group means of ``r`` is about ``tau_k^2 + sigma^2 / n_k``, and
        ``var(r)`` about ``sum_k tau_k^2 + sigma^2``; a few sweeps of these
        two relations give ``theta_k = tau_k / sigma``. With several
        intercept terms the level means of each also carry the others'
        effects, in shares read off the pair counts (:meth:`moment_cross`),
        and the relations are solved together (:func:`moment_theta`). Other
        terms keep lme4's start. The optimum found is the same; on crossed
        designs it is reached in about half the evaluations.

        With correlated residuals the correlation parameter starts at the
        best of a few values (the criterion at each, with the start of
        ``theta``): the criterion can have a local minimum at a small and at
        a large correlation.
        """
        theta = self._moment_theta()
        if self.residual is not None:
            crit = [(self.objective(np.append(theta[:self.ntheta], e)), i)
                    for i, e in enumerate(self.residual.start_values)]
            theta[self.ntheta] = self.residual.start_values[min(crit)[1]]
        return theta

    def _moment_theta(self) -> np.ndarray:
        theta = self.theta0.copy()
        icpt = [k for k, t in enumerate(self.terms)
                if t.q == 1 and np.all(t.z[:, 0] == 1.0)]
        if not icpt:
            return theta
        X, y = self.X, self.y
        w = np.ones(self.n) if self.sqrtw is None else self.sqrtw ** 2
        used = w > 0
        if self.p:
            beta = self._ols_beta()
            r = y - X @ beta
        else:
            r = y - np.average(y, weights=w)
        total = np.average(r[used] ** 2, weights=w[used]) - np.average(r[used], weights=w[used]) ** 2
        counts = {k: np.maximum(np.bincount(self.terms[k].refs[used], minlength=self.terms[k].nlevels), 1)
                  for k in icpt}
        means = {k: np.bincount(self.terms[k].refs, w * r, minlength=self.terms[k].nlevels)
                 / np.maximum(np.bincount(self.terms[k].refs, w, minlength=self.terms[k].nlevels), 1e-300)
                 for k in icpt}
        return moment_theta(theta, self.theta_offsets, total, counts, means, self.moment_cross(icpt), self.p)

    def moment_cross(self, icpt) -> dict | None:
        r"""The cross terms of :func:`moment_theta` for the random-intercept terms ``icpt``, from the cross-products.

        For terms :math:`k \ne j` with pair counts :math:`n_{\ell m}` (rows in level
        :math:`\ell` of :math:`k` and :math:`m` of :math:`j`, read off ``A_r1`` and
        ``A_rr``), :math:`c_{kj} = \sum_{\ell m} n_{\ell m}^2 / (n_\ell N)`: the share of
        :math:`\tau_j^2` in the variance of :math:`k`'s level means. None where
        the cross-products are not counts (correlated residuals) or a later
        term has several columns.
        """
        if len(icpt) < 2 or self.residual is not None or any(t.q != 1 for t in self.rest):
            return None
        starts = np.concatenate([[0], np.cumsum([t.nlevels for t in self.rest])])

        def block(k, j):  # pair counts, levels of k by levels of j
            if k == 0:
                return block(j, 0).T
            rows = slice(starts[k - 1], starts[k])
            if j == 0:
                return self.Ar1[rows]
            return self.Arr[rows, starts[j - 1]:starts[j]]

        cross = {}
        for i, j in itertools.combinations(sorted(icpt), 2):
            B = block(j, i)  # the levels of j by those of i (i < j: a row block of Ar1 or Arr)
            sq = B.multiply(B) if sp.issparse(B) else B * B  # one square serves both directions
            for k, axis in ((j, 1), (i, 0)):  # the counts of k's levels are B's sums along the other axis
                n_l = np.asarray(B.sum(axis=axis)).ravel()
                N = float(n_l.sum())
                if not N > 0:
                    return None
                cross[k, j if k == i else i] = float(
                    np.sum(np.asarray(sq.sum(axis=axis)).ravel() / np.maximum(n_l, 1e-300))) / N
        return cross

    def _ols_beta(self) -> np.ndarray:
        """Weighted least squares ``beta`` of ``y`` on ``X``, for the moment start.

        From the normal equations already formed (``Axyxy``: ``X'WX`` and ``X'Wy``) when their
        Cholesky factor is well conditioned (the conditioned model's columns are); otherwise, and
        with correlated residuals (``Axyxy`` is whitened), from a least squares solver.
        """
        p = self.p
        if self.residual is None:
            A = self.Axyxy[:p, :p]
            try:
                L = np.linalg.cholesky(A)
            except np.linalg.LinAlgError:
                L = None
            d = np.diagonal(L) ** 2 if L is not None else None
            if d is not None and np.all(np.isfinite(d)) and d.min() > 1e-10 * np.diagonal(A).max():
                return sla.cho_solve((L, True), self.Axyxy[:p, p], check_finite=False)
        w = np.ones(self.n) if self.sqrtw is None else self.sqrtw ** 2
        sw = np.sqrt(w)
        return np.linalg.lstsq(self.X * sw[:, None], self.y * sw, rcond=None)[0]

    # ------------------------------------------------------------------ Lambda
    def T(self, k: int, theta: np.ndarray) -> np.ndarray:
        """Relative covariance factor of term ``k`` at ``theta``."""
        o = self.theta_offsets
        return self.terms[k].T(theta[o[k]:o[k + 1]])

    @staticmethod
    def _lambda_pattern(terms, theta_start):
        rows, cols, idx = [], [], []
        off_col, off_theta = 0, theta_start
        for t in terms:
            r, c, tidx = t.lambda_entries()
            lev = np.arange(t.nlevels)[:, None] * t.q + off_col
            rows.append((lev + r[None, :]).ravel())
            cols.append((lev + c[None, :]).ravel())
            idx.append(np.broadcast_to(tidx + off_theta, (t.nlevels, len(tidx))).ravel())
            off_col += t.nlevels * t.q
            off_theta += t.ntheta
        return np.concatenate(rows), np.concatenate(cols), np.concatenate(idx), off_col

    def Lambda_rest(self, theta: np.ndarray):
        """``Lambda`` of the terms after the first: sparse, or a vector when all are scalar."""
        rows, cols, idx, Q = self._lam_pattern
        if self._rest_scalar:
            return theta[idx]
        return sp.csr_matrix((theta[idx], (rows, cols)), shape=(Q, Q))

    # -------------------------------------------------------------- factorise
    def factor(self, theta: np.ndarray, full: bool = True) -> BlockedFactor:
        """Blocked Cholesky factor of ``M(theta)``, in three named steps.

        1. :meth:`_factor_first_term`: the first term's diagonal blocks and
           the ``[X y]`` rows in its columns;
        2. :meth:`_schur_complement`: what the first term leaves of the
           remaining terms and ``[X y]``;
        3. a dense Cholesky factor of that Schur complement.

        With ``full=False`` (the criterion alone) ``Lr1`` may be left out
        where forming it would cost a pass over the cross-products.

        Raises
        ------
        numpy.linalg.LinAlgError
            ``M(theta)`` is not positive definite (``theta`` is invalid, or
            ``X`` is rank deficient).
        """
        theta = np.asarray(theta, dtype=float)
        self._whiten_at(theta)
        T1 = self.T(0, theta)
        L11, W1, logdet11 = self._factor_first_term(T1)
        S, Lr1 = self._schur_complement(theta, T1, L11, W1, full)
        Ld = _cholesky_lower(S)
        return BlockedFactor(L11=L11, W1=W1, Lr1=Lr1, Ld=Ld, logdet11=float(logdet11), Qr=self.Qr, p=self.p)

    def _factor_first_term(self, T1):
        """``L11_l L11_l' = T1' A11_l T1 + I`` and ``W1_l = L11_l^{-1} T1' A1xy_l`` for every level ``l``."""
        return factor_first_term(T1, self.A11, self.A1xy)

    def _schur_complement(self, theta, T1, L11, W1, full):
        """The Schur complement of the first term's block, and ``Lr1`` (the rows of the other terms).

        Its rows and columns are the remaining terms' random effects, then
        ``X``, then ``y``; only the lower triangle is meaningful.
        """
        S_xy = self.Axyxy.copy()
        for a in range(self.q1):
            S_xy -= W1[a] @ W1[a].T
        if not self.Qr:
            return S_xy, None
        lam = self.Lambda_rest(theta)
        if self._rest_scalar and self.q1 == 1:
            return self._schur_scalar(T1, L11, W1, S_xy, lam, full)
        return self._schur_general(T1, L11, W1, S_xy, lam)

    def _schur_scalar(self, T1, L11, W1, S_xy, lam, full):
        """Scalar first and later terms: ``L21 = diag(lam) Ar1 diag(k)`` with ``k = T1 / L11``.

        The products ``G = Ar1 diag(k^2) Ar1'`` and ``Ar1 diag(k) W1`` depend on
        the first term's parameter alone; they are kept for the last few values
        of it (:class:`FirstTermProducts`), so a change of the later terms'
        parameters only (half the finite differences, most of a Hessian's)
        costs the dense Cholesky factor, not the product.
        """
        k = T1[0, 0] / L11[0, 0]
        key = T1.tobytes()
        hit = self._first_products.get(key)
        if hit is None:
            if self._rest_dense:
                # one SYRK of B = [Ar1 diag(k); W1] gives both products: B B' holds G in its leading block
                # and (Ar1 diag(k) W1')' below it. B is kept between evaluations (a fresh array of this
                # size would cost its page faults at every new value of the first term's parameter)
                Qr = self.Qr
                if self._scaled_Ar1 is None:
                    self._scaled_Ar1 = np.empty((Qr + self.p + 1, self.m1))
                B = self._scaled_Ar1
                np.multiply(self.Ar1, k[None, :], out=B[:Qr])
                B[Qr:] = W1[0]
                BBt = sla.blas.dsyrk(1.0, B.T, trans=1, lower=1)
                value, nbytes = (BBt[:Qr, :Qr], BBt[Qr:, :Qr].T), BBt.nbytes
            else:
                if self._gram is not None:  # values of the fixed sparsity pattern: one mat-vec
                    M, indices, indptr = self._gram
                    G = sp.csr_matrix((M @ (k * k), indices, indptr), shape=(self.Qr, self.Qr)).toarray()
                else:
                    Ak = sp.csr_matrix((self.Ar1.data * k[self.Ar1.indices], self.Ar1.indices,
                                        self.Ar1.indptr), shape=self.Ar1.shape)
                    G = (Ak @ Ak.T).toarray()
                LW = np.asarray(self.Ar1 @ (k[:, None] * W1[0].T))
                value, nbytes = (G, LW), G.nbytes + LW.nbytes
            hit = self._first_products.put(key, value, nbytes)
        G, LW = hit
        Qr, r = self.Qr, self.p + 1
        S = np.empty((Qr + r, Qr + r))
        S_rr = S[:Qr, :Qr]
        np.subtract(self.Arr, G, out=S_rr)
        if np.all(lam == lam[0]):  # one later term (or equal scales): one scalar, one pass
            S_rr *= lam[0] * lam[0]
        else:
            S_rr *= lam[:, None]
            S_rr *= lam[None, :]
        S_rr[np.diag_indices(Qr)] += 1.0
        S[Qr:, :Qr] = (lam[:, None] * (self.Arxy - LW)).T
        S[:Qr, Qr:] = 0.0  # upper triangle: not read
        S[Qr:, Qr:] = S_xy
        if not full:
            return S, None
        Lr1 = (sp.diags(lam) @ self.Ar1 @ sp.diags(k)).tocsr() if sp.issparse(self.Ar1) \
            else (lam[:, None] * self.Ar1) * k[None, :]
        return S, Lr1

    def _schur_general(self, T1, L11, W1, S_xy, lam):
        """Any first term and any later terms: ``L21 = Lambda_r' Ar1 blockdiag(T1 L11^{-T})``."""
        q1, m1 = self.q1, self.m1
        if self._rest_scalar:
            B = lam[:, None] * self.Ar1 if self._rest_dense else sp.diags(lam) @ self.Ar1
            LamArr = lam[:, None] * self.Arr * lam[None, :]
            LamArxy = lam[:, None] * self.Arxy
        else:
            B = lam.T @ self.Ar1
            LamArr = np.asarray(lam.T @ (lam.T @ self.Arr.T).T)
            LamArxy = np.asarray(lam.T @ self.Arxy)
        # K_l = T1 L11_l^{-T}: the first term's columns of L21 are B times blockdiag(K)
        Linv = inv_lower_blocks(L11)
        K = np.einsum("ia,jam->ijm", T1, Linv)
        if q1 == 1:
            k = K[0, 0]
            Lr1 = B * k[None, :] if not sp.issparse(B) else (B @ sp.diags(k)).tocsr()
        else:
            # K[i, j, l] sits at row l*q1 + i, column l*q1 + j of blockdiag(K)
            base = np.arange(m1)[None, None, :] * q1
            rows = np.broadcast_to(base + np.arange(q1)[:, None, None], K.shape)
            cols = np.broadcast_to(base + np.arange(q1)[None, :, None], K.shape)
            Kbd = sp.csr_matrix((K.ravel(), (rows.ravel(), cols.ravel())), shape=(m1 * q1, m1 * q1))
            Lr1 = (B @ Kbd).tocsr() if sp.issparse(B) else np.asarray(Kbd.T @ B.T).T
        W1flat = W1.transpose(2, 0, 1).reshape(m1 * q1, self.p + 1)
        if sp.issparse(Lr1):
            LLt = (Lr1 @ Lr1.T).toarray()
            LW = np.asarray(Lr1 @ W1flat)
        else:
            # Lr1 Lr1' by SYRK on the transposed (Fortran-ordered) view: half the flops, no copy
            LLt = sla.blas.dsyrk(1.0, Lr1.T, trans=1, lower=1)
            LW = Lr1 @ W1flat
        S_rr = LamArr - LLt
        S_rr[np.diag_indices_from(S_rr)] += 1.0
        S_rxy = LamArxy - LW
        return np.block([[S_rr, S_rxy], [S_rxy.T, S_xy]]), Lr1

    # -------------------------------------------------------------- criterion
    def objective(self, theta: np.ndarray) -> float:
        """Profiled REML criterion or ML deviance at ``theta`` (``inf`` where it is not defined).

        Through the sparse factor of the later terms where it pays
        (:mod:`mmbook.engine.sparse`), else the dense blocked factor.
        """
        try:
            pieces = self._sparse_pieces(theta) if self._gram is not None else None
            if pieces is None:
                F = self.factor(theta, full=False)
                if not F.is_valid():
                    return np.inf
                pieces = F.logdet_L, F.logdet_RX, F.pwrss
        except (np.linalg.LinAlgError, sla.LinAlgError, ValueError, FloatingPointError):
            return np.inf
        if not all(np.isfinite(pieces)):
            return np.inf
        # correlated residuals: -2 log L of the whitened rows plus log|R| (the Jacobian of W)
        return self.response.objective(*pieces) + self.logdet_R

    def objective_gradient(self, theta: np.ndarray):
        """``(criterion, gradient)``, the gradient None where finite differences must do: see :mod:`mmbook.engine.gradient`."""
        return objective_gradient(self, theta)

    def analytic_gradient_pays(self) -> bool:
        """Whether the optimizer should use :meth:`objective_gradient` rather than finite differences.

        One evaluation with the analytic gradient costs about two (one
        random-effects term) to three (several terms: a second product of the
        size of the Schur complement's) evaluations of the criterion alone,
        where forward differences cost one per parameter. So it pays with
        one term, and with several terms from three parameters on; with two
        parameters and crossed terms finite differences are as cheap (and
        the sparse path always uses them). On small models (under 1,000
        random effects) an evaluation costs tens of microseconds, mostly
        Python's overhead per step, and the gradient's extra steps cost more
        than the evaluations they save (sleepstudy: 11 ms against 9 ms).
        """
        if self.m1 * self.q1 + self.Qr < 1000 or not self._plain_terms():
            return False
        return not (self.rest and len(self.theta0) <= 2)

    def gram_pattern(self):
        """``(M, indices, indptr)``: ``A_r1 diag(w) A_r1'`` has lower-triangle CSR values ``M @ w``; or None."""
        return self._gram

    def uses_sparse_factor(self, theta=None) -> bool:
        """Whether evaluations go through the sparse factor of the later terms (decided at a valid ``theta``)."""
        if self._gram is not None and not self._sparse_checked and theta is not None and self._plain_terms():
            self._decide_sparse(np.asarray(theta, dtype=float))
        return self._sparse is not None

    def _plain_terms(self) -> bool:
        """Only lme4's terms (no smooth's ``T = theta I`` with several columns) and independent residuals."""
        return self.residual is None and all(t.structure == "general" for t in self.terms)

    def _decide_sparse(self, theta):
        T1 = self.T(0, theta)
        L11, _, _ = self._factor_first_term(T1)
        lam = self.Lambda_rest(theta)
        k = T1[0, 0] / L11[0, 0]
        if np.all(lam > 0) and np.all(np.isfinite(k)):  # a theta inside the parameter space
            self._sparse_checked = True
            self._sparse = sparse_schur(self.Qr, self.Arr, self._gram, lam, k, self.p + 1)

    def _sparse_pieces(self, theta):
        """``(log|L_theta|^2, log|R_X|^2, pwrss)`` by the sparse path, or None where it does not pay."""
        theta = np.asarray(theta, dtype=float)
        if not self.uses_sparse_factor(theta):
            return None
        T1 = self.T(0, theta)
        L11, W1, logdet11 = self._factor_first_term(T1)
        lam = self.Lambda_rest(theta)
        key = b"sparse" + T1.tobytes()  # values on the sparse pattern, not the dense path's G
        hit = self._first_products.get(key)
        if hit is None:  # the products of the first term's parameter alone (see _schur_scalar)
            k = T1[0, 0] / L11[0, 0]
            g = self._sparse.gram_values(k)
            LW = np.asarray(self.Ar1 @ (k[:, None] * W1[0].T))
            hit = self._first_products.put(key, (g, LW), g.nbytes + LW.nbytes)
        g, LW = hit
        S_zz = self.Axyxy - W1[0] @ W1[0].T
        S_rz = (lam[:, None] * (self.Arxy - LW)).T
        logdet_r, Lz = self._sparse.factor_pieces(lam, None, S_rz, S_zz, gram_values=g)
        d = np.diagonal(Lz)
        p = self.p
        return float(logdet11 + logdet_r), float(2.0 * np.log(d[:p]).sum()), float(d[p] ** 2)

    # --------------------------------------------------------------- solution
    def solve(self, theta: np.ndarray, factor: BlockedFactor | None = None) -> PLSSolution:
        """``beta``, the random effects and the pieces of the criterion at ``theta``.

        ``factor``: the dense blocked factor at this ``theta`` if already computed (``full=True``).
        """
        theta = np.asarray(theta, dtype=float)
        F = self.factor(theta) if factor is None else factor
        L11, W1, Lr1, Ld = F.L11, F.W1, F.Lr1, F.Ld
        p, Qr = self.p, self.Qr
        RX = F.RX
        lxy = Ld[Qr + p, Qr:Qr + p]
        beta = sla.solve_triangular(RX, lxy, trans="T", lower=True, check_finite=False) if p else np.zeros(0)
        # right-hand side for u: y-row minus X-rows times beta, in the Z columns
        r1 = W1[:, p, :] - np.einsum("c,acm->am", beta, W1[:, :p, :])  # (q1, m1)
        if Qr:
            r2 = Ld[Qr + p, :Qr] - beta @ Ld[Qr:Qr + p, :Qr]
            u2 = sla.solve_triangular(Ld[:Qr, :Qr], r2, trans="T", lower=True, check_finite=False)
            r1 = r1 - np.asarray(Lr1.T @ u2).reshape(self.m1, self.q1).T
        u1 = solve_upper_blocks(L11, r1[:, None, :])[:, 0, :].T  # (m1, q1)
        u = [u1]
        if Qr:
            off = 0
            for t in self.rest:
                u.append(u2[off:off + t.nlevels * t.q].reshape(t.nlevels, t.q))
                off += t.nlevels * t.q
        gamma = [uk @ self.T(k, theta).T for k, uk in enumerate(u)]
        return PLSSolution(theta=theta.copy(), beta=beta, u=u, gamma=gamma, pwrss=F.pwrss,
                           logdet_L=F.logdet_L, logdet_RX=F.logdet_RX, RX=RX.copy())

    def condvar(self, theta: np.ndarray) -> list[np.ndarray]:
        """Conditional covariances of the random effects divided by ``sigma^2``.

        For term ``k``, level ``l``: the ``q x q`` block of
        ``Lambda (L_theta L_theta')^{-1} Lambda'`` (lme4's ``condVar`` before
        scaling by ``sigma^2``). Returns one (nlevels, q, q) array per term.
        """
        theta = np.asarray(theta, dtype=float)
        F = self.factor(theta)
        L11, Lr1, Ld = F.L11, F.Lr1, F.Ld
        T1 = self.T(0, theta)
        q1, m1 = self.q1, self.m1
        Linv = inv_lower_blocks(L11).transpose(2, 0, 1)  # (m1, q1, q1)
        V1 = np.matmul(np.swapaxes(Linv, 1, 2), Linv)  # (L11 L11')^{-1} per level
        out = []
        if self.Qr:
            L22inv = sla.solve_triangular(Ld[:self.Qr, :self.Qr], np.eye(self.Qr), lower=True)
            Lr1d = Lr1.toarray() if sp.issparse(Lr1) else Lr1
            # X21 = -L22^{-1} L21 L11^{-1}, level by level
            L21L11inv = np.einsum("rla,lab->rlb", Lr1d.reshape(self.Qr, m1, q1), Linv)
            X21 = -(L22inv @ L21L11inv.reshape(self.Qr, -1)).reshape(self.Qr, m1, q1)
            V1 = V1 + np.einsum("rma,rmb->mab", X21, X21)
            V22 = L22inv.T @ L22inv
        out.append(np.matmul(np.matmul(T1, V1), T1.T))
        off = 0
        for k, t in enumerate(self.rest, start=1):
            Tk = self.T(k, theta)
            idx = off + np.arange(t.nlevels)[:, None] * t.q + np.arange(t.q)[None, :]
            Vk = V22[idx[:, :, None], idx[:, None, :]]
            out.append(np.matmul(np.matmul(Tk, Vk), Tk.T))
            off += t.nlevels * t.q
        return out


class FirstTermProducts:
    """The last few products that depend on the first term's parameters alone, by those parameters.

    The Schur complement of the later terms needs ``A_r1 D_k^2 A_r1'`` (a
    product of the size of the Schur complement times the first term's
    levels: most of an evaluation's cost on crossed designs) and
    ``A_r1 D_k W_1``; both change only with the first term's ``theta``.
    Finite differences and a finite-difference Hessian evaluate the criterion
    at many points that share it (a Hessian and Richardson's extrapolation
    visit five values of it), so the last ``max_entries`` results are kept,
    within ``max_bytes`` (8 and 64 MiB: sixteen products of a 500-level
    Schur complement, one of 2,800 levels). A fresh instance is made whenever the
    cross-products change (:meth:`PLS.reweight`), so nothing stale is reused.
    """

    def __init__(self, max_entries: int = 8, max_bytes: int = 64 * 2 ** 20):
        self.max_entries, self.max_bytes = max_entries, max_bytes
        self._items: list = []  # (key, value, nbytes), most recent last

    def get(self, key: bytes):
        for i, (k, v, _) in enumerate(self._items):
            if k == key:
                self._items.append(self._items.pop(i))
                return v
        return None

    def put(self, key: bytes, value, nbytes: int):
        """Keep ``value`` (if it fits the budget at all) and return it."""
        self._items.append((key, value, int(nbytes)))
        while len(self._items) > self.max_entries or (
                len(self._items) > 1 and sum(b for _, _, b in self._items) > self.max_bytes):
            self._items.pop(0)
        if self._items[-1][2] > self.max_bytes:  # too large to keep even alone
            self._items.pop()
        return value


def _cholesky_lower(S: np.ndarray) -> np.ndarray:
    """Lower Cholesky factor of the symmetric ``S`` (lower triangle read), in place when large."""
    if len(S) <= 64:  # numpy's call overhead is smaller on the tiny matrices of one-factor models
        return np.linalg.cholesky(S)  # reads the lower triangle only
    # LAPACK on the transposed (Fortran-ordered) view: no copy of S
    U, info = sla.lapack.dpotrf(S.T, lower=0, overwrite_a=1, clean=1)
    if info != 0:
        raise np.linalg.LinAlgError("matrix is not positive definite")
    return U.T


def moment_theta(theta0: np.ndarray, theta_offsets, total: float, counts: dict, means: dict,
                 cross: dict | None = None, p: int = 1) -> np.ndarray:
    r"""``theta0`` with the entry of each random-intercept term set from moments (:meth:`PLS.moment_start`).

    With :math:`r` the OLS residuals, the level means of :math:`r` for term
    :math:`k` have variance about :math:`\tau_k^2 + \sigma^2 / n_{k\ell}` and
    :math:`r` itself about :math:`\sum_k \tau_k^2 + \sigma^2`. Five sweeps of

    .. math:: \tau_k^2 = \max\Big(\overline{m_k^2} - \sigma^2\, \overline{1/n_k},\;
              0.01\, v / K\Big), \qquad
              \sigma^2 = \max\Big(v - \sum_k \tau_k^2,\; 0.05\, v\Big)

    (:math:`\overline{m_k^2}` the mean of the squared level means, weighted by
    the level counts; :math:`v` the variance of :math:`r`; :math:`K` terms)
    give :math:`\theta_k = \tau_k / \sigma`. With crossed terms the level means of
    one term also carry the others' effects: given ``cross`` (:math:`c_{kj}`,
    :meth:`PLS.moment_cross`), the expectations of the centred residuals'
    moments

    .. math:: \overline{m_k^2} = d_k \tau_k^2 + \sum_{j \ne k} (c_{kj} - 1 + d_j) \tau_j^2
              + \sigma^2 (L_k - 1) / N, \qquad
              v = \sum_k d_k \tau_k^2 + \sigma^2 (N - p) / N,

    with :math:`d_k = 1 - \sum_\ell n_{k\ell}^2 / N^2` (:math:`L_k` levels,
    :math:`N` rows, :math:`p` fixed effects), are solved as a linear system
    instead, with the same floors. On 60 random crossed designs the start's
    largest relative distance from the REML optimum had median 4 % against
    8 % from the sweeps. The callers feed what they have:
    :class:`PLS` the rows, :class:`mmbook.engine.bigdata.SummedPLS` the summed
    cross-products.

    Parameters
    ----------
    theta0 : ndarray, shape (ntheta,)
        lme4's start; a copy is returned with the intercept terms' entries set.
    theta_offsets : sequence of int
        Position of each term's first parameter in ``theta``.
    total : float
        :math:`v`, the variance of the residuals (a copy of ``theta0`` is
        returned unchanged unless it is positive and finite).
    counts : dict of int to ndarray
        Per random-intercept term (by its index): observations per level,
        shape (nlevels,), each at least 1.
    means : dict of int to ndarray
        Per random-intercept term: each level's mean residual, shape (nlevels,).
    cross : dict of (int, int) to float, optional
        :math:`c_{kj}` for every ordered pair of the intercept terms (None:
        the sweeps).
    p : int
        Number of fixed effects (with ``cross``).

    Returns
    -------
    ndarray, shape (ntheta,)
    """
    theta = np.array(theta0, dtype=float)
    if not total > 0 or not np.isfinite(total):
        return theta
    tau2 = {k: 0.0 for k in counts}
    sigma2 = total
    keys = list(counts)
    if cross is not None and len(keys) > 1 and all((k, j) in cross for k in keys for j in keys if j != k):
        # unknowns tau_k^2 and sigma^2; one equation per term's level means, one for v
        K = len(keys)
        N = float(np.sum(counts[keys[0]]))
        d = np.array([1.0 - np.sum(counts[k] ** 2) / N ** 2 for k in keys])
        A = np.zeros((K + 1, K + 1))
        rhs = np.empty(K + 1)
        for a, k in enumerate(keys):
            for c, j in enumerate(keys):
                A[a, c] = d[a] if j == k else cross[k, j] - (1.0 - d[c])
            A[a, K] = (len(counts[k]) - 1) / N
            rhs[a] = np.average(means[k] ** 2, weights=counts[k])
        A[K, :K], A[K, K], rhs[K] = d, (N - p) / N, total
        try:
            sol = np.linalg.solve(A, rhs)
        except np.linalg.LinAlgError:
            sol = None
        if sol is not None and np.all(np.isfinite(sol)):
            floor = 0.01 * total / K
            tau2 = {k: max(float(t), floor) for k, t in zip(keys, sol[:K])}
            sigma2 = max(float(sol[K]), 0.05 * total)
            for k in keys:
                theta[theta_offsets[k]] = np.sqrt(tau2[k] / sigma2)
            return theta
    for _ in range(5):
        for k in counts:
            between = np.average(means[k] ** 2, weights=counts[k])
            tau2[k] = max(between - sigma2 * np.mean(1.0 / counts[k]), 0.01 * total / len(counts))
        sigma2 = max(total - sum(tau2.values()), 0.05 * total)
    for k in counts:
        theta[theta_offsets[k]] = np.sqrt(tau2[k] / sigma2)
    return theta
