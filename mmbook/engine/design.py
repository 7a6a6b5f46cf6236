"""Design of a linear mixed model: the model frame, X, and the random-effects terms.

The model is

.. math::  y = o + X\\beta + Z\\gamma + e, \\qquad \\gamma = \\Lambda_\\theta u,
           \\quad u \\sim N(0, \\sigma^2 I), \\quad e_i \\sim N(0, \\sigma^2 / w_i),

with a known offset ``o`` (0 unless given) and prior weights ``w`` (1 unless given).

This module turns a formula and a data frame into ``y``, ``X`` (built by
:mod:`mmbook.engine.modelmatrix` on formulaic, with R's functions, factors,
contrasts and column names), prior weights, an offset and one
:class:`RandomTerm` per random-effects term. ``Z`` is never stored as a dense ``n x q`` matrix: a
term holds, for every row, the index of its group (``refs``) and its row of
the term's model matrix (``z``); :meth:`RandomTerm.Z` assembles the sparse
matrix when a chapter wants to look at it.
"""

from __future__ import annotations

import re
import sys
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from functools import lru_cache

import numpy as np
import pandas as pd
import scipy.sparse as sp

from .contrasts import resolve_contrast
from .formula import BarTerm, MixedFormula, parse_formula
from .modelmatrix import formula_variables, model_matrix
from .rfunctions import variable_class
from .rnames import level_labels

__all__ = ["ModelFrame", "RandomTerm", "model_frame", "model_matrix", "factor_codes", "r_column_name",
           "drop_rank_deficient", "random_terms", "share_columns"]


def r_column_name(name: str) -> str:
    """Translate a formulaic column name to the name R gives the column.

    ``Intercept`` -> ``(Intercept)``; ``Sex[T.Male]`` -> ``SexMale``;
    ``f[a]`` -> ``fa``; ``I(x ** 2)`` -> ``I(x^2)``.
    """
    if name == "Intercept":
        return "(Intercept)"
    name = re.sub(r"\[T\.([^\]]*)\]", r"\1", name)
    name = re.sub(r"\[([^\]]*)\]", r"\1", name)
    name = name.replace(" ** ", "^").replace("**", "^")
    return name


def drop_rank_deficient(X: np.ndarray, names: list[str], tol: float = 1e-7):
    """Drop columns of ``X`` that are linear combinations of earlier ones.

    Mirrors R's ``qr(X, tol = 1e-7)`` with LINPACK's limited pivoting, which
    lme4 uses: columns are taken in order and one is kept only if the part of
    it not explained by the columns kept before it is larger than ``tol``
    times its norm.

    A design far from collinear is recognised from ``X'X`` alone (:func:`_clearly_full_rank`),
    without the QR decomposition.

    Returns
    -------
    X_kept, names_kept, dropped_names
    """
    n, p = X.shape
    if p == 0:
        return X, names, []
    if n >= p and _clearly_full_rank(X):
        return X, list(names), []
    norms = np.linalg.norm(X, axis=0)
    # fast path: one QR; if no diagonal element of R is small, X has full rank
    R = np.linalg.qr(X, mode="r") if n >= p else None
    if R is not None and np.all(np.abs(np.diag(R)) > tol * norms) and np.all(norms > 0):
        return X, list(names), []
    Q = np.zeros((n, 0))
    keep = []
    for j in range(p):
        x = X[:, j]
        norm = norms[j]
        if norm == 0.0:
            continue
        r = x - Q @ (Q.T @ x)
        r = r - Q @ (Q.T @ r)  # re-orthogonalise
        rn = np.linalg.norm(r)
        if rn > tol * norm:
            Q = np.column_stack([Q, r / rn])
            keep.append(j)
    dropped = [names[j] for j in range(p) if j not in keep]
    return X[:, keep], [names[j] for j in keep], dropped


def _clearly_full_rank(X: np.ndarray, margin: float = 1e-6) -> bool:
    """True when the columns of ``X`` are far from collinear: a screen that costs one ``X'X``.

    With ``C`` the correlation-like matrix ``D^{-1/2} X'X D^{-1/2}`` (``D = diag(X'X)``), every
    pivot of the QR decomposition satisfies ``|R_jj| / ||x_j|| >= sqrt(lambda_min(C))``. Forming
    ``X'X`` in floating point perturbs ``C`` by at most about ``n p eps`` in norm, so a computed
    ``lambda_min(C)`` above ``margin`` (and that bound) puts every pivot above ``sqrt(margin)``
    times its column's norm, far above the ``1e-7`` of R's rule: the QR decomposition would keep
    every column. Anything closer (or a zero column) goes to the QR decomposition.
    """
    G = X.T @ X
    d = np.diag(G).copy()
    if not (np.all(d > 0) and np.all(np.isfinite(G))):
        return False
    s = 1.0 / np.sqrt(d)
    C = G * s[:, None] * s[None, :]
    n, p = X.shape
    bound = max(margin, 100.0 * n * p * np.finfo(float).eps)
    try:
        return bool(np.linalg.eigvalsh(C)[0] > bound)
    except np.linalg.LinAlgError:  # pragma: no cover - eigvalsh of a finite symmetric matrix
        return False


def factor_codes(frame: pd.DataFrame, group: str) -> tuple[np.ndarray, list[str]]:
    """Integer codes and level labels of a grouping factor (R's factor order).

    A single column: a pandas Categorical keeps its category order; numbers
    are sorted numerically, strings alphabetically, as R's ``factor()``
    does. An interaction ``a:b`` has levels ``"a1:b1", "a1:b2", ...`` with
    the first factor varying slowest (R's ``a:b`` for factors). Unused
    levels are dropped, as lme4 does.
    """
    codes_list, labels_list = [], []
    for v in [g.strip("() ") for g in group.split(":")]:
        col = frame[v]
        if isinstance(col.dtype, pd.CategoricalDtype):
            cats = list(col.cat.categories)
            codes = col.cat.codes.to_numpy().astype(np.int64)
        else:
            codes, cats = _factorize_sorted(col)
        codes_list.append(np.asarray(codes, dtype=np.int64))
        labels_list.append(_labels(cats))
    if len(codes_list) == 1:
        codes, labels = codes_list[0], labels_list[0]
        used = np.flatnonzero(np.bincount(codes, minlength=len(labels)))
        if len(used) < len(labels):  # drop unused levels
            remap = np.full(len(labels), -1, dtype=np.int64)
            remap[used] = np.arange(len(used))
            codes = remap[codes]
            labels = [labels[i] for i in used]
        return codes, labels
    key = np.zeros(len(frame), dtype=np.int64)
    for c, lab in zip(codes_list, labels_list):  # last factor varies fastest
        key = key * len(lab) + c
    used, codes = np.unique(key, return_inverse=True)
    digits = []
    rem = used.copy()
    for lab in reversed(labels_list):
        digits.append(rem % len(lab))
        rem //= len(lab)
    digits.reverse()
    labels = [":".join(labels_list[j][d[i]] for j, d in enumerate(digits)) for i in range(len(used))]
    return codes.astype(np.int64), labels


def _factorize_sorted(col: pd.Series):
    """Codes and sorted levels of a column (R's factor order): hash first, then sort the levels only."""
    codes, uniq = pd.factorize(col, sort=False)
    _release_arrow_memory()
    uniq = np.asarray(uniq)
    if uniq.dtype == object and all(isinstance(u, str) for u in uniq[:1000]):
        try:
            uniq = uniq.astype(str)  # fixed-width: sorts in C
        except (TypeError, ValueError):
            pass
    try:
        order = np.argsort(uniq, kind="stable")
    except TypeError:
        raise TypeError(f"grouping factor {col.name!r} mixes types that cannot be ordered") from None
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order))
    return rank[codes], uniq[order]


def _release_arrow_memory() -> None:
    """Return the memory that pyarrow's pool keeps after factorising a string column to the system.

    pandas holds strings in Arrow arrays; their factorisation allocates about
    as much as the column from pyarrow's pool (mimalloc or jemalloc), which keeps the freed
    memory for reuse. Without this it stays resident through the whole fit.
    """
    pa = sys.modules.get("pyarrow")  # loaded only if pandas uses it: never imported here
    if pa is None or not hasattr(pa, "default_memory_pool"):
        return
    pool = pa.default_memory_pool()
    if hasattr(pool, "release_unused"):  # pyarrow >= 9
        pool.release_unused()


def _labels(cats) -> list[str]:
    """Level labels as R prints them (``1`` for the number 1.0, ``TRUE`` for True)."""
    return level_labels(cats)


@dataclass
class RandomTerm:
    """One random-effects term ``(expr | group)``.

    For observation ``i`` in level ``refs[i]`` of the grouping factor, the
    term contributes ``z[i] @ gamma[refs[i]]`` to the linear predictor,
    where ``gamma[l]`` (length ``q``) is level ``l``'s random-effects
    vector, ``gamma[l] ~ N(0, psi)`` and ``psi = sigma^2 T T'``.
    ``T`` is lower triangular with the term's ``theta`` (column-major
    lower triangle, lme4's order) and ``Lambda = I_levels (x) T``.

    Attributes
    ----------
    bar : BarTerm
    group : str
        Grouping factor name (``"Subject"``, ``"a:b"``).
    refs : ndarray of int, shape (n,)
    levels : list of str
    z : ndarray, shape (n, q)
        The term's model matrix (per-row columns).
    cnames : list of str
        Column names, e.g. ``["(Intercept)", "Days"]``.
    """

    bar: BarTerm
    group: str
    refs: np.ndarray
    levels: list[str]
    z: np.ndarray
    cnames: list[str]
    spec: object = None  # formulaic ModelSpec of the term's columns (for new data)

    @property
    def q(self) -> int:
        return self.z.shape[1]

    @property
    def nlevels(self) -> int:
        return len(self.levels)

    @property
    def ntheta(self) -> int:
        return self.q * (self.q + 1) // 2

    def T(self, theta_k: np.ndarray) -> np.ndarray:
        """Relative covariance factor ``T`` (q x q lower triangular) from ``theta_k``."""
        T = np.zeros((self.q, self.q))
        rows, cols = _tril_colmajor(self.q)
        T[rows, cols] = theta_k
        return T

    def theta_lower(self) -> np.ndarray:
        """Lower bounds of ``theta_k``: 0 on the diagonal of ``T``, -inf below it."""
        rows, cols = _tril_colmajor(self.q)
        return np.where(rows == cols, 0.0, -np.inf)

    def theta_start(self) -> np.ndarray:
        rows, cols = _tril_colmajor(self.q)
        return np.where(rows == cols, 1.0, 0.0)

    @property
    def structure(self) -> str:
        """Covariance structure of ``T``: ``"general"`` (lower triangular, lme4's)."""
        return "general"

    def lambda_entries(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Structural non-zeros of ``T`` within one level: rows, columns and ``theta_k`` index of each."""
        rows, cols = _tril_colmajor(self.q)
        return rows, cols, np.arange(self.ntheta)

    def Z(self) -> sp.csr_matrix:
        """Sparse ``n x (nlevels * q)`` model matrix, columns level by level
        (level 1's q columns, then level 2's, ...), as lme4 orders them."""
        n, q = self.z.shape
        rows = np.repeat(np.arange(n), q)
        cols = (self.refs[:, None] * q + np.arange(q)[None, :]).ravel()
        return sp.csr_matrix((self.z.ravel(), (rows, cols)), shape=(n, self.nlevels * q))


@lru_cache(maxsize=None)
def _tril_colmajor(q: int) -> tuple[np.ndarray, np.ndarray]:
    """Row and column indices of the lower triangle in column-major order."""
    cols, rows = np.triu_indices(q)  # (col, row) pairs with row >= col, column-major
    rows.flags.writeable = False
    cols.flags.writeable = False
    return rows, cols


@dataclass
class ModelFrame:
    """The data of a model, ready to fit.

    Attributes
    ----------
    formula : MixedFormula
    frame : pandas.DataFrame
        The rows used (missing values removed), with the variables the
        formula needs.
    y : ndarray, shape (n,)
        The response, offset included (as the data give it).
    X : ndarray, shape (n, p)
    xnames : list of str
        lme4/R column names of ``X``.
    terms : list of RandomTerm
        In lme4's order (sorted by decreasing number of levels when they
        differ).
    n_dropped : int
        Rows removed because of missing values.
    dropped_columns : list of str
        Columns of X dropped for rank deficiency (only when
        ``drop_rank=True``).
    x_spec : NumericSpec or MatrixSpec
        Rebuilds X for new data (factor levels, contrasts, transform state).
    weights : ndarray, shape (n,), or None
        Prior weights ``w_i`` (lme4's ``weights(fit)``): observation ``i`` has
        residual variance ``sigma^2 / w_i``. None: all 1.
    offset : ndarray, shape (n,), or None
        Known part of the linear predictor, ``y = offset + X beta + Z b + e``:
        the sum of the formula's ``offset()`` terms and the ``offset``
        argument. None: 0.
    offset_specs : tuple
        Specs that evaluate each offset expression on new data.
    offset_is_array : bool
        The ``offset`` argument was an array: new data cannot supply it.
    var_classes : dict
        R's class of each variable (``numeric``, ``logical``, ``factor``,
        ``ordered``), checked against new data.
    contrasts : dict
        The ``contrasts`` argument, resolved (factor name -> RContrast).
    na_action : {"omit", "exclude"}
    arguments : dict
        The ``weights``, ``offset``, ``contrasts`` and ``na_action`` arguments
        as given (those that were), so that a refit with a new formula or
        data (``update``) can pass them again and the summary can name them.
    data_index : pandas.Index
        Index of the user's data (all rows).
    rows : ndarray of int or None
        Positions in the user's data of the rows used (None: all of them,
        no row was removed; saves an index of ``n`` numbers).
    """

    formula: MixedFormula
    frame: pd.DataFrame
    y: np.ndarray
    X: np.ndarray
    xnames: list[str]
    terms: list[RandomTerm] = field(default_factory=list)
    n_dropped: int = 0
    dropped_columns: list[str] = field(default_factory=list)
    x_spec: object = None  # NumericSpec or MatrixSpec of X (for new data)
    weights: np.ndarray | None = None
    offset: np.ndarray | None = None
    offset_specs: tuple = ()
    offset_is_array: bool = False
    var_classes: dict = field(default_factory=dict)
    contrasts: dict = field(default_factory=dict)
    na_action: str = "omit"
    arguments: dict = field(default_factory=dict)
    data_index: pd.Index | None = None
    rows: np.ndarray | None = None
    smooths: list = field(default_factory=list)  # MixedSmooth of each s() term (mmbook.engine.smooth)
    residual: object = None  # ResidualCorrelation of the residuals (mmbook.engine.residual), or None

    @property
    def n(self) -> int:
        return len(self.y)

    @property
    def p(self) -> int:
        return self.X.shape[1]

    @property
    def n_eff(self) -> int:
        """Observations that carry information: those with a positive weight (all without weights)."""
        return self.n if self.weights is None else int(np.count_nonzero(self.weights > 0))

    @property
    def logdet_w(self) -> float:
        """``sum(log w_i)`` over the positive weights (0 without weights)."""
        if self.weights is None:
            return 0.0
        w = self.weights[self.weights > 0]
        return float(np.log(w).sum())

    @property
    def y_offset(self) -> np.ndarray:
        """``y - offset``: the response the penalized least squares problem fits."""
        return self.y if self.offset is None else self.y - self.offset

    def pad(self, values, name: str) -> pd.Series:
        """Per-row values as a Series indexed like the rows used (``omit``) or like the data (``exclude``).

        With ``na_action="exclude"`` (R's ``na.exclude``) the rows removed
        for missing values come back as NaN, so the result lines up with the
        user's data.
        """
        values = np.asarray(values, dtype=float)
        if self.na_action != "exclude" or self.data_index is None or len(self.data_index) == self.n:
            return pd.Series(values, index=self.frame.index, name=name)
        out = np.full(len(self.data_index), np.nan)
        out[slice(None) if self.rows is None else self.rows] = values
        return pd.Series(out, index=self.data_index, name=name)


def _check_data(data) -> pd.DataFrame:
    if type(data).__module__.split(".")[0] == "dask":
        raise TypeError("a Dask DataFrame is supported only by mmbook.lmer (Gaussian linear mixed models); "
                        "this needs the data in memory: use data.compute() if it fits")
    if not isinstance(data, pd.DataFrame):
        # a dict of columns is a data frame in all but name; an array or a list has no column names
        if not isinstance(data, Mapping):
            raise TypeError(f"data must be a pandas DataFrame (or a dict of columns), got {type(data).__name__}")
        try:
            data = pd.DataFrame(data)
        except Exception as exc:
            raise TypeError(f"data must be a pandas DataFrame; a {type(data).__name__} could not be "
                            f"converted: {exc}") from None
    if len(data) == 0:
        raise ValueError("data has no rows")
    return data


def _check_na_action(na_action) -> str:
    value = {"na.omit": "omit", "na.exclude": "exclude"}.get(na_action, na_action)
    if value not in ("omit", "exclude"):
        raise ValueError(f"na_action must be 'omit' or 'exclude' (R's na.omit, na.exclude), got {na_action!r}")
    return value


def _row_values(value, n: int, what: str) -> np.ndarray:
    """A per-row argument given as an array: one finite-or-missing number per row of the data."""
    try:
        arr = np.asarray(value, dtype=float)
    except (TypeError, ValueError):
        raise TypeError(f"{what} must be a column name or an array of numbers") from None
    if arr.ndim == 0:
        arr = np.full(n, float(arr))
    if arr.shape != (n,):
        raise ValueError(f"{what} must have one value per row of data ({n}); got shape {arr.shape}")
    return arr


def _expr_variables(expr: str, columns) -> set[str]:
    return formula_variables(f"0 + I({expr})", columns)


def _numeric_expr(expr: str, frame: pd.DataFrame, what: str, state_frame: pd.DataFrame):
    """One numeric value per row from an R expression (``"w"``, ``"log(n)"``), and its spec for new data."""
    vals, _, spec = model_matrix(f"0 + I({expr})", frame, what, with_spec=True, state_frame=state_frame)
    if vals.shape[1] != 1:
        raise TypeError(f"{what} {str(expr)!r} must be numeric (one number per row)")
    return vals[:, 0], spec


def _check_weights(w: np.ndarray, index) -> np.ndarray:
    """lme4's rule: prior weights are finite and non-negative, and not all zero."""
    if not np.all(np.isfinite(w)):
        raise ValueError("weights must be finite")
    neg = np.flatnonzero(w < 0)
    if len(neg):
        raise ValueError(f"weights must be non-negative: {len(neg)} {'is' if len(neg) == 1 else 'are'} negative "
                         f"(the first in the row labelled {index[neg[0]]})")
    if not np.any(w > 0):
        raise ValueError("all weights are zero: no observation carries information")
    return w


def model_frame(formula: str | MixedFormula, data: pd.DataFrame, *, drop_rank: bool = False,
                random: bool = True, stacklevel: int = 2, weights=None, offset=None, contrasts=None,
                na_action: str = "omit", check_nobs_vs_nRE: str = "stop", extra_variables=()) -> ModelFrame:
    """Evaluate a formula on a data frame: ``y``, ``X``, the random-effects terms, weights and offset.

    Rows with a missing value in any variable the formula uses (or in the
    weights or offset) are dropped, with a warning that says how many (R's
    ``na.omit``; with ``na_action="exclude"``, R's ``na.exclude``, fitted
    values and residuals are later padded with NaN at those rows).

    Parameters
    ----------
    formula : str or MixedFormula
        An lme4 formula, e.g. ``"Reaction ~ Days + (Days | Subject)"``; a
        formula without random terms gives just ``y`` and ``X``.
        ``offset(expr)`` terms add a known part to the linear predictor.
    data : pandas.DataFrame
    drop_rank : bool
        Drop columns of X that are linear combinations of earlier columns,
        with a warning, as lme4 does.
    random : bool
        Build the random-effects terms (set False for ``lm``).
    stacklevel : int
        Where warnings point: 2 is the caller of ``model_frame``.
    weights : str or array_like, optional
        Prior weights: a column name (or an expression of columns, ``"1/v"``)
        or one number per row of ``data``.
    offset : str or array_like, optional
        An offset: a column name (or expression, ``"log(n)"``) or one number
        per row; added to the formula's ``offset()`` terms.
    contrasts : dict, optional
        Contrasts of factors in the fixed part, ``{"f": "contr.sum"}`` (see
        :func:`mmbook.engine.contrasts.resolve_contrast`); as in lme4 they do
        not apply to the random-effects terms.
    na_action : {"omit", "exclude"}
    extra_variables : sequence of str
        Other columns the model reads (a smooth's covariate, a residual
        correlation's time and cluster): checked, cleared of missing values
        with the formula's variables, and kept in ``frame``.

    Raises
    ------
    KeyError
        A variable is not a column of ``data``.
    ValueError, TypeError
        Malformed formula, no rows, non-numeric response, negative or
        infinite weights, a grouping factor with fewer than two levels, and
        lme4's identifiability checks.
    """
    f = formula if isinstance(formula, MixedFormula) else parse_formula(formula)
    data = _check_data(data)
    na_action = _check_na_action(na_action)
    contrasts = _check_contrasts(contrasts)
    cols = data.columns

    fixed_vars = formula_variables(f.fixed, cols)
    resp_vars = {f.response} if f.response in cols else formula_variables(f.response, cols)
    off_exprs = list(f.offsets)
    w_expr = weights if isinstance(weights, str) else None
    o_expr = offset if isinstance(offset, str) else None
    extra_vars: set[str] = set()
    for e in off_exprs + ([o_expr] if o_expr else []) + ([w_expr] if w_expr else []):
        extra_vars |= _expr_variables(e, cols)
    expr_vars: set[str] = set()
    group_vars: set[str] = set()
    for t in f.random:
        expr_vars |= formula_variables(t.expr, cols)
        group_vars |= set(t.group_vars)
    needed = list(dict.fromkeys([*sorted(resp_vars), *sorted(fixed_vars), *sorted(extra_vars),
                                 *sorted(expr_vars), *sorted(group_vars), *extra_variables]))
    missing = [v for v in needed if v not in cols]
    if missing:
        raise KeyError(
            f"variable{'s' if len(missing) > 1 else ''} {', '.join(map(repr, missing))} "
            f"not found in data; its columns are: {', '.join(map(str, cols))}")
    w_arr = None if weights is None or w_expr is not None else _row_values(weights, len(data), "weights")
    o_arr = None if offset is None or o_expr is not None else _row_values(offset, len(data), "offset")

    full = data[needed]
    complete = np.array(full.notna().all(axis=1).to_numpy(), dtype=bool)
    for arr in (w_arr, o_arr):
        if arr is not None:
            complete &= ~np.isnan(arr)
    n_dropped = int((~complete).sum())
    if n_dropped:
        if n_dropped == len(full):
            raise ValueError("no complete rows: every row has a missing value in a variable the formula uses")
        warnings.warn(f"{n_dropped} row{'s' if n_dropped > 1 else ''} with missing values "
                      f"removed (of {len(full)})", UserWarning, stacklevel=stacklevel + 1)
    rows = np.flatnonzero(complete) if n_dropped else None  # None: every row is used
    frame = full.iloc[rows] if n_dropped else full

    y = _response(f, frame)
    var_classes = {v: variable_class(full[v]) for v in needed if v not in resp_vars or v in fixed_vars}
    unused = [k for k in contrasts if k not in fixed_vars]
    if unused:
        warnings.warn(f"variable{'s' if len(unused) > 1 else ''} {', '.join(map(repr, unused))} "
                      f"{'are' if len(unused) > 1 else 'is'} not in the fixed part; "
                      f"{'their contrasts' if len(unused) > 1 else 'its contrast'} will be ignored",
                      UserWarning, stacklevel=stacklevel + 1)
    numeric = [k for k in contrasts if k in fixed_vars and var_classes.get(k) == "numeric"]
    if numeric:
        raise ValueError(f"contrasts apply only to factors; {numeric[0]!r} is numeric (use factor({numeric[0]}) "
                         "in the formula to treat it as a factor)")

    X, xnames, x_spec = model_matrix(f.fixed, frame, "fixed-effects model matrix", with_spec=True,
                                     contrasts={k: c for k, c in contrasts.items() if k in fixed_vars},
                                     state_frame=full)
    if not np.all(np.isfinite(X)):
        raise ValueError("the fixed-effects model matrix has infinite values")
    dropped_cols: list[str] = []
    if drop_rank and X.shape[1]:
        X, xnames, dropped_cols = drop_rank_deficient(X, xnames)
        if dropped_cols:
            k = len(dropped_cols)
            warnings.warn(f"fixed-effect model matrix is rank deficient so dropping {k} column"
                          f"{'s' if k > 1 else ''} / coefficient{'s' if k > 1 else ''} "
                          f"({', '.join(dropped_cols)})", UserWarning, stacklevel=stacklevel + 1)

    w = None
    if w_expr is not None:
        w, _ = _numeric_expr(w_expr, frame, "weights", full)
    elif w_arr is not None:
        w = w_arr.copy() if rows is None else w_arr[rows]
    if w is not None:
        w = _check_weights(w, frame.index)
    off = np.zeros(len(frame))
    specs = []
    for e in off_exprs + ([o_expr] if o_expr else []):
        v, spec = _numeric_expr(e, frame, "offset", full)
        off += v
        specs.append(spec)
    if o_arr is not None:
        off += o_arr if rows is None else o_arr[rows]
    has_offset = bool(specs) or o_arr is not None
    if has_offset and not np.all(np.isfinite(off)):
        raise ValueError("the offset has infinite values")

    mf = ModelFrame(formula=f, frame=frame, y=y, X=X, xnames=xnames, n_dropped=n_dropped,
                    dropped_columns=dropped_cols, x_spec=x_spec, weights=w, offset=off if has_offset else None,
                    offset_specs=tuple(specs), offset_is_array=o_arr is not None, var_classes=var_classes,
                    contrasts=contrasts, na_action=na_action, data_index=data.index,
                    rows=rows,
                    arguments={k: v for k, v in (("weights", weights), ("offset", offset),
                                                 ("contrasts", contrasts or None),
                                                 ("na_action", None if na_action == "omit" else na_action))
                               if v is not None})
    if random and f.random:
        mf.terms = [share_columns(t, X) for t in
                    random_terms(f.random, frame, state_frame=full, check_nobs_vs_nRE=check_nobs_vs_nRE,
                                 stacklevel=stacklevel + 1)]
    return mf


def share_columns(term: RandomTerm, X: np.ndarray) -> RandomTerm:
    """``term`` with its ``z`` replaced by ``X`` (or by a view of X's first columns) when they are equal.

    ``y ~ x + (x | g)`` has the same columns in ``X`` and in the term's ``z``;
    holding them once saves ``n q`` numbers (lme4 keeps both, as ``X`` and
    ``Zt``). The values are the same, so nothing downstream changes;
    :meth:`mmbook.engine.conditioning.Conditioning.of` also conditions them
    once when ``z`` is ``X``.
    """
    z = term.z
    n, q = z.shape
    if X.ndim != 2 or X.shape[0] != n or X.shape[1] < q or q == 0 or X.dtype != z.dtype:
        return term
    Xq = X if X.shape[1] == q else X[:, :q]
    ends = [0, n - 1, n // 2]
    if not np.array_equal(z[ends], Xq[ends]) or not np.array_equal(z, Xq):
        return term
    return replace(term, z=Xq)


def _check_contrasts(contrasts) -> dict:
    if contrasts is None:
        return {}
    if not isinstance(contrasts, Mapping):
        raise TypeError("contrasts must be a dict from factor name to a contrast, e.g. {'f': 'contr.sum'}")
    return {str(k): resolve_contrast(v, f"factor {k!r}") for k, v in contrasts.items()}


def _response(f: MixedFormula, frame: pd.DataFrame) -> np.ndarray:
    if f.response in frame.columns:
        col = frame[f.response]
        if isinstance(col.dtype, pd.CategoricalDtype) or not pd.api.types.is_numeric_dtype(col):
            raise TypeError(f"response {f.response!r} must be numeric; it has dtype {col.dtype}")
        y = col.to_numpy(dtype=float)  # a logical response counts as 0/1, as lme4's mkRespMod does
    else:
        ymat, _ = model_matrix(f"0 + {f.response}", frame, "response")
        if ymat.shape[1] != 1:
            raise TypeError(f"response {f.response!r} must be a single numeric column")
        y = ymat[:, 0]
    if not np.all(np.isfinite(y)):
        raise ValueError(f"response {f.response!r} has infinite values")
    return y


def random_terms(bars: tuple[BarTerm, ...], frame: pd.DataFrame,
                 state_frame: pd.DataFrame | None = None, allow_n: bool = False,
                 check_nobs_vs_nRE: str = "stop", stacklevel: int = 2) -> list[RandomTerm]:
    """Build the random-effects terms, check them as lme4 does, and order them.

    lme4 (``mkReTrms``) sorts the terms by decreasing number of levels of
    their grouping factor when the numbers differ (``rev(order(nl))``, which
    also reverses ties); it then checks that each grouping factor has at
    least 2 and fewer than ``n`` levels, and that each term has fewer random
    effects than observations. The terms' columns use R's default contrasts
    (lme4 passes the ``contrasts`` argument to X only). With ``allow_n``
    (``glmer``, whose response has no residual variance to confound) as many
    levels and random effects as observations are allowed: an
    observation-level random effect (lme4's ``allow.n = TRUE`` in ``glFormula``).
    """
    n = len(frame)
    terms = []
    for bar in bars:
        refs, levels = factor_codes(frame, bar.group)
        z, cnames, spec = model_matrix(bar.expr, frame, f"random-effects model matrix of ({bar.text})",
                                       with_spec=True, state_frame=state_frame)
        if z.shape[1] == 0:
            raise ValueError(f"random-effects term ({bar.text}) has no columns")
        if not np.all(np.isfinite(z)):
            raise ValueError(f"the random-effects model matrix of ({bar.text}) has infinite values")
        terms.append(RandomTerm(bar=bar, group=bar.group, refs=refs, levels=levels, z=z, cnames=cnames,
                                spec=spec))
    nl = np.array([t.nlevels for t in terms])
    if len(terms) > 1 and np.any(np.diff(nl) > 0):
        order = np.argsort(nl, kind="stable")[::-1]
        terms = [terms[i] for i in order]
    for t in terms:
        if t.nlevels < 2:
            raise ValueError(f"grouping factor {t.group!r} has {t.nlevels} level: grouping factors "
                             "must have > 1 sampled level")
    bad = [t.group for t in terms if t.nlevels > n or (t.nlevels == n and not allow_n)]
    if bad:
        raise ValueError("number of levels of each grouping factor must be < number of observations "
                         f"(problems: {', '.join(bad)})")
    for t in terms:  # lme4's check.nobs.vs.nRE ("stop", "warning" or "ignore")
        if (t.nlevels * t.q > n or (t.nlevels * t.q == n and not allow_n)) and check_nobs_vs_nRE != "ignore":
            msg = (f"number of observations (={n}) <= number of random effects (={t.nlevels * t.q}) for "
                   f"term ({t.bar.text}); the random-effects parameters and the residual variance "
                   "are probably unidentifiable")
            if check_nobs_vs_nRE == "stop":
                raise ValueError(msg)
            warnings.warn(msg, UserWarning, stacklevel=stacklevel + 1)
    return terms
