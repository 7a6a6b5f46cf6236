"""R's ``model.matrix`` on top of formulaic, with R's column names.

A term of an lme4 formula is an R expression: ``Days``, ``log(Days + 1)``,
``factor(h)``, ``poly(x, 2)``, ``scale(x)``, ``bs(x, df = 4)``, ``I(x^2)``.
formulaic evaluates such expressions (as Python) and encodes them; this
module makes the result what R's ``model.matrix`` gives: R's functions and
factors (:mod:`mmbook.engine.rfunctions`), R's contrasts
(:mod:`mmbook.engine.contrasts`) and R's names (:mod:`mmbook.engine.rnames`:
``(Intercept)``, ``bTRUE``, ``factor(h)2``, ``f.L``, ``s1``, ``poly(x, 2)1``,
``bs(x, df = 4)1``, ``I(x^2)``, ``x:fb``). It also finds the variables a
formula reads, inside calls too (``x`` in ``scale(x)``), and keeps what it
takes to build the same columns for new data (:class:`MatrixSpec`).
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .contrasts import resolve_contrast
from .rfunctions import R_FUNCTIONS, NewLevelError, as_factor, check_class, default_contrast, variable_class
from .rnames import column_name, fallback_name, r_deparse, r_spelling, to_python

__all__ = ["MatrixSpec", "NumericSpec", "model_matrix", "formula_variables"]


def _parse(rhs: str):
    import formulaic

    if re.search(r"(^|[\s+~*:(-])\.($|[\s+*:)-])", re.sub(r"`[^`]*`", "x", rhs)):
        raise ValueError("the '.' shorthand (all other columns) is not supported in mmbook formulas: "
                         "name the variables")
    try:
        return formulaic.Formula(rhs)
    except Exception as exc:  # first line only, without formulaic's terminal colour codes
        msg = re.sub(r"\x1b\[[0-9;]*m", "", str(exc)).strip().splitlines()
        raise ValueError(f"malformed formula term {rhs!r}: {msg[0] if msg else type(exc).__name__}") from None


def _parse_expr(expr: str):
    """``ast`` of a term's expression; backquoted names (```my x```) become placeholders.

    Returns the tree and the map from placeholder to the original name.
    """
    aliases: dict[str, str] = {}

    def alias(m):
        key = f"_bq{len(aliases)}_"
        aliases[key] = m.group(1)
        return key

    try:
        return ast.parse(re.sub(r"`([^`]*)`", alias, expr), mode="eval"), aliases
    except SyntaxError:
        raise ValueError(f"malformed term {expr!r} in the formula") from None


def _expr_names(expr: str) -> tuple[set[str], set[str]]:
    """Variables read by a Python expression, and the functions it calls.

    A name is a variable unless it is called (``log`` in ``log(x)``) or is the
    root of an attribute (``np`` in ``np.log(x)``, ``contr`` in ``contr.sum``).
    """
    tree, aliases = _parse_expr(expr)
    called, roots = set(), set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            called.add(node.func.id)
        elif isinstance(node, ast.Attribute):
            base = node
            while isinstance(base, ast.Attribute):
                base = base.value
            if isinstance(base, ast.Name):
                roots.add(base.id)
    names = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
    return {aliases.get(n, n) for n in names - called - roots}, called


def formula_variables(rhs: str, columns=()) -> set[str]:
    """The data variables a formula right-hand side reads, including those inside calls.

    ``scale(x)``, ``poly(x, 2)``, ``bs(x, df = 4)`` and ``factor(h)`` read
    ``x`` and ``h``; a name that is not a column of the data and is one of
    :data:`R_FUNCTIONS` (``pi``) is not a variable.

    Raises
    ------
    ValueError
        A malformed term; a call to a function mmbook does not know.
    """
    cols = set(map(str, columns))
    out: set[str] = set()
    for term in _parse(to_python(rhs)):
        for f in term.factors:
            kind = f.eval_method.value
            if kind == "lookup":
                out.add(f.expr)
            elif kind == "python":
                names, called = _expr_names(f.expr)
                unknown = sorted(c for c in called if c not in R_FUNCTIONS and c not in cols)
                if unknown:
                    raise ValueError(
                        f"function {unknown[0]!r} in the term {r_deparse(f.expr)!r} is not available in mmbook "
                        f"formulas; available: {', '.join(sorted(r_spelling(k) for k in R_FUNCTIONS if callable(R_FUNCTIONS[k])))}")
                out |= {n for n in names if n in cols or n not in R_FUNCTIONS}
    return out


# ----------------------------------------------------------------------------- model matrices
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
        self.variables = list(columns)

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
            elif sign == "+" and re.fullmatch(r"[A-Za-z_.][A-Za-z0-9_.]*", piece) and piece in frame.columns \
                    and piece not in ("TRUE", "FALSE"):
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
        """The columns for ``frame`` (new data: each column must be numeric, as at the fit)."""
        for c in self.columns:
            check_class(frame[c], "numeric")
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


@dataclass
class MatrixSpec:
    """What it takes to rebuild a model matrix for new data: formulaic's spec and the R-side choices.

    Attributes
    ----------
    spec : formulaic.ModelSpec
        Structure, encoder state (factor levels) and transform state (``scale``,
        ``poly``, ``bs``) of the fitted matrix.
    column_names : list of str
        R's names of the columns, in order.
    contrasts : dict
        Contrast of each factor variable (:class:`~mmbook.engine.contrasts.RContrast`),
        defaults included.
    variables : list of str
        The data variables the matrix reads.
    classes : dict
        R's class of each variable at the fit (:func:`variable_class`): new data
        are read as the fit read them (strings for an ordered factor are that
        ordered factor).
    """

    spec: object
    column_names: list[str]
    contrasts: dict = field(default_factory=dict)
    variables: list = field(default_factory=list)
    classes: dict = field(default_factory=dict)

    def matrix(self, frame: pd.DataFrame) -> np.ndarray:
        data, context = _formulaic_inputs(frame, self.variables, self.contrasts, self.classes)
        mm = _materialize(lambda: self.spec.get_model_matrix(data, context=context, na_action="ignore"),
                          "model matrix for new data", self.spec)
        return np.asarray(mm, dtype=float).reshape(len(frame), -1)


def _formulaic_inputs(frame: pd.DataFrame, variables, contrasts: dict, classes: dict | None = None):
    """The numeric columns as formulaic's data; factors (R semantics) and R's functions as its context.

    ``classes`` (the fit's, for new data) decides how a column is read; without
    it, the column's own kind does.
    """
    context = dict(R_FUNCTIONS)
    numeric = {}
    for v in variables:
        if v not in frame.columns:
            continue
        col = frame[v]
        cls = (classes or {}).get(v)
        if cls is None:
            cls = variable_class(col)
        else:
            check_class(col, cls)
        if cls == "numeric":
            numeric[v] = col if col.dtype != object else pd.to_numeric(col)
        else:
            c = contrasts.get(v) or default_contrast(cls)
            context[v] = as_factor(col, c, f"factor {v!r}")
    return pd.DataFrame(numeric, index=frame.index), context


def _materialize(build, what: str, rhs):
    """Run formulaic; its errors become one clear line naming the matrix and the formula.

    numpy's warnings (``log`` of a value <= 0, ...) are silenced: the NaN or
    infinite values they leave are reported by the caller, once, by name.
    """
    try:
        with np.errstate(all="ignore"):
            return build()
    except NewLevelError:
        raise
    except Exception as exc:  # formulaic may wrap errors from inside our encoders; unwrap a new level
        inner = exc.__cause__ or exc.__context__
        while inner is not None and not isinstance(inner, NewLevelError):
            inner = inner.__cause__ or inner.__context__
        if isinstance(inner, NewLevelError):
            raise NewLevelError(str(inner)) from None
        msg = re.sub(r"\x1b\[[0-9;]*m", "", str(exc)).strip().splitlines()
        msg = msg[0] if msg else type(exc).__name__
        raise ValueError(f"could not build the {what} from {_shown(rhs)}: {msg}") from None


def _shown(rhs) -> str:
    if isinstance(rhs, str):
        return repr(rhs)
    f = getattr(rhs, "formula", None)
    return repr(str(f)) if f is not None else "the fitted formula"


def _stateful_exprs(formula) -> list[tuple[str, set[str]]]:
    """Factors whose expression calls a stateful transform, with the variables each reads."""
    out = []
    for term in formula:
        for f in term.factors:
            if f.eval_method.value != "python":
                continue
            tree = _parse_expr(f.expr)[0]
            if any(isinstance(n, ast.Call) and isinstance(n.func, ast.Name)
                   and getattr(R_FUNCTIONS.get(n.func.id), "__is_stateful_transform__", False)
                   for n in ast.walk(tree)):
                out.append((f.expr, _expr_names(f.expr)[0]))
    return out


def model_matrix(rhs, frame: pd.DataFrame, what: str, with_spec: bool = False, *, contrasts: dict | None = None,
                 state_frame: pd.DataFrame | None = None):
    """Model matrix of a formula right-hand side, with R's column names.

    Parameters
    ----------
    rhs : str, NumericSpec or MatrixSpec
        A right-hand side in lme4's language (``"Days + log(x) + factor(h)"``),
        or the spec of a fitted matrix (to rebuild it for new data).
    frame : DataFrame
        The rows to build it for (without missing values).
    what : str
        What the matrix is, for error messages.
    with_spec : bool
        Also return the spec that rebuilds the matrix for new data.
    contrasts : dict, optional
        Contrast per factor variable (see :func:`mmbook.engine.contrasts.resolve_contrast`).
    state_frame : DataFrame, optional
        Rows on which stateful transforms (``scale``, ``poly``, ``bs``) learn
        their state: R evaluates them on the data before removing incomplete
        rows, on the rows where their own variables are present.

    Returns
    -------
    X : ndarray, shape (n, p)
    names : list of str
    spec : NumericSpec or MatrixSpec (with ``with_spec``)

    Raises
    ------
    ValueError
        The matrix cannot be built (message names the term); a factor with one level.
    NewLevelError
        New data with a level of a factor that the fit never saw.
    """
    if isinstance(rhs, (NumericSpec, MatrixSpec)):
        spec = rhs
    else:
        spec = NumericSpec.parse(rhs, frame)
    if isinstance(spec, NumericSpec):
        missing = [c for c in spec.columns if c not in frame.columns]
        if missing:
            raise KeyError(f"column {missing[0]!r} not found in data")
        X = spec.matrix(frame)
        return (X, list(spec.column_names), spec) if with_spec else (X, list(spec.column_names))
    if isinstance(spec, MatrixSpec):
        X = spec.matrix(frame)
        return (X, list(spec.column_names), spec) if with_spec else (X, list(spec.column_names))

    from formulaic import ModelSpec

    contrasts = {k: resolve_contrast(v, f"factor {k!r}") for k, v in (contrasts or {}).items()}
    py = to_python(rhs)
    formula = _parse(py)
    variables = sorted(formula_variables(rhs, frame.columns) & set(map(str, frame.columns)))
    state = {}
    if state_frame is not None:
        for expr, names in _stateful_exprs(formula):
            rows = state_frame[[n for n in names if n in state_frame.columns]].notna().all(axis=1)
            data, context = _formulaic_inputs(state_frame.loc[rows], variables, contrasts)
            pre = ModelSpec.from_spec(f"0 + {expr}", context=context)
            mm = _materialize(lambda: pre.get_model_matrix(data, context=context, na_action="ignore"), what, rhs)
            state.update(mm.model_spec.transform_state)
    classes = {v: variable_class(frame[v]) for v in variables}
    coding = {v: contrasts.get(v) or default_contrast(c) for v, c in classes.items() if c != "numeric"}
    data, context = _formulaic_inputs(frame, variables, coding, classes)
    mspec = ModelSpec.from_spec(formula, transform_state=state, context=context)
    mm = _materialize(lambda: mspec.get_model_matrix(data, context=context, na_action="raise"), what, rhs)
    names = _names(mm)
    X = np.ascontiguousarray(np.asarray(mm, dtype=float).reshape(len(frame), -1))
    ms = MatrixSpec(spec=mm.model_spec, column_names=names, contrasts=coding, variables=variables, classes=classes)
    return (X, names, ms) if with_spec else (X, names)


def _names(mm) -> list[str]:
    names = []
    for entry in mm.model_spec.structure:
        for col in entry.columns:
            names.append(column_name(col, list(entry.term.factors)))
    if len(names) != mm.shape[1]:  # structure and matrix disagree: fall back to the matrix's names
        names = [fallback_name(c) if c != "Intercept" else "(Intercept)" for c in mm.columns]
    return names
