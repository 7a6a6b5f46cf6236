"""The hypotheses of an analysis-of-variance table: lmerTest's type I, II and III contrasts.

Each fixed-effect term of the formula gets a contrast matrix ``L`` (rows:
linear functions of ``beta``) whose F test is the term's row of the table:

* **type I** (sequential): rows of :math:`U` from the Doolittle (LDU)
  decomposition :math:`X'X = L D U` at the term's columns - each term
  adjusted for the terms before it (lmerTest's ``get_contrasts_type1``);
* **type II**: a term that no other term contains is tested by its own
  coefficients; a term contained in others (``A`` in ``A:B``) by the
  Doolittle rows after reordering ``X`` so that it comes after everything
  except the terms containing it (``get_contrasts_type2_unfolded``);
* **type III**: the hypotheses SAS calls type III, constructed as lmerTest's
  ``extract_contrasts_type3`` does: the over-parameterised (one indicator per
  level) columns of every term are expressed in a treatment-coded ``X``,
  each term's columns are made orthogonal to those of the terms containing
  it, and the result is mapped to the fit's own coding.

"Contains" is lmerTest's ``containment``: term ``F1`` is contained in
``F2`` when ``F2`` has all of ``F1``'s variables and more, and the same
numeric ones. As in lmerTest, a term's "variables" are those its column of
R's ``factors`` attribute codes 1 (the term without the variable is in the
model): in hierarchical formulas all of them; in ``y ~ B + x:A`` none of
``x:A``'s, which lmerTest then counts as contained in ``B``.

The terms are read from the formula's fixed part (formulaic's model spec):
their labels are R's (``A:B``, ``I(x^2)``, variables in the order they
first appear in the formula), in R's order (by degree).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..engine.design import drop_rank_deficient, r_column_name
from ..engine.modelmatrix import NumericSpec

__all__ = ["FixedTerm", "fixed_terms", "contrasts_type1", "contrasts_type2", "contrasts_type3",
           "doolittle", "zapsmall", "ginv"]


@dataclass(frozen=True)
class FixedTerm:
    """One term of the fixed part of a formula.

    Attributes
    ----------
    label : str
        R's term label (``"A:B"``).
    factors : tuple of str
        Its variables (formulaic factor expressions: ``"A"``, ``"I(x ** 2)"``).
    numeric : frozenset of str
        The variables among ``factors`` that are numeric (R's ``dataClasses``).
    columns : ndarray of int
        Its columns in the fit's ``X`` (empty if all were dropped for rank deficiency).
    """

    label: str
    factors: tuple
    numeric: frozenset
    columns: np.ndarray

    @property
    def order(self) -> int:
        return len(self.factors)


class TermStructure:
    """The fixed-effect terms of a fit and the matrices the contrasts are built from.

    Parameters
    ----------
    fit : LmerFit

    Attributes
    ----------
    terms : list of FixedTerm
    intercept : bool
    """

    def __init__(self, fit):
        self.fit = fit
        self.frame = fit.mf.frame
        self.xnames = list(fit.mf.xnames)
        spec = fit.mf.x_spec
        self._values: dict = {}
        terms, self.intercept = [], False
        pos = {nm: j for j, nm in enumerate(self.xnames)}
        if isinstance(spec, NumericSpec):
            self.intercept = spec.intercept
            for c in spec.columns:
                cols = np.array([pos[c]] if c in pos else [], dtype=int)
                terms.append(FixedTerm(c, (c,), frozenset([c]), cols))
                self._values[c] = ("numeric", self.frame[c].to_numpy(dtype=float)[:, None], None)
        else:
            import formulaic

            inner = getattr(spec, "spec", spec)  # a MatrixSpec wraps formulaic's ModelSpec, with R's names
            rname = {}
            if inner is not spec:
                flat = [c for st in inner.structure for c in st.columns]
                rname = dict(zip(flat, spec.column_names))
            state = inner.encoder_state
            order = _variable_order(formulaic.Formula(fit.mf.formula.fixed, _ordering="none"))
            for st in inner.structure:
                factors = tuple(str(f) for f in st.term.factors)
                if factors == ("1",) or not factors:
                    self.intercept = True
                    continue
                factors = tuple(sorted(factors, key=lambda f: order.get(f, len(order))))
                numeric = frozenset(f for f in factors
                                    if f in state and str(state[f][0].value) == "numerical")
                names = [rname.get(c, r_column_name(c)) for c in st.columns]
                cols = np.array([pos[nm] for nm in names if nm in pos], dtype=int)
                terms.append(FixedTerm(r_column_name(":".join(factors)), factors, numeric, cols))
        self.terms = terms
        self.by_label = {t.label: t for t in terms}
        present = {frozenset(t.factors) for t in terms}
        # R's "factors" attribute: 1 if the term without the variable is in the model (or empty), else 2
        self.codes = {t.label: {f: 1 if (len(t.factors) == 1 or frozenset(t.factors) - {f} in present) else 2
                                for f in t.factors} for t in terms}

    # ------------------------------------------------------------ containment
    def containment(self) -> dict:
        """For every term, the labels of the terms that contain it (lmerTest's ``containment``)."""
        vars_ = {t.label: {f for f in t.factors if self.codes[t.label][f] == 1} for t in self.terms}
        nums = {t.label: vars_[t.label] & t.numeric for t in self.terms}
        out = {}
        for t in self.terms:
            vs = vars_[t.label]
            out[t.label] = [o.label for o in self.terms
                            if vs <= vars_[o.label] and vars_[o.label] - vs and nums[t.label] == nums[o.label]]
        return out

    # --------------------------------------------------- the factors' columns
    def _factor(self, expr: str):
        """``("numeric", values (n, c), None)`` or ``("factor", indicators (n, levels), levels)``."""
        hit = self._values.get(expr)
        if hit is None:
            import formulaic

            mm = formulaic.model_matrix("0 + " + expr, self.frame, ensure_full_rank=False)
            kind, st = mm.model_spec.encoder_state.get(expr, (None, {}))
            values = np.asarray(mm, dtype=float)
            if str(getattr(kind, "value", "")) == "categorical":
                hit = ("factor", values, list(st["categories"]))
            else:
                hit = ("numeric", values, None)
            self._values[expr] = hit
        return hit

    def _term_columns(self, term: FixedTerm, coding: dict) -> tuple[np.ndarray, list]:
        """Row-wise products of the term's factors' columns, with a key per column.

        ``coding[f]`` is ``"full"`` (an indicator per level) or
        ``"contrast"`` (treatment contrasts: the first level dropped) for
        factor ``f``; numeric variables contribute their columns.
        """
        n = len(self.frame)
        out, keys = np.ones((n, 1)), [()]
        for f in term.factors:
            kind, M, _ = self._factor(f)
            idx = list(range(M.shape[1]))
            if kind == "factor" and coding.get(f) == "contrast":
                idx = idx[1:]
            M = M[:, idx]
            out = (out[:, :, None] * M[:, None, :]).reshape(n, -1)
            keys = [k + (i,) for k in keys for i in idx]
        return out, [(term.label, k) for k in keys]

    def overparameterised(self):
        """R's ``get_rdX``: the intercept and, per term, ``model.matrix(~ 0 + term)`` (every level)."""
        blocks, keys = [], []
        if self.intercept:
            blocks.append(np.ones((len(self.frame), 1)))
            keys.append(("(Intercept)", ()))
        for t in self.terms:
            M, k = self._term_columns(t, {})
            blocks.append(M)
            keys += k
        return np.column_stack(blocks), keys

    def treatment_coded(self):
        """``X`` remade with treatment contrasts by R's coding rule, full column rank.

        A factor in a term is coded by contrasts when the term without it is
        in the model (the intercept counting as the empty term), else by
        indicators; without an intercept the first factor of the first term
        that has one gets indicators (R's ``TermCode``). Columns that are
        linear combinations of earlier ones are dropped (lmerTest's
        ``ensure_full_rank``).

        Returns
        -------
        X_t : ndarray (n, p_t); keys : list; term_of : list of str (label per column)
        """
        blocks, keys, term_of = [], [], []
        if self.intercept:
            blocks.append(np.ones((len(self.frame), 1)))
            keys.append(("(Intercept)", ()))
            term_of.append("(Intercept)")
        first_factor_done = self.intercept
        for t in self.terms:
            coding = {}
            for f in t.factors:
                if self._factor(f)[0] != "factor":
                    continue
                if not first_factor_done:
                    coding[f] = "full"
                    first_factor_done = True
                else:
                    coding[f] = "contrast" if self.codes[t.label][f] == 1 else "full"
            M, k = self._term_columns(t, coding)
            blocks.append(M)
            keys += k
            term_of += [t.label] * M.shape[1]
        X = np.column_stack(blocks)
        names = [str(i) for i in range(X.shape[1])]
        _, kept, _ = drop_rank_deficient(X, names)
        keep = [int(i) for i in kept]
        return X[:, keep], [keys[i] for i in keep], [term_of[i] for i in keep]


# ------------------------------------------------------------------ helpers
def _variable_order(formula) -> dict:
    """Position of each variable's first appearance in the formula as written (R's ``variables``)."""
    order: dict = {}
    for term in formula:
        for f in term.factors:
            order.setdefault(str(f), len(order))
    return order


def zapsmall(x: np.ndarray, digits: int = 7) -> np.ndarray:
    """R's ``zapsmall``: round to ``digits`` significant digits of the largest absolute entry."""
    x = np.asarray(x, dtype=float)
    mx = float(np.max(np.abs(x))) if x.size else 0.0
    if not mx > 0:
        return x
    return np.round(x, max(0, digits - int(np.ceil(np.log10(mx)))))


def ginv(A: np.ndarray, tol: float = float(np.sqrt(np.finfo(float).eps))) -> np.ndarray:
    """Moore-Penrose inverse over singular values above ``tol`` times the largest (MASS's ``ginv``)."""
    U, d, Vt = np.linalg.svd(A, full_matrices=False)
    pos = d > max(tol * d[0], 0.0) if d.size else d > 0
    return (Vt[pos].T / d[pos]) @ U[:, pos].T


def doolittle(x: np.ndarray, eps: float = 1e-6) -> tuple[np.ndarray, np.ndarray]:
    """LU decomposition without pivoting, ``x = L U`` with unit lower triangular ``L`` (lmerTest's ``doolittle``).

    Where a pivot ``|U_ii| < eps`` (an aliased column) the column of ``L``
    below it is set to 0; entries below ``eps`` in absolute value are set
    to 0 at the end.
    """
    x = np.asarray(x, dtype=float)
    n = x.shape[0]
    L, U = np.eye(n), np.zeros((n, n))
    for i in range(n):
        U[i] = x[i] - L[i, :i] @ U[:i]
        if i + 1 < n:
            col = x[i + 1:, i] - L[i + 1:, :i] @ U[:i, i]
            L[i + 1:, i] = 0.0 if abs(U[i, i]) < eps else col / U[i, i]
    L[np.abs(L) < eps] = 0.0
    U[np.abs(U) < eps] = 0.0
    return L, U


# ---------------------------------------------------------------- contrasts
def contrasts_type1(ts: TermStructure) -> dict:
    """Type I (sequential) hypotheses: ``{term label: L}`` with ``L`` of shape (columns of the term, p)."""
    X = ts.fit.X
    p = X.shape[1]
    if p == 0:
        return {}
    if p == 1:
        Lt = np.ones((1, 1))
    else:
        Lt = doolittle(X.T @ X)[0].T
    return {t.label: Lt[t.columns] for t in ts.terms}


def contrasts_marginal(ts: TermStructure, which) -> dict:
    p = ts.fit.X.shape[1]
    return {lab: np.eye(p)[ts.by_label[lab].columns] for lab in which}


def contrasts_type2(ts: TermStructure) -> dict:
    """Type II hypotheses (lmerTest's default ``get_contrasts_type2_unfolded``)."""
    if ts.fit.X.shape[1] <= 1 or len(ts.terms) <= 1:
        return contrasts_type1(ts)
    X = ts.fit.X
    contained = ts.containment()
    out = {}
    for t in ts.terms:
        if not contained[t.label]:
            out.update(contrasts_marginal(ts, [t.label]))
            continue
        cols = np.concatenate([t.columns] + [ts.by_label[c].columns for c in contained[t.label]]).astype(int)
        rest = np.setdiff1d(np.arange(X.shape[1]), cols)
        order = np.concatenate([rest, cols])
        Xnew = X[:, order]
        Lc = doolittle(Xnew.T @ Xnew)[0].T
        rows = np.isin(order, t.columns)
        Lterm = np.zeros((int(rows.sum()), X.shape[1]))
        Lterm[:, order] = Lc[rows]
        out[t.label] = Lterm
    return out


def contrasts_type3(ts: TermStructure) -> dict:
    """Type III hypotheses, as lmerTest's ``get_contrasts_type3`` constructs them."""
    if ts.fit.X.shape[1] <= 1 or len(ts.terms) <= 1:
        return contrasts_type1(ts)
    Xt, keys_t, term_of = ts.treatment_coded()
    rdX, keys_rd = ts.overparameterised()
    Xt_inv = ginv(Xt)
    L = zapsmall((Xt_inv @ rdX).T)                           # (rdX columns, X_t columns)
    cols = {lab: np.flatnonzero(np.asarray(term_of) == lab) for lab in [t.label for t in ts.terms]}
    contained = ts.containment()
    order = sorted(range(len(ts.terms)), key=lambda i: -ts.terms[i].order)  # stable, highest order first
    for i in order:
        t = ts.terms[i]
        if not contained[t.label] or not len(cols[t.label]):
            continue
        C = np.concatenate([cols[c] for c in contained[t.label]]).astype(int)
        Y = L[:, cols[t.label]]
        if len(C):
            coef = np.linalg.lstsq(L[:, C], Y, rcond=None)[0]
            Y = Y - L[:, C] @ coef
        L[:, cols[t.label]] = zapsmall(Y)
    index = {k: r for r, k in enumerate(keys_rd)}
    L = L[[index[k] for k in keys_t]]                        # rows: the rdX columns that are X_t's columns
    to_fit = zapsmall(Xt_inv @ ts.fit.X)                     # beta_t = to_fit @ beta
    out = {}
    for t in ts.terms:
        Lt = L[:, cols[t.label]].T
        Lt = Lt[np.abs(Lt).sum(axis=1) > 1e-8]
        out[t.label] = Lt @ to_fit
    return out


def fixed_terms(fit) -> TermStructure:
    """The fixed-effect terms of ``fit`` (see :class:`TermStructure`)."""
    if not isinstance(fit.mf.frame, pd.DataFrame):
        raise TypeError("the fit has no model frame to read its terms from")
    if getattr(fit.mf, "smooths", None):
        raise NotImplementedError("type II/III tests and marginal means are not available for models with smooth "
                                  "terms s(x); fit.coef_table(ddf=...) tests single coefficients")
    return TermStructure(fit)
