"""How R writes things: numbers as factor labels, calls as term labels, model-matrix column names.

* :func:`r_number` - a double as ``as.character`` writes it (the label of a
  numeric factor level: ``1``, ``2.5``, ``1e+05``);
* :func:`r_deparse` - an expression as ``deparse`` writes it (the label of a
  term: ``bs(x, df = 4)``, ``I(x^2)``, ``exp(x/10)``);
* :func:`column_name` - a model-matrix column as ``model.matrix`` names it
  (``(Intercept)``, ``x:fb``, ``poly(x, 2)1``);
* :func:`to_python` / :func:`r_spelling` - the few R spellings inside terms
  that Python does not read (``TRUE``, ``as.factor``, ``Boundary.knots``).
"""

from __future__ import annotations

import ast
import io
import re
import tokenize

import numpy as np

__all__ = ["r_number", "level_labels", "to_python", "r_spelling", "r_deparse", "term_label", "column_name",
           "fallback_name"]


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


# R spellings that are not Python: dotted names, TRUE/FALSE
_R_TO_PY = {"as.factor": "as_factor", "as.ordered": "as_ordered", "as.numeric": "as_numeric",
            "Boundary.knots": "Boundary_knots", "TRUE": "True", "FALSE": "False"}
_PY_TO_R = {v: k for k, v in _R_TO_PY.items()} | {"None": "NULL"}


_NS = "_ns_"  # R's pkg::fn is written pkg_ns_fn in Python


def r_spelling(name: str) -> str:
    """R's spelling of a Python name used in terms (``as_factor`` -> ``as.factor``, ``splines_ns_bs`` -> ``splines::bs``)."""
    if _NS in name:
        pkg, _, fn = name.partition(_NS)
        return f"{pkg}::{r_spelling(fn)}"
    return _PY_TO_R.get(name, name)


def to_python(text: str) -> str:
    """R spellings inside a formula's terms as Python.

    ``TRUE`` -> ``True``, ``as.factor`` -> ``as_factor``, ``splines::bs`` ->
    ``splines_ns_bs`` (:func:`r_spelling` reverses each).
    """
    for r, py in _R_TO_PY.items():
        text = re.sub(rf"(?<![\w.]){re.escape(r)}(?![\w.])", py, text)
    return re.sub(r"\b([A-Za-z][A-Za-z0-9.]*)::([A-Za-z_.][A-Za-z0-9_.]*)",
                  lambda m: f"{m.group(1)}{_NS}{_R_TO_PY.get(m.group(2), m.group(2))}", text)


_SPACED = {"+", "-", "*", "==", "!=", "<", ">", "<=", ">=", "&", "|"}
_TIGHT = {"/": "/", "**": "^", "%": "%%", "//": "%/%", ":": ":", "@": "@"}


def r_deparse(expr: str) -> str:
    """A (Python) expression as R's ``deparse`` writes it: ``bs(x, df = 4)``, ``I(x^2)``, ``exp(x/10)``."""
    quoted: dict[str, str] = {}  # `my x` -> a placeholder name while tokenizing

    def hold(m):
        key = f"_bq{len(quoted)}_"
        quoted[key] = m.group(0)
        return key

    expr = re.sub(r"`[^`]*`", hold, expr)
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
                out.append(quoted.get(s) or r_spelling(s))
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


def term_label(factor) -> str:
    """R's label of a formulaic factor: a column name (backquoted if not syntactic) or a deparsed call."""
    if factor.eval_method.value == "lookup":
        name = factor.expr
        return name if re.fullmatch(r"(?:[A-Za-z]|\.(?![0-9]))[A-Za-z0-9._]*|\.", name) else f"`{name}`"
    return r_deparse(factor.expr)


def column_name(col: str, factors) -> str:
    """R's name of one formulaic column of a term with these factors (``x:f[b]`` -> ``x:fb``)."""
    if col == "Intercept":
        return "(Intercept)"
    exprs = [f.expr for f in factors]
    out, pos = [], 0
    for i, (f, e) in enumerate(zip(factors, exprs)):
        if not col.startswith(e, pos):
            return fallback_name(col)
        pos += len(e)
        label = term_label(f)
        if col[pos:pos + 1] == "[":
            if i == len(exprs) - 1:
                end = len(col) - 1 if col.endswith("]") else -1
            else:
                end = col.find("]:" + exprs[i + 1], pos)
            if end < 0:
                return fallback_name(col)
            label += col[pos + 1:end]
            pos = end + 1
        out.append(label)
        if i < len(exprs) - 1:
            if col[pos:pos + 1] != ":":
                return fallback_name(col)
            pos += 1
    return ":".join(out) if pos == len(col) else fallback_name(col)


def fallback_name(name: str) -> str:
    """R's name from formulaic's column name alone (``f[T.b]`` -> ``fb``, ``I(x ** 2)`` -> ``I(x^2)``)."""
    name = re.sub(r"\[T\.([^\]]*)\]", r"\1", name)
    name = re.sub(r"\[([^\]]*)\]", r"\1", name)
    return name.replace(" ** ", "^").replace("**", "^")


