"""The data of a generalized linear mixed model: response, trials, prior weights, offset.

``glmer`` accepts the responses R's ``glm`` and lme4's ``glmer`` accept:

* binomial: a 0/1 (or boolean) response; a two-level factor (its first level,
  in R's order, is the failure, the other the success); a proportion of
  successes with the numbers of trials given as ``weights=``; or
  ``cbind(successes, failures)`` on the left of ``~``;
* poisson: non-negative whole numbers, with an ``offset=`` argument and/or
  ``offset(expr)`` terms in the formula (e.g. ``offset(log(exposure))``).

As R does, the binomial response is stored as the proportion ``y = s / m`` of
``m`` trials, and the prior weights ``w`` include the trials (``w = m`` times
any ``weights=``). Rows with a missing value in any variable of the formula,
in the weights or in the offset are dropped together, with one warning that
says how many (R's ``na.omit``).

Expressions (the arguments of ``cbind`` and ``offset``, a computed response
such as ``incidence / size``) are evaluated by formulaic's ``I()`` with R's
arithmetic function names available (``log``, ``exp``, ``sqrt``, ...).

This module handles ``weights``/``offset`` for ``glmer`` only; the linear
model's frame (:mod:`mmbook.engine.design`) is reused for ``X`` and the
random-effects terms.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from .design import ModelFrame, model_frame, random_terms
from .formula import parse_formula, split_top_level
from .smooth import split_smooths
from .glm_family import Family

__all__ = ["GLMData", "glmm_frame", "eval_expression", "split_offsets"]

_RESPONSE = ".glmer_response"  # the column that carries the response (and the missing-value mask)

# R's names for the arithmetic a formula expression may use
_R_FUNCTIONS = {"log": np.log, "exp": np.exp, "sqrt": np.sqrt, "log1p": np.log1p, "expm1": np.expm1,
                "log10": np.log10, "log2": np.log2, "abs": np.abs, "pmin": np.minimum, "pmax": np.maximum}


@dataclass
class GLMData:
    """A model frame and what a GLMM adds to it.

    Attributes
    ----------
    mf : ModelFrame
        ``y`` (proportions for the binomial family), ``X`` and the terms;
        ``mf.frame`` is indexed like the user's data.
    y : ndarray, shape (n,)
    weights : ndarray, shape (n,)
        Prior weights (the trials included for binomial proportions).
    trials : ndarray, shape (n,)
        Trials ``m`` of a ``cbind`` response (1 otherwise; R's ``n``).
    offset : ndarray, shape (n,)
        The ``offset=`` argument plus the formula's ``offset()`` terms.
    offset_terms : tuple of str
        The expressions of the formula's ``offset()`` terms (evaluated again
        on new data by ``predict``).
    response_kind : str
        ``"binary"``, ``"factor"``, ``"proportion"``, ``"cbind"`` or ``"count"``.
    levels : tuple of str
        The two levels of a factor response (failure, success).
    """

    mf: ModelFrame
    y: np.ndarray
    weights: np.ndarray
    trials: np.ndarray
    offset: np.ndarray
    offset_terms: tuple = ()
    response_kind: str = "binary"
    levels: tuple = field(default_factory=tuple)


def eval_expression(expr: str, frame: pd.DataFrame, what: str) -> np.ndarray:
    """Evaluate an R-style arithmetic expression on the columns of ``frame`` (missing values kept as NaN).

    Raises
    ------
    KeyError
        A variable is not a column of ``frame``.
    ValueError
        The expression cannot be evaluated, or does not give one number per row.
    """
    expr = expr.strip()
    if expr in frame.columns:
        col = frame[expr]
        if isinstance(col.dtype, pd.CategoricalDtype) or not (pd.api.types.is_numeric_dtype(col)
                                                                or pd.api.types.is_bool_dtype(col)):
            raise TypeError(f"{what} {expr!r} must be numeric; it has dtype {col.dtype}")
        return col.to_numpy(dtype=float, na_value=np.nan)
    import formulaic

    try:
        with np.errstate(divide="ignore", invalid="ignore"):  # log(0) is reported by the caller's checks
            mm = formulaic.model_matrix(f"0 + I({expr})", frame, context=_R_FUNCTIONS, na_action="ignore")
    except Exception as exc:  # formulaic's messages are long: say what failed, briefly
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        m = re.search(r"name '([^']+)' is not defined", msg)
        if m:
            raise KeyError(f"variable {m.group(1)!r} of the {what} {expr!r} not found in data") from None
        raise ValueError(f"could not evaluate the {what} {expr!r}: {msg}") from None
    values = np.asarray(mm, dtype=float)
    if values.ndim != 2 or values.shape[1] != 1:
        raise ValueError(f"the {what} {expr!r} must give one number per row")
    return values[:, 0]


def split_offsets(fixed: str) -> tuple[str, tuple[str, ...]]:
    """Take the ``offset(expr)`` terms out of a fixed-effects right-hand side.

    Returns the right-hand side without them (``"1"`` when nothing else is
    left, ``"0"`` when only ``0 +`` is) and the expressions inside.

    Raises
    ------
    ValueError
        An offset is subtracted (``- offset(x)``).
    """
    keep, offsets = [], []
    for sign, piece in split_top_level(fixed, "+-"):
        m = re.fullmatch(r"offset\s*\((.*)\)", piece.strip(), flags=re.S)
        if m:
            if sign == "-":
                raise ValueError(f"an offset cannot be removed with '-': {piece!r}")
            offsets.append(m.group(1).strip())
        elif piece:
            keep.append(piece if sign == "+" else f"- {piece}")
    if not offsets:
        return fixed, ()
    rest = " + ".join(keep).replace("+ -", "-") if keep else "1"
    if keep and all(k.startswith("-") for k in keep):
        rest = "1 " + " ".join(keep)
    return rest, tuple(offsets)


def _vector(arg, frame: pd.DataFrame, what: str) -> np.ndarray:
    """An ``offset=``/``weights=`` argument: a column name or expression, or one value per row."""
    if isinstance(arg, str):
        return eval_expression(arg, frame, f"{what}")
    if isinstance(arg, pd.Series):
        arg = arg.to_numpy()
    try:
        v = np.asarray(arg, dtype=float).reshape(-1)
    except (TypeError, ValueError):
        raise TypeError(f"{what} must be a column name or one number per row of data") from None
    if v.shape != (len(frame),):
        raise ValueError(f"{what} must have one value per row of data ({len(frame)}), got {v.size}")
    return v


def _response(lhs: str, frame: pd.DataFrame, family: Family):
    """(y, trials, weight factor, kind, levels) on all rows; NaN where a value is missing."""
    m = re.fullmatch(r"cbind\s*\((.*)\)", lhs.strip(), flags=re.S)
    if m:
        args = [a for _, a in split_top_level(m.group(1), ",")]
        if len(args) != 2 or not all(args):
            raise ValueError(f"cbind() in the response needs two arguments, successes and failures: {lhs!r}")
        if family.name != "binomial":
            raise ValueError(f"a cbind(successes, failures) response needs the binomial family, not {family.name}")
        s = eval_expression(args[0], frame, "number of successes")
        f = eval_expression(args[1], frame, "number of failures")
        ok = ~(np.isnan(s) | np.isnan(f))
        if np.any((s[ok] < 0) | (f[ok] < 0)):
            raise ValueError(f"cbind({args[0]}, {args[1]}): counts of successes and failures must be "
                             "non-negative")
        trials = s + f
        with np.errstate(invalid="ignore", divide="ignore"):
            y = np.where(trials > 0, s / np.where(trials > 0, trials, 1.0), 0.0)
        y[~ok] = np.nan
        return y, trials, trials, "cbind", ()
    ones = np.ones(len(frame))
    if lhs in frame.columns:
        col = frame[lhs]
        if pd.api.types.is_bool_dtype(col):
            y = col.to_numpy(dtype=float, na_value=np.nan)
            return y, ones, ones, "binary", ()
        if isinstance(col.dtype, pd.CategoricalDtype) or not pd.api.types.is_numeric_dtype(col):
            return _factor_response(lhs, col, family)
        y = col.to_numpy(dtype=float, na_value=np.nan)
    else:
        y = eval_expression(lhs, frame, "response")
    kind = "count" if family.name == "poisson" else "binary"
    return y, ones, ones, kind, ()


def _factor_response(name: str, col: pd.Series, family: Family):
    if family.name != "binomial":
        raise TypeError(f"response {name!r} is a factor; the {family.name} family needs numbers (counts)")
    if isinstance(col.dtype, pd.CategoricalDtype):
        present = set(col.dropna().unique())
        levels = [c for c in col.cat.categories if c in present]
    else:
        vals = col.dropna().unique()
        try:
            levels = sorted(vals)
        except TypeError:
            raise TypeError(f"response {name!r} mixes types that cannot be ordered") from None
    if len(levels) > 2:
        shown = ", ".join(map(str, levels[:5])) + (", ..." if len(levels) > 5 else "")
        raise ValueError(f"response {name!r} has {len(levels)} levels ({shown}); the binomial family needs "
                         "two (the first is the failure): recode it, e.g. data[name] == 'level'")
    y = np.where(col.isna().to_numpy(), np.nan, (col == levels[-1]).to_numpy(dtype=float)) \
        if len(levels) == 2 else np.where(col.isna().to_numpy(), np.nan, 0.0)
    ones = np.ones(len(col))
    return y, ones, ones, "factor", tuple(str(v) for v in levels)


def glmm_frame(formula: str, data, family: Family, weights=None, offset=None, stacklevel: int = 2) -> GLMData:
    """Evaluate a GLMM's formula, weights and offset on a data frame.

    Parameters
    ----------
    formula : str
        An lme4 formula; the response may be ``cbind(successes, failures)``
        and the fixed part may hold ``offset(expr)`` terms.
    data : pandas.DataFrame
    family : Family
    weights, offset : str or array_like, optional
        A column name (or expression) of ``data``, or one value per row.

    Returns
    -------
    GLMData

    Raises
    ------
    ValueError, TypeError, KeyError
        A malformed formula; a response outside the family's support
        (negative or fractional counts, proportions without the trials, a
        factor with more than two levels, values outside [0, 1]); a
        constant response; negative weights; non-finite offsets.
    """
    f = parse_formula(formula)
    if split_smooths(f.fixed)[1]:
        raise NotImplementedError("smooth terms s(x) are fitted by mmbook.lmer only; mmbook.glmer has none")
    if not f.random:
        raise ValueError(f"no random-effects terms in {formula!r}: add one such as (1 | group)")
    if type(data).__module__.split(".")[0] == "dask":
        raise TypeError("glmer needs the data in memory (a pandas DataFrame): each PIRLS iteration reweights "
                        "the rows, so a Dask DataFrame would be read again at every step. A Dask DataFrame "
                        "is supported only by mmbook.lmer (Gaussian models); use data.compute() if it fits")
    frame_in = pd.DataFrame(data) if isinstance(data, dict) else data
    if not isinstance(frame_in, pd.DataFrame):
        raise TypeError(f"data must be a pandas DataFrame (or a dict of columns), got {type(data).__name__}")
    if len(frame_in) == 0:
        raise ValueError("data has no rows")
    user_index = frame_in.index
    d = frame_in.reset_index(drop=True)

    fixed, offset_terms = split_offsets(f.fixed)
    offset_terms = tuple(dict.fromkeys(tuple(getattr(f, "offsets", ())) + tuple(offset_terms)))
    n_all = len(d)
    off = np.zeros(n_all)
    for expr in offset_terms:
        off = off + eval_expression(expr, d, "offset")
    if offset is not None:
        off = off + _vector(offset, d, "offset")
    wt_arg = np.ones(n_all) if weights is None else _vector(weights, d, "weights")
    if np.any(wt_arg[~np.isnan(wt_arg)] < 0):
        raise ValueError("weights must be non-negative")
    if np.any(np.isinf(wt_arg)):
        raise ValueError("weights must be finite")

    y, trials, wt_resp, kind, levels = _response(f.response, d, family)
    if kind == "binary" and weights is not None and family.name == "binomial":
        kind = "proportion"
    # the response column carries every row's missing-value status, so model_frame drops
    # rows with a missing weight or offset together with those missing a formula variable
    y_col = np.where(np.isnan(wt_arg) | np.isnan(off), np.nan, y)
    if np.any(np.isinf(off)):
        raise ValueError("the offset has infinite values (e.g. log(0)): check the exposure variable")
    d[_RESPONSE] = y_col
    f2 = replace(f, response=_RESPONSE, fixed=fixed, offsets=())  # the offset is the GLM response's
    mf = model_frame(f2, d, drop_rank=True, random=False, stacklevel=stacklevel + 1)
    mf.terms = random_terms(f2.random, mf.frame, allow_n=True)
    pos = mf.frame.index.to_numpy()
    mf.frame = mf.frame.set_axis(user_index[pos])
    y, trials = mf.y, trials[pos]
    w = wt_arg[pos] * wt_resp[pos]
    _check_support(family, y, w, trials, kind, weights is not None, f.response)
    return GLMData(mf=mf, y=y, weights=w, trials=trials, offset=off[pos], offset_terms=offset_terms,
                   response_kind=kind, levels=levels)


def _check_support(family: Family, y, w, trials, kind, has_weights, name):
    """The response is one the family can have produced (R's ``family$initialize`` checks)."""
    used = w > 0
    if family.name == "binomial":
        if np.any((y < 0) | (y > 1)):
            raise ValueError(f"binomial response {name!r} must lie in [0, 1] (0/1, a two-level factor, a "
                             "proportion with weights= the numbers of trials, or cbind(successes, failures)); "
                             f"it ranges from {y.min():g} to {y.max():g}")
        if kind == "binary" and not has_weights and np.any((y != 0) & (y != 1)):
            raise ValueError(f"binomial response {name!r} has values strictly between 0 and 1 (proportions) "
                             "but no weights: give the numbers of trials as weights=, or write the response "
                             "as cbind(successes, failures)")
        m = w if not np.any(trials > 1) else trials
        if np.any(np.abs(m * y - np.rint(m * y)) > 1e-3):
            warnings.warn("non-integer numbers of successes in a binomial GLMM (R: 'non-integer #successes "
                          "in a binomial glm!')", UserWarning, stacklevel=4)
    else:
        if np.any(y < 0):
            raise ValueError(f"Poisson response {name!r} has negative values: counts must be >= 0")
        if np.any(y != np.rint(y)):
            bad = y[y != np.rint(y)][0]
            raise ValueError(f"Poisson response {name!r} must hold whole numbers (counts); found {bad:g}")
    yu = y[used]
    if yu.size == 0:
        raise ValueError("all weights are zero: nothing to fit")
    if np.all(yu == yu[0]):
        raise ValueError(f"the response {name!r} is constant (every value is {yu[0]:g}): "
                         "a GLMM cannot be fitted (lme4: 'Response is constant')")
