"""New data for a fitted model: the model matrices of rows the fit has not seen, checked as R checks them.

R's ``predict`` rebuilds the model frame of new data with the fitted factor
levels (``xlev``), the fitted transform state (``makepredictcall``) and a
check of each variable's class (``.checkMFClasses``). mmbook does the same,
and refuses what R refuses - with messages that name the column:

* a column the formula needs is missing (``KeyError``);
* a column of another kind than at the fit, e.g. strings for a numeric
  variable (``TypeError``);
* a level of a fixed-effect factor that the fit never saw
  (:class:`~mmbook.engine.modelmatrix.NewLevelError`, a ``ValueError``),
  never coded silently as the base level;
* a missing value in a variable gives a NaN prediction for that row (R's
  ``na.pass``); a missing grouping factor is an error unless new levels are
  allowed, when the row gets the population prediction (as lme4).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .design import ModelFrame, RandomTerm, factor_codes
from .modelmatrix import model_matrix
from .rfunctions import check_class

__all__ = ["check_newdata", "newdata_fixed", "newdata_random"]

def _variables(spec) -> list[str]:
    return list(getattr(spec, "variables", []))


def check_newdata(mf: ModelFrame, newdata: pd.DataFrame, variables, what: str) -> np.ndarray:
    """Check that ``newdata`` has the variables, of the fitted kinds; the rows where all are present.

    Returns
    -------
    ndarray of bool, shape (len(newdata),)
        True where none of ``variables`` is missing.

    Raises
    ------
    KeyError
        A variable is not a column of ``newdata``.
    TypeError
        A column's kind differs from the fit's (R: "variable 'x' was fitted
        with type "numeric" but type "character" was supplied").
    """
    variables = list(dict.fromkeys(variables))
    missing = [v for v in variables if v not in newdata.columns]
    if missing:
        raise KeyError(f"newdata has no column {missing[0]!r}, which the {what} needs; "
                       f"its columns are: {', '.join(map(str, newdata.columns))}")
    for v in variables:
        if v in mf.var_classes:
            check_class(newdata[v], mf.var_classes[v])
    if not variables:
        return np.ones(len(newdata), dtype=bool)
    return newdata[variables].notna().all(axis=1).to_numpy()


def _matrix(spec, newdata: pd.DataFrame, ok: np.ndarray, ncol: int, what: str) -> np.ndarray:
    out = np.full((len(newdata), ncol), np.nan)
    if ok.any():
        rows = np.flatnonzero(ok)
        out[rows] = model_matrix(spec, newdata.iloc[rows], what)[0]
    return out


def newdata_fixed(mf: ModelFrame, newdata: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """``X`` (the fitted columns) and the offset for new data; NaN rows where a variable is missing.

    The offset is the sum of the formula's ``offset()`` terms and the
    ``offset`` argument, evaluated on ``newdata`` (as R's ``predict.lm``
    does; lme4 1.1-31 leaves out an ``offset`` argument for new data).

    Raises
    ------
    ValueError
        The fit's offset was an array: new data cannot supply it.
    """
    if mf.offset_is_array:
        raise ValueError("the model's offset was given as an array, so new data cannot supply it: fit with "
                         "offset='<column>' or offset(<column>) in the formula to predict for new data")
    ok = check_newdata(mf, newdata, _variables(mf.x_spec), "fixed-effects model matrix")
    X_all = _matrix(mf.x_spec, newdata, ok, len(mf.x_spec.column_names), "fixed-effects model matrix for newdata")
    names = list(mf.x_spec.column_names)
    X = X_all[:, [names.index(nm) for nm in mf.xnames]]
    offset = np.zeros(len(newdata))
    for spec in mf.offset_specs:
        ok_o = check_newdata(mf, newdata, _variables(spec), "offset")
        offset += _matrix(spec, newdata, ok_o, 1, "offset for newdata")[:, 0]
    return X, offset


def _group_labels(frame: pd.DataFrame, group: str) -> np.ndarray:
    codes, labels = factor_codes(frame, group)
    return np.asarray(labels, dtype=object)[codes]


def newdata_random(mf: ModelFrame, term: RandomTerm, newdata: pd.DataFrame,
                   allow_new_levels: bool) -> tuple[np.ndarray, np.ndarray]:
    """A term's columns ``z`` for new data and each row's level (-1: a level the fit never saw).

    Raises
    ------
    KeyError
        The grouping factor is not a column of ``newdata``.
    ValueError
        New levels or missing values of the grouping factor, unless
        ``allow_new_levels`` (then those rows get no random effect).
    """
    what = f"random-effects term ({term.bar.text})"
    missing = [v for v in term.bar.group_vars if v not in newdata.columns]
    if missing:
        raise KeyError(f"newdata has no column {missing[0]!r} (grouping factor of ({term.bar.text}))")
    ok = check_newdata(mf, newdata, _variables(term.spec), what)
    z = _matrix(term.spec, newdata, ok, term.q, f"random-effects model matrix of ({term.bar.text}) for newdata")
    present = newdata[term.bar.group_vars].notna().all(axis=1).to_numpy()
    if not present.all() and not allow_new_levels:
        raise ValueError(f"missing values in grouping factor {term.group!r} of newdata: not allowed unless "
                         "allow_new_levels=True (those rows then get the population prediction)")
    pos = np.full(len(newdata), -1)
    if present.any():
        rows = np.flatnonzero(present)
        labels = _group_labels(newdata.iloc[rows], term.group)
        found = pd.Index(term.levels).get_indexer(labels)
        new = found < 0
        if new.any() and not allow_new_levels:
            bad = sorted(set(labels[new]))[:5]
            raise ValueError(f"new levels detected in newdata for {term.group!r}: {', '.join(map(str, bad))}"
                             " (use allow_new_levels=True to predict them at the population level)")
        pos[rows] = found
    return z, pos
