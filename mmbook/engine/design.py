"""Design of a linear mixed model: the model frame, X, and the random-effects terms.

The model is

.. math::  y = X\\beta + Z\\gamma + e, \\qquad \\gamma = \\Lambda_\\theta u,
           \\quad u \\sim N(0, \\sigma^2 I), \\quad e \\sim N(0, \\sigma^2 I).

This module turns a formula and a data frame into ``y``, ``X`` (built by
formulaic, with lme4's column names) and one :class:`RandomTerm` per
random-effects term. ``Z`` is never stored as a dense ``n x q`` matrix: a
term holds, for every row, the index of its group (``refs``) and its row of
the term's model matrix (``z``); :meth:`RandomTerm.Z` assembles the sparse
matrix when a chapter wants to look at it.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
import pandas as pd
import scipy.sparse as sp

from .formula import BarTerm, MixedFormula, parse_formula

__all__ = ["ModelFrame", "RandomTerm", "model_frame", "model_matrix", "factor_codes", "r_column_name",
           "drop_rank_deficient"]


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


class NumericSpec:
    """Model matrix of an intercept and plain numeric columns, without formulaic.

    Most mixed-model formulas (``y ~ x + (x | g)``) need nothing more; this
    builds the same columns, in the same order and with the same names as
    formulaic and R, at a fraction of the cost. It is also the "spec" used
    to rebuild the matrix for new data.
    """

    def __init__(self, intercept: bool, columns: list[str]):
        self.intercept, self.columns = intercept, columns
        self.column_names = (["(Intercept)"] if intercept else []) + list(columns)

    @classmethod
    def parse(cls, rhs: str, frame: pd.DataFrame):
        """A NumericSpec for ``rhs`` if it is only ``0``/``1``/``-1`` and numeric column names, else None."""
        from .formula import split_top_level

        intercept, cols = True, []
        try:
            pieces = split_top_level(rhs, "+-")
        except ValueError:
            return None
        for sign, piece in pieces:
            if piece == "" and sign == "+":
                continue
            if piece in ("0", "-1") or (piece == "1" and sign == "-"):
                intercept = False
            elif piece == "1":
                intercept = True
            elif sign == "+" and re.fullmatch(r"[A-Za-z_.][A-Za-z0-9_.]*", piece) and piece in frame.columns:
                col = frame[piece]
                if (not pd.api.types.is_numeric_dtype(col) or pd.api.types.is_bool_dtype(col)
                        or isinstance(col.dtype, pd.CategoricalDtype)):
                    return None
                if piece not in cols:
                    cols.append(piece)
            else:
                return None
        return cls(intercept, cols)

    def matrix(self, frame: pd.DataFrame) -> np.ndarray:
        n = len(frame)
        X = np.empty((n, len(self.column_names)))
        j = 0
        if self.intercept:
            X[:, 0] = 1.0
            j = 1
        for c in self.columns:
            X[:, j] = frame[c].to_numpy(dtype=float)
            j += 1
        return X


def model_matrix(rhs, frame: pd.DataFrame, what: str, with_spec: bool = False):
    """Model matrix of ``rhs`` (a formula string, a NumericSpec or a formulaic ModelSpec) with R's column names."""
    import formulaic

    spec = rhs if isinstance(rhs, NumericSpec) else NumericSpec.parse(rhs, frame) if isinstance(rhs, str) else None
    if spec is not None:
        missing = [c for c in spec.columns if c not in frame.columns]
        if missing:
            raise KeyError(f"column {missing[0]!r} not found in data")
        X = spec.matrix(frame)
        if not np.all(np.isfinite(X)) and not frame[spec.columns].notna().all().all():
            raise ValueError(f"could not build the {what}: missing values")
        return (X, list(spec.column_names), spec) if with_spec else (X, list(spec.column_names))
    try:
        with np.errstate(all="ignore"):  # log(x) of x <= 0 is NaN: reported below as missing values, once
            if isinstance(rhs, str):
                mm = formulaic.model_matrix(rhs, frame, na_action="raise")
            else:
                mm = rhs.get_model_matrix(frame, na_action="raise")
    except Exception as exc:  # formulaic's errors are long; say what failed
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ValueError(f"could not build the {what} from {rhs!r}: {msg}") from None
    names = [r_column_name(c) for c in mm.columns]
    X = np.asarray(mm, dtype=float)
    if X.ndim == 1:
        X = X[:, None]
    X = np.ascontiguousarray(X)
    if with_spec:
        return X, names, mm.model_spec
    return X, names


def _variables(rhs: str) -> set[str]:
    import formulaic

    try:
        return {str(v) for v in formulaic.Formula(rhs).required_variables}
    except Exception as exc:  # first line only, without formulaic's terminal colour codes
        msg = re.sub(r"\x1b\[[0-9;]*m", "", str(exc)).strip().splitlines()
        raise ValueError(f"malformed formula term {rhs!r}: {msg[0] if msg else type(exc).__name__}") from None


def drop_rank_deficient(X: np.ndarray, names: list[str], tol: float = 1e-7):
    """Drop columns of ``X`` that are linear combinations of earlier ones.

    Mirrors R's ``qr(X, tol = 1e-7)`` with LINPACK's limited pivoting, which
    lme4 uses: columns are taken in order and one is kept only if the part of
    it not explained by the columns kept before it is larger than ``tol``
    times its norm.

    Returns
    -------
    X_kept, names_kept, dropped_names
    """
    n, p = X.shape
    if p == 0:
        return X, names, []
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


def _labels(cats) -> list[str]:
    """Level labels as R prints them (``1`` for the number 1.0)."""
    arr = np.asarray(cats)
    if arr.dtype.kind in "iub":
        return arr.astype(str).tolist()
    if arr.dtype.kind == "U":
        return arr.tolist()
    return [_label(c) for c in arr]


def _label(v) -> str:
    if isinstance(v, (float, np.floating)) and float(v).is_integer():
        return str(int(v))
    return str(v)


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
    """

    formula: MixedFormula
    frame: pd.DataFrame
    y: np.ndarray
    X: np.ndarray
    xnames: list[str]
    terms: list[RandomTerm] = field(default_factory=list)
    n_dropped: int = 0
    dropped_columns: list[str] = field(default_factory=list)
    x_spec: object = None  # formulaic ModelSpec of X (for new data)

    @property
    def n(self) -> int:
        return len(self.y)

    @property
    def p(self) -> int:
        return self.X.shape[1]


def _check_data(data) -> pd.DataFrame:
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


def model_frame(formula: str | MixedFormula, data: pd.DataFrame, *, drop_rank: bool = False,
                random: bool = True, stacklevel: int = 2, check_nobs_vs_nRE: str = "stop") -> ModelFrame:
    """Evaluate a formula on a data frame: ``y``, ``X`` and the random-effects terms.

    Rows with a missing value in any variable the formula uses are dropped,
    with a warning that says how many (R's ``na.omit``).

    Parameters
    ----------
    formula : str or MixedFormula
        An lme4 formula, e.g. ``"Reaction ~ Days + (Days | Subject)"``; a
        formula without random terms gives just ``y`` and ``X``.
    data : pandas.DataFrame
    drop_rank : bool
        Drop columns of X that are linear combinations of earlier columns,
        with a warning, as lme4 does.
    random : bool
        Build the random-effects terms (set False for ``lm``).
    stacklevel : int
        Where warnings point: 2 is the caller of ``model_frame``.
    check_nobs_vs_nRE : {"stop", "warning", "ignore"}
        lme4's ``check.nobs.vs.nRE`` (see :func:`random_terms`).

    Raises
    ------
    KeyError
        A variable is not a column of ``data``.
    ValueError, TypeError
        Malformed formula, no rows, non-numeric response, a grouping factor
        with fewer than two levels, and lme4's identifiability checks.
    """
    f = formula if isinstance(formula, MixedFormula) else parse_formula(formula)
    data = _check_data(data)

    fixed_vars = _variables(f.fixed)
    resp_vars = {f.response} if f.response in data.columns else _variables(f.response)
    rand_vars: set[str] = set()
    for t in f.random:
        rand_vars |= _variables(t.expr)
        rand_vars |= set(t.group_vars)
    needed = [v for v in dict.fromkeys([*sorted(resp_vars), *sorted(fixed_vars), *sorted(rand_vars)])]
    missing = [v for v in needed if v not in data.columns]
    if missing:
        raise KeyError(
            f"variable{'s' if len(missing) > 1 else ''} {', '.join(map(repr, missing))} "
            f"not found in data; its columns are: {', '.join(map(str, data.columns))}")

    frame = data[needed]
    complete = frame.notna().all(axis=1).to_numpy()
    n_dropped = int((~complete).sum())
    if n_dropped:
        if n_dropped == len(frame):
            raise ValueError("no complete rows: every row has a missing value in a variable the formula uses")
        warnings.warn(f"{n_dropped} row{'s' if n_dropped > 1 else ''} with missing values "
                      f"removed (of {len(frame)})", UserWarning, stacklevel=stacklevel + 1)
        frame = frame.loc[complete]

    # response
    if f.response in frame.columns:
        col = frame[f.response]
        if isinstance(col.dtype, pd.CategoricalDtype) or not pd.api.types.is_numeric_dtype(col) \
                or pd.api.types.is_bool_dtype(col):
            raise TypeError(f"response {f.response!r} must be numeric; it has dtype {col.dtype}")
        y = col.to_numpy(dtype=float)
    else:
        ymat, _ = model_matrix(f"0 + {f.response}", frame, "response")
        if ymat.shape[1] != 1:
            raise TypeError(f"response {f.response!r} must be a single numeric column")
        y = ymat[:, 0]
    if not np.all(np.isfinite(y)):
        raise ValueError(f"response {f.response!r} has infinite values")

    for v in fixed_vars:
        col = frame[v]
        if col.dtype == object and col.map(type).nunique() > 1:
            raise TypeError(f"column {v!r} mixes types ({', '.join(sorted(col.map(lambda x: type(x).__name__).unique()))})")

    X, xnames, x_spec = model_matrix(f.fixed, frame, "fixed-effects model matrix", with_spec=True)
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

    mf = ModelFrame(formula=f, frame=frame, y=y, X=X, xnames=xnames,
                    n_dropped=n_dropped, dropped_columns=dropped_cols, x_spec=x_spec)
    if random and f.random:
        mf.terms = random_terms(f.random, frame, check_nobs_vs_nRE=check_nobs_vs_nRE, stacklevel=stacklevel + 1)
    return mf


def random_terms(bars: tuple[BarTerm, ...], frame: pd.DataFrame, check_nobs_vs_nRE: str = "stop",
                 stacklevel: int = 2) -> list[RandomTerm]:
    """Build the random-effects terms, check them as lme4 does, and order them.

    lme4 (``mkReTrms``) sorts the terms by decreasing number of levels of
    their grouping factor when the numbers differ (``rev(order(nl))``, which
    also reverses ties); it then checks that each grouping factor has at
    least 2 and fewer than ``n`` levels, and that each term has fewer random
    effects than observations.
    """
    n = len(frame)
    terms = []
    for bar in bars:
        refs, levels = factor_codes(frame, bar.group)
        z, cnames, spec = model_matrix(bar.expr, frame, f"random-effects model matrix of ({bar.text})",
                                        with_spec=True)
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
    bad = [t.group for t in terms if t.nlevels >= n]
    if bad:
        raise ValueError("number of levels of each grouping factor must be < number of observations "
                         f"(problems: {', '.join(bad)})")
    for t in terms:
        if t.nlevels * t.q >= n and check_nobs_vs_nRE != "ignore":  # lme4's check.nobs.vs.nRE
            msg = (f"number of observations (={n}) <= number of random effects (={t.nlevels * t.q}) for "
                   f"term ({t.bar.text}); the random-effects parameters and the residual variance "
                   "are probably unidentifiable")
            if check_nobs_vs_nRE == "stop":
                raise ValueError(msg)
            warnings.warn(msg, UserWarning, stacklevel=stacklevel + 1)
    return terms
