"""R's ``model.matrix`` on top of formulaic: R's functions, R's factors and R's column names.

A term of an lme4 formula is an R expression: ``Days``, ``log(Days + 1)``,
``factor(h)``, ``poly(x, 2)``, ``scale(x)``, ``bs(x, df = 4)``, ``I(x^2)``.
formulaic evaluates such expressions (as Python) and encodes them; this
module makes the result what R's ``model.matrix`` gives:

* **R's functions** (:data:`R_FUNCTIONS`): ``log`` (with ``base``), ``exp``,
  ``sqrt``, ``abs``, ``factor``/``as.factor``, ``ordered``, ``scale``,
  ``poly``, ``bs`` (R's arguments), ``I``, ``C``; ``TRUE``/``FALSE``. The
  stateful ones (``scale``, ``poly``, ``bs``) keep their fitted state
  (centre and scale, polynomial coefficients, knots), so new data are
  transformed as R's ``predict`` does through ``makepredictcall``.
* **R's factors**: a string, boolean or categorical column is a factor with
  R's levels (sorted, unused ones dropped; a boolean has ``FALSE``,
  ``TRUE``), coded by R's contrasts (:mod:`mmbook.engine.contrasts`;
  ``contr.poly`` for an ordered factor). New data with a level the fit never
  saw raise :class:`NewLevelError` instead of being coded as the base level.
* **R's names**: ``(Intercept)``, ``bTRUE``, ``factor(h)2``, ``f.L``,
  ``s1`` (``contr.sum``), ``poly(x, 2)1``, ``bs(x, df = 4)1``, ``I(x^2)``,
  ``log(x + 1)``, ``x:fb`` - the term as R deparses it, then the column.
"""

from __future__ import annotations

import ast
import io
import re
import tokenize
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .contrasts import RContrast, contr, resolve_contrast

__all__ = ["R_FUNCTIONS", "NewLevelError", "MatrixSpec", "NumericSpec", "model_matrix", "formula_variables",
           "variable_class", "r_number", "level_labels", "r_deparse", "to_python"]


class NewLevelError(ValueError):
    """New data hold a level of a factor that the fit never saw (R: ``factor ... has new levels``)."""


# ----------------------------------------------------------------------------- R's numbers and labels
def r_number(v: float, digits: int = 15) -> str:
    """A double as R's ``as.character`` and ``deparse`` write it (15 significant digits, shorter of fixed/sci)."""
    v = float(v)
    if np.isnan(v):
        return "NaN"
    if np.isinf(v):
        return "Inf" if v > 0 else "-Inf"
    if v == 0:
        return "0"
    mant, exp = f"{v:.{digits - 1}e}".split("e")
    mant = mant.rstrip("0").rstrip(".")
    e = int(exp)
    nsig = len(mant.replace("-", "").replace(".", ""))
    sci = f"{mant}e{'-' if e < 0 else '+'}{abs(e):02d}"
    fixed = f"{v:.{max(0, nsig - 1 - e)}f}"
    return fixed if len(fixed) <= len(sci) else sci


def _label(v) -> str:
    if isinstance(v, (bool, np.bool_)):
        return "TRUE" if v else "FALSE"
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    if isinstance(v, (float, np.floating)):
        return r_number(v)
    return str(v)


def level_labels(values) -> list[str]:
    """Labels of factor levels as R prints them (``1`` for 1.0, ``TRUE``, ``1e+05``)."""
    arr = np.asarray(values)
    if arr.dtype.kind in "iu":
        return arr.astype(str).tolist()
    if arr.dtype.kind == "U":
        return arr.tolist()
    return [_label(v) for v in arr]


def variable_class(col: pd.Series) -> str:
    """R's class of a data column in a model frame: ``numeric``, ``logical``, ``factor`` or ``ordered``.

    Raises
    ------
    TypeError
        A column of another kind (dates, mixed types, complex numbers).
    """
    dt = col.dtype
    if isinstance(dt, pd.CategoricalDtype):
        return "ordered" if dt.ordered else "factor"
    if pd.api.types.is_bool_dtype(dt):
        return "logical"
    if pd.api.types.is_numeric_dtype(dt) and not pd.api.types.is_complex_dtype(dt):
        return "numeric"
    if pd.api.types.is_string_dtype(dt) or dt == object:
        kind = pd.api.types.infer_dtype(col, skipna=True)
        if kind == "boolean":
            return "logical"
        if kind in ("string", "empty"):
            return "factor"
        if kind in ("integer", "floating", "mixed-integer-float", "decimal"):
            return "numeric"
        kinds = sorted({type(v).__name__ for v in col.dropna().unique()})
        raise TypeError(f"column {col.name!r} mixes types ({', '.join(kinds)}); "
                        "make it all strings (a factor) or all numbers")
    raise TypeError(f"column {col.name!r} has dtype {dt}, which a model formula cannot use; "
                    "convert it to numbers or to strings/categorical")


# ----------------------------------------------------------------------------- factors
def _factor_labels(values, what: str):
    """Per-row labels and the R-ordered levels of a factor's values (missing values: None)."""
    s = values if isinstance(values, pd.Series) else pd.Series(np.asarray(values))
    if isinstance(s.dtype, pd.CategoricalDtype):
        cats = level_labels(s.cat.categories)
        codes = s.cat.codes.to_numpy()
        used = np.unique(codes[codes >= 0])
        labels = np.array(cats, dtype=object)[np.where(codes >= 0, codes, 0)]
        labels[codes < 0] = None
        return labels, [cats[j] for j in used]  # unused levels dropped, as lme4's model frame does
    present = s.notna().to_numpy()
    uniq = pd.unique(s[present])
    try:
        uniq = np.sort(np.asarray(uniq))
    except TypeError:
        raise TypeError(f"{what} mixes values that cannot be ordered") from None
    levels = level_labels(uniq)
    labels = np.full(len(s), None, dtype=object)
    if len(uniq):
        pos = pd.Index(uniq).get_indexer(s[present])
        labels[present] = np.array(levels, dtype=object)[pos]
    return labels, levels


@dataclass
class _FactorCoding:
    """How one factor is coded: its contrast, the name used in messages, optional explicit levels."""

    contrast: RContrast
    what: str
    levels: list | None = None

    def __call__(self, values, reduced_rank, drop_rows, encoder_state, model_spec):
        from formulaic.materializers.types import FactorValues

        raw = values.__wrapped__ if isinstance(values, FactorValues) else values
        s = raw if isinstance(raw, pd.Series) else pd.Series(np.asarray(raw))
        if len(drop_rows):
            s = s.drop(index=s.index[list(drop_rows)])
        labels, seen = _factor_labels(s, self.what)
        if "levels" in encoder_state:
            levels = encoder_state["levels"]
        else:
            levels = seen if self.levels is None else level_labels(self.levels)
            if len(levels) < 2:
                raise ValueError(f"{self.what} has {len(levels)} level{'' if len(levels) == 1 else 's'} "
                                 f"({', '.join(levels)}): contrasts can be applied only to factors with "
                                 "2 or more levels")
            encoder_state["levels"] = levels
        pos = pd.Index(levels).get_indexer(labels)
        bad = (pos < 0) & pd.notna(labels)
        if bad.any():
            new = sorted(set(labels[bad]))
            raise NewLevelError(
                f"{self.what} has level{'s' if len(new) > 1 else ''} {', '.join(map(repr, new[:5]))} that "
                f"the model was not fitted with (its levels: {', '.join(levels)})")
        if reduced_rank:
            C, names = self.contrast.coding(levels, self.what)
        else:  # R: a factor that spans the intercept gets one indicator per level
            C, names = np.eye(len(levels)), list(levels)
        X = np.where((pos >= 0)[:, None], C[np.maximum(pos, 0)], np.nan)
        return FactorValues(pd.DataFrame(X, columns=names, index=s.index), kind="categorical",
                            column_names=tuple(names), spans_intercept=not reduced_rank, drop_field=None,
                            format="{name}[{field}]", format_reduced="{name}[{field}]", encoded=True)


def _as_factor(values, contrast: RContrast, what: str, levels=None):
    from formulaic.materializers.types import FactorValues

    raw = values.__wrapped__ if isinstance(values, FactorValues) else values
    return FactorValues(raw, kind="categorical", spans_intercept=True,
                        encoder=_FactorCoding(contrast=contrast, what=what, levels=levels))


def _called(fn: str, x) -> str:
    """``factor(h)`` for messages, when the argument is a named column."""
    from formulaic.materializers.types import FactorValues

    raw = x.__wrapped__ if isinstance(x, FactorValues) else x
    name = getattr(raw, "name", None)
    return f"{fn}({name})" if isinstance(name, str) else f"{fn}(...)"


def _r_factor(x, levels=None):
    """R's ``factor(x)``: levels sorted (or as given), coded by ``contr.treatment``."""
    return _as_factor(x, RContrast("treatment"), _called("factor", x), levels)


def _r_ordered(x, levels=None):
    """R's ``ordered(x)``: an ordered factor, coded by ``contr.poly``."""
    return _as_factor(x, RContrast("poly"), _called("ordered", x), levels)


def _r_C(x, contr=None, base=None):
    """R's ``C(f, contr)``: a factor with the given contrasts (``contr.sum``, ``sum``, ``helmert``, ...)."""
    what = _called("C", x)
    spec = RContrast("treatment", base=base) if contr is None else resolve_contrast(_contrast_name(contr), what)
    return _as_factor(x, spec, what)


def _contrast_name(value):
    """R's ``C(f, sum)`` spelling: the bare names of codings (``sum`` is Python's builtin here)."""
    if value is sum:
        return "sum"
    if value is _r_poly:
        return "poly"
    if callable(value) and getattr(value, "__qualname__", "").startswith("_Registry."):
        return value()
    return value


# ----------------------------------------------------------------------------- R's functions
def _log(x, base=None):
    """R's ``log(x, base)``."""
    return np.log(x) if base is None else np.log(x) / np.log(base)


def _make_stateful():
    from formulaic.transforms import basis_spline, poly
    from formulaic.utils.stateful_transforms import stateful_transform

    @stateful_transform
    def bs(x, df=None, knots=None, degree=3, intercept=False, Boundary_knots=None, _state=None):
        """R's ``splines::bs`` (same arguments; values outside the boundary knots are extrapolated, as R does)."""
        lower, upper = (None, None) if Boundary_knots is None else (float(Boundary_knots[0]),
                                                                    float(Boundary_knots[1]))
        return basis_spline(x, df=df, knots=knots, degree=degree, include_intercept=bool(intercept),
                            lower_bound=lower, upper_bound=upper, extrapolation="extend", _state=_state)

    @stateful_transform
    def r_poly(x, degree=1, raw=False, _state=None):
        """R's ``poly(x, degree, raw)``: orthogonal (R's recurrence, kept for new data) or raw powers."""
        from formulaic.materializers.types import FactorValues

        if raw:
            x = np.asarray(x, dtype=float)
            return FactorValues(np.column_stack([x ** k for k in range(1, int(degree) + 1)]),
                                column_names=tuple(str(k) for k in range(1, int(degree) + 1)))
        return poly(x, degree=degree, _state=_state)

    return bs, r_poly


def _namespace() -> dict:
    from formulaic.transforms import TRANSFORMS, center, identity, scale

    bs, poly = _make_stateful()
    ns = {k: TRANSFORMS[k] for k in ("np", "log10", "log2", "exp", "cc", "cr", "cs", "lag")}
    ns.update({
        "log": _log, "log1p": np.log1p, "expm1": np.expm1, "sqrt": np.sqrt, "abs": np.abs,
        "sin": np.sin, "cos": np.cos, "tan": np.tan, "floor": np.floor, "ceiling": np.ceil,
        "I": identity, "scale": scale, "center": center, "poly": poly, "bs": bs,
        "factor": _r_factor, "as_factor": _r_factor, "ordered": _r_ordered, "as_ordered": _r_ordered,
        "as_numeric": lambda x: np.asarray(x, dtype=float), "C": _r_C, "contr": contr,
        "helmert": "contr.helmert", "treatment": "contr.treatment", "SAS": "contr.SAS",
        "c": lambda *values: np.array(values), "pi": np.pi,
    })
    return ns


R_FUNCTIONS = _namespace()
_r_poly = R_FUNCTIONS["poly"]

# R spellings that are not Python: dotted names, TRUE/FALSE
_R_TO_PY = {"as.factor": "as_factor", "as.ordered": "as_ordered", "as.numeric": "as_numeric",
            "Boundary.knots": "Boundary_knots", "TRUE": "True", "FALSE": "False"}
_PY_TO_R = {v: k for k, v in _R_TO_PY.items()} | {"None": "NULL"}


def to_python(text: str) -> str:
    """R spellings inside a formula's terms as Python: ``TRUE`` -> ``True``, ``as.factor`` -> ``as_factor``."""
    for r, py in _R_TO_PY.items():
        text = re.sub(rf"(?<![\w.]){re.escape(r)}(?![\w.])", py, text)
    return text


# ----------------------------------------------------------------------------- R's deparse (term labels)
_SPACED = {"+", "-", "*", "==", "!=", "<", ">", "<=", ">=", "&", "|"}
_TIGHT = {"/": "/", "**": "^", "%": "%%", "//": "%/%", ":": ":", "@": "@"}


def r_deparse(expr: str) -> str:
    """A (Python) expression as R's ``deparse`` writes it: ``bs(x, df = 4)``, ``I(x^2)``, ``exp(x/10)``."""
    try:
        toks = [t for t in tokenize.generate_tokens(io.StringIO(expr).readline)
                if t.type not in (tokenize.NEWLINE, tokenize.NL, tokenize.ENDMARKER, tokenize.INDENT,
                                  tokenize.DEDENT)]
    except (tokenize.TokenError, SyntaxError, IndentationError):
        return expr.replace(" ** ", "^").replace("**", "^")
    out: list[str] = []
    prev = None  # previous token (type, string)
    depth_call: list[bool] = []
    for t in toks:
        s = t.string
        unary_ctx = prev is None or (prev[0] == tokenize.OP and prev[1] not in (")", "]")) or \
            (prev[0] == tokenize.NAME and prev[1] in ("and", "or", "not"))
        if t.type == tokenize.NUMBER:
            try:
                out.append(r_number(float(s.replace("_", ""))))
            except ValueError:
                out.append(s)
        elif t.type == tokenize.STRING:
            try:
                val = ast.literal_eval(s)
                out.append('"' + str(val).replace("\\", "\\\\").replace('"', '\\"') + '"')
            except (ValueError, SyntaxError):
                out.append(s)
        elif t.type == tokenize.NAME:
            if s in ("and", "or"):
                out.append(" && " if s == "and" else " || ")
            elif s == "not":
                out.append("!")
            else:
                out.append(_PY_TO_R.get(s, s))
        elif s in ("(", "["):
            depth_call.append(s == "(")
            out.append(s)
        elif s in (")", "]"):
            if depth_call:
                depth_call.pop()
            out.append(s)
        elif s == ",":
            out.append(", ")
        elif s == "=":
            out.append(" = ")
        elif s in ("-", "+", "~") and unary_ctx:
            out.append(s)
        elif s in _SPACED:
            out.append(f" {s} ")
        elif s in _TIGHT:
            out.append(_TIGHT[s])
        else:
            out.append(s)
        prev = (t.type, s)
    return "".join(out)


def _r_label(factor) -> str:
    """R's label of a formulaic factor: a column name (backquoted if not syntactic) or a deparsed call."""
    if factor.eval_method.value == "lookup":
        name = factor.expr
        return name if re.fullmatch(r"(?:[A-Za-z]|\.(?![0-9]))[A-Za-z0-9._]*|\.", name) else f"`{name}`"
    return r_deparse(factor.expr)


def _r_column_name(col: str, factors) -> str:
    """R's name of one formulaic column of a term with these factors (``x:f[b]`` -> ``x:fb``)."""
    if col == "Intercept":
        return "(Intercept)"
    exprs = [f.expr for f in factors]
    out, pos = [], 0
    for i, (f, e) in enumerate(zip(factors, exprs)):
        if not col.startswith(e, pos):
            return _fallback_name(col)
        pos += len(e)
        label = _r_label(f)
        if col[pos:pos + 1] == "[":
            if i == len(exprs) - 1:
                end = len(col) - 1 if col.endswith("]") else -1
            else:
                end = col.find("]:" + exprs[i + 1], pos)
            if end < 0:
                return _fallback_name(col)
            label += col[pos + 1:end]
            pos = end + 1
        out.append(label)
        if i < len(exprs) - 1:
            if col[pos:pos + 1] != ":":
                return _fallback_name(col)
            pos += 1
    return ":".join(out) if pos == len(col) else _fallback_name(col)


def _fallback_name(name: str) -> str:
    name = re.sub(r"\[T\.([^\]]*)\]", r"\1", name)
    name = re.sub(r"\[([^\]]*)\]", r"\1", name)
    return name.replace(" ** ", "^").replace("**", "^")


# ----------------------------------------------------------------------------- variables of a formula
def _parse(rhs: str):
    import formulaic

    try:
        return formulaic.Formula(rhs)
    except Exception as exc:  # first line only, without formulaic's terminal colour codes
        msg = re.sub(r"\x1b\[[0-9;]*m", "", str(exc)).strip().splitlines()
        raise ValueError(f"malformed formula term {rhs!r}: {msg[0] if msg else type(exc).__name__}") from None


def _expr_names(expr: str) -> tuple[set[str], set[str]]:
    """Variables read by a Python expression, and the functions it calls.

    A name is a variable unless it is called (``log`` in ``log(x)``) or is the
    root of an attribute (``np`` in ``np.log(x)``, ``contr`` in ``contr.sum``).
    """
    try:
        tree = ast.parse(expr.replace("`", ""), mode="eval")
    except SyntaxError:
        raise ValueError(f"malformed term {expr!r} in the formula") from None
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
    return names - called - roots, called


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
                        f"formulas; available: {', '.join(sorted(_PY_TO_R.get(k, k) for k in R_FUNCTIONS if callable(R_FUNCTIONS[k])))}")
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


def _default_contrast(cls: str) -> RContrast:
    """R's ``options("contrasts")``: treatment for a factor, polynomial for an ordered one."""
    return RContrast("poly" if cls == "ordered" else "treatment")


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
        cls = (classes or {}).get(v) or variable_class(col)
        if cls == "numeric":
            numeric[v] = col if col.dtype != object else pd.to_numeric(col)
        else:
            c = contrasts.get(v) or _default_contrast(cls)
            context[v] = _as_factor(col, c, f"factor {v!r}")
    return pd.DataFrame(numeric, index=frame.index), context


def _materialize(build, what: str, rhs):
    try:
        return build()
    except (NewLevelError, TypeError) as exc:
        if isinstance(exc, NewLevelError) or "mixes" in str(exc):
            raise
        raise ValueError(f"could not build the {what} from {_shown(rhs)}: {exc}") from None
    except Exception as exc:  # formulaic wraps errors from inside our encoders; unwrap ours
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
            tree = ast.parse(f.expr.replace("`", ""), mode="eval")
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
    coding = {v: contrasts.get(v) or _default_contrast(c) for v, c in classes.items() if c != "numeric"}
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
            names.append(_r_column_name(col, list(entry.term.factors)))
    if len(names) != mm.shape[1]:  # structure and matrix disagree: fall back to the matrix's names
        names = [_fallback_name(c) if c != "Intercept" else "(Intercept)" for c in mm.columns]
    return names
