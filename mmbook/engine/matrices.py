"""The matrices of a fitted model, under the names of Bates et al. (2015) and lme4's ``getME``.

The model is :math:`y = X\\beta + Z b + e` with :math:`b = \\Lambda_\\theta u`,
:math:`u \\sim N(0, \\sigma^2 I)`, :math:`e \\sim N(0, \\sigma^2 I)`, and the penalized
least squares problem is solved through the sparse Cholesky factor
:math:`L L' = \\Lambda' Z' Z \\Lambda + I` and the dense :math:`R_X`.
:class:`ModelMatrices` gives a fit these pieces as attributes (``fit.Z``,
``fit.Lambda``, ``fit.L``, ...); :func:`getME` gives them by lme4's names.
"""

from __future__ import annotations

from functools import cached_property

import numpy as np
import pandas as pd
import scipy.sparse as sp

__all__ = ["ModelMatrices", "getME"]


class ModelMatrices:
    """The model's matrices, for a fit with ``mf`` (model frame), ``pls``, ``opt`` and ``solution``.

    Attributes: ``X``, ``y``, ``Z``, ``Zt``, ``Lambda``, ``Lambdat``,
    ``Lind``, ``L``, ``RX``, ``u``, ``b``, ``flist`` (see each).
    """

    @property
    def X(self) -> np.ndarray:
        """Fixed-effects model matrix, shape (n, p), with columns named by :attr:`fixef`'s index."""
        return self.mf.X

    @property
    def y(self) -> np.ndarray:
        """The response, shape (n,)."""
        return self.mf.y

    @cached_property
    def Z(self) -> sp.csr_matrix:
        """Random-effects model matrix, sparse, shape (n, q): the terms side by side, levels within a term.

        Within a term, the columns of a level are adjacent (level-major), as
        lme4's ``getME(fit, "Z")``; ``Z @ b == fit.Zgamma()``.
        """
        return sp.hstack([t.Z() for t in self.terms], format="csr")

    @property
    def Zt(self) -> sp.csr_matrix:
        """``Z'``, shape (q, n) (lme4's ``getME(fit, "Zt")``)."""
        return self.Z.T.tocsr()

    @cached_property
    def Lind(self) -> np.ndarray:
        """For each stored element of :attr:`Lambda` (CSR order), the position of its ``theta`` (0-based).

        ``Lambda.data == theta[Lind]``; lme4's ``getME(fit, "Lind")`` is
        ``Lind + 1`` (it indexes ``Lambdat``'s column-major storage, the same order).
        """
        return self._lambda_pattern()[2]

    def _lambda_pattern(self):
        """CSR pattern of ``Lambda``: row pointers, column indices, ``theta`` index per element."""
        rows, cols, idx = [], [], []
        col0, th0 = 0, 0
        for t in self.terms:
            r, c, tidx = t.lambda_entries()  # T's structural non-zeros within one level
            lev = np.arange(t.nlevels)[:, None] * t.q + col0
            rows.append((lev + r[None, :]).ravel())
            cols.append((lev + c[None, :]).ravel())
            idx.append(np.tile(tidx + th0, t.nlevels))
            col0 += t.nlevels * t.q
            th0 += t.ntheta
        rows, cols, idx = (np.concatenate(a).astype(np.int64) for a in (rows, cols, idx))
        order = np.lexsort((cols, rows))  # CSR order: by row, then column
        indptr = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=col0))])
        return indptr, cols[order], idx[order], col0

    @cached_property
    def Lambda(self) -> sp.csr_matrix:
        """Relative covariance factor ``Lambda_theta``, sparse lower triangular (q, q).

        ``b = Lambda u`` and ``Var(b) = sigma^2 Lambda Lambda'``; block
        diagonal with ``T_k`` for every level of term ``k``. Its pattern is
        fixed (an element is stored even when its ``theta`` is 0):
        ``Lambda.data == theta[Lind]``.
        """
        indptr, indices, idx, q = self._lambda_pattern()
        return sp.csr_matrix((self.opt.theta[idx], indices, indptr), shape=(q, q))

    @property
    def Lambdat(self) -> sp.csr_matrix:
        """``Lambda'`` (lme4's ``getME(fit, "Lambdat")``)."""
        return self.Lambda.T.tocsr()

    @cached_property
    def L(self) -> sp.csr_matrix:
        """Sparse lower-triangular Cholesky factor of ``Lambda' Z' Z Lambda + I`` (q, q).

        Assembled from the blocked factor: the first term's diagonal blocks,
        then the rows of the other terms. The rows and columns are in
        :attr:`Z`'s order (lme4's ``getME(fit, "L")`` is the factor of the
        same matrix after CHOLMOD's fill-reducing permutation ``P``:
        ``L_lme4 L_lme4' = P (L L') P'``; where ``P`` is the identity the two
        factors are equal).
        """
        F = self.pls.factor(self.opt.theta)
        q1, m1 = self.pls.q1, self.pls.m1
        blocks = np.transpose(F.L11, (2, 0, 1))  # (m1, q1, q1)
        r, c = np.tril_indices(q1)
        lev = np.arange(m1)[:, None] * q1
        rows = (lev + r[None, :]).ravel()
        cols = (lev + c[None, :]).ravel()
        L11 = sp.csr_matrix((blocks[:, r, c].ravel(), (rows, cols)), shape=(m1 * q1, m1 * q1))
        if not F.Qr:
            return L11
        Lr1 = sp.csr_matrix(F.Lr1)
        L22 = sp.csr_matrix(np.tril(F.Ld[:F.Qr, :F.Qr]))
        return sp.bmat([[L11, None], [Lr1, L22]], format="csr")

    @property
    def RX(self) -> np.ndarray:
        """lme4's ``getME(fit, "RX")``: upper triangular (p, p) with ``RX' RX = X'X - X'Z Lambda (L L')^{-1} Lambda' Z'X``.

        ``vcov = sigma^2 (RX' RX)^{-1}``.
        """
        return self.solution.RX.T.copy()

    @property
    def flist(self) -> pd.DataFrame:
        """The grouping factors, one categorical column each, in the terms' order (lme4's ``getME(fit, "flist")``)."""
        cols = {}
        for t in self.terms:
            if t.group not in cols:
                cols[t.group] = pd.Categorical.from_codes(t.refs, categories=list(t.levels))
        return pd.DataFrame(cols, index=self.mf.frame.index)

    @property
    def u(self) -> np.ndarray:
        """Spherical random effects, shape (q,), in the column order of :attr:`Z` (lme4's ``getME(fit, "u")``)."""
        return np.concatenate([uk.ravel() for uk in self.solution.u])

    @property
    def b(self) -> np.ndarray:
        """Random effects on the data scale, ``b = Lambda u``, shape (q,), in :attr:`Z`'s column order."""
        return np.concatenate([g.ravel() for g in self.solution.gamma])


_GETME = {
    "X": "X", "Z": "Z", "Zt": "Zt", "y": "y", "Lambda": "Lambda", "Lambdat": "Lambdat", "L": "L", "RX": "RX",
    "u": "u", "b": "b", "theta": "theta", "beta": "beta", "Lind": "Lind", "flist": "flist", "cnms": "cnms",
    "sigma": "sigma", "n": "nobs", "REML": "REML",
}


def getME(fit, name: str):
    """A piece of a fitted model by lme4's name (lme4's ``getME``).

    ``"X"``, ``"Z"``, ``"Zt"``, ``"y"``, ``"Lambda"``, ``"Lambdat"``, ``"L"``,
    ``"RX"``, ``"u"``, ``"b"``, ``"theta"``, ``"beta"``, ``"Lind"`` (0-based),
    ``"flist"``, ``"cnms"``, ``"sigma"``, ``"n"``, ``"p"``, ``"q"``, ``"lower"``,
    ``"REML"``; each is also an attribute of the fit (:class:`ModelMatrices`,
    :class:`mmbook.engine.fit.LmerFit`).

    Raises
    ------
    KeyError
        An unknown name (the message lists the known ones).
    """
    if name == "p":
        return fit.mf.p
    if name == "q":
        return int(sum(t.nlevels * t.q for t in fit.terms))
    if name == "lower":
        return fit.pls.lower.copy()
    if name not in _GETME:
        raise KeyError(f"getME: unknown name {name!r}; known names: "
                       f"{', '.join(sorted([*_GETME, 'p', 'q', 'lower']))}")
    return getattr(fit, _GETME[name])
