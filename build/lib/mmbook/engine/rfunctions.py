"""R's functions and R's factors inside the terms of a formula.

* :data:`R_FUNCTIONS` - what a term may call: ``log`` (with ``base``),
  ``exp``, ``sqrt``, ``abs``, ``factor``/``as.factor``, ``ordered``,
  ``scale``, ``poly`` (orthogonal or raw), ``bs`` (R's arguments), ``I``,
  ``C``, ``c``. The stateful ones (``scale``, ``poly``, ``bs``) keep their
  fitted state (centre and scale, polynomial coefficients, knots), so new
  data are transformed as R's ``predict`` does through ``makepredictcall``.
* R's factors: a string, boolean or categorical column (or ``factor(x)``) is
  coded with R's levels (sorted numbers or strings, a categorical's own
  order, unused levels dropped; ``FALSE``, ``TRUE`` for a boolean) and R's
  contrasts (:mod:`mmbook.engine.contrasts`). The levels are kept with the
  fit: new data with a level it never saw raise :class:`NewLevelError`
  instead of being coded as the base level.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .contrasts import RContrast, contr, resolve_contrast
from .rnames import level_labels

__all__ = ["R_FUNCTIONS", "NewLevelError", "variable_class", "check_class", "as_factor", "default_contrast"]


class NewLevelError(ValueError):
    """New data hold a level of a factor that the fit never saw (R: ``factor ... has new levels``)."""


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
        if len(kinds) == 1:
            raise TypeError(f"column {col.name!r} holds {kinds[0]} values, which a model formula cannot use; "
                            "convert it to numbers or to strings")
        raise TypeError(f"column {col.name!r} mixes types ({', '.join(kinds)}); "
                        "make it all strings (a factor) or all numbers")
    raise TypeError(f"column {col.name!r} has dtype {dt}, which a model formula cannot use; "
                    "convert it to numbers or to strings/categorical")



_SAME = {"factor": {"factor", "ordered"}, "ordered": {"factor", "ordered"}, "numeric": {"numeric"},
         "logical": {"logical"}}


def check_class(col: pd.Series, fitted: str) -> None:
    """New data's column must be of the kind the fit read (R's ``.checkMFClasses``).

    Strings are accepted for a factor or an ordered factor (their levels and
    order come from the fit); an all-missing column passes (its rows predict NaN).

    Raises
    ------
    TypeError
        E.g. strings for a numeric variable (R: "variable 'x' was fitted with
        type "numeric" but type "character" was supplied").
    """
    if col.isna().all():
        return
    given = variable_class(col)
    if given not in _SAME[fitted]:
        raise TypeError(f"variable {col.name!r} was fitted as {fitted} but newdata gives {given} "
                        f"(dtype {col.dtype}); convert the column to the fitted kind")


def _factor_codes(s: pd.Series, what: str) -> tuple[np.ndarray, list[str], np.ndarray]:
    """Integer codes of a factor's values, R's labels of the codes, and the codes in use (R's order).

    A categorical keeps its categories' order; other values are sorted
    (numbers numerically, strings by code point). Missing values get code -1.
    """
    if isinstance(s.dtype, pd.CategoricalDtype):
        codes = s.cat.codes.to_numpy().astype(np.int64)
        used = np.flatnonzero(np.bincount(codes[codes >= 0], minlength=len(s.cat.categories)))
        return codes, level_labels(s.cat.categories), used  # unused levels dropped, as lme4's model frame does
    try:
        codes, uniq = pd.factorize(s, sort=True)
    except TypeError:
        raise TypeError(f"{what} mixes values that cannot be ordered") from None
    return codes.astype(np.int64), level_labels(np.asarray(uniq)), np.arange(len(uniq))


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
        codes, labels, used = _factor_codes(s, self.what)
        if "levels" in encoder_state:
            levels = encoder_state["levels"]
        else:
            levels = [labels[j] for j in used] if self.levels is None else level_labels(self.levels)
            if len(levels) < 2:
                raise ValueError(f"{self.what} has {len(levels)} level{'' if len(levels) == 1 else 's'} "
                                 f"({', '.join(levels)}): contrasts can be applied only to factors with "
                                 "2 or more levels")
            encoder_state["levels"] = levels
        where = pd.Index(levels).get_indexer(labels)  # each code's position among the levels (-1: new)
        pos = np.where(codes >= 0, where[np.maximum(codes, 0)] if len(where) else -1, -1)
        bad = (pos < 0) & (codes >= 0)
        if bad.any():
            new = sorted({labels[c] for c in np.unique(codes[bad])})
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


def as_factor(values, contrast: RContrast, what: str, levels=None):
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
    return as_factor(x, RContrast("treatment"), _called("factor", x), levels)


def _r_ordered(x, levels=None):
    """R's ``ordered(x)``: an ordered factor, coded by ``contr.poly``."""
    return as_factor(x, RContrast("poly"), _called("ordered", x), levels)


def _r_C(x, contr=None, base=None):
    """R's ``C(f, contr)``: a factor with the given contrasts (``contr.sum``, ``sum``, ``helmert``, ...)."""
    what = _called("C", x)
    spec = RContrast("treatment", base=base) if contr is None else resolve_contrast(_contrast_name(contr), what)
    return as_factor(x, spec, what)


def _contrast_name(value):
    """R's ``C(f, poly)`` and ``C(f, contr.sum)`` spellings: a coding's function stands for the coding."""
    if value is R_FUNCTIONS["poly"]:
        return "poly"
    if callable(value) and getattr(value, "__qualname__", "").startswith("_Registry."):
        return value()
    return value


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

        if not _state and len(np.unique(np.asarray(x, dtype=float))) <= int(degree):
            raise ValueError(f"poly(): degree {int(degree)} needs more than {int(degree)} distinct values; "
                             f"the variable has {len(np.unique(np.asarray(x, dtype=float)))} "
                             "(R: 'degree' must be less than number of unique points)")
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
        "helmert": "contr.helmert", "treatment": "contr.treatment", "SAS": "contr.SAS", "sum": "contr.sum",
        "c": lambda *values: np.array(values), "pi": np.pi, "pmin": np.minimum, "pmax": np.maximum,
        "round": lambda x, digits=0: np.round(x, digits), "sign": np.sign, "trunc": np.trunc,
    })
    # R's pkg::fn spelling (rnames.to_python writes it pkg_ns_fn)
    packages = {"base": ["log", "log10", "log2", "log1p", "exp", "expm1", "sqrt", "abs", "sin", "cos", "tan",
                         "floor", "ceiling", "I", "scale", "factor", "as_factor", "ordered", "as_ordered",
                         "as_numeric", "c", "pmin", "pmax", "round", "sign", "trunc"],
                "stats": ["poly", "C"], "splines": ["bs"]}
    for pkg, names in packages.items():
        ns.update({f"{pkg}_ns_{k}": ns[k] for k in names})
    return ns


R_FUNCTIONS = _namespace()


def default_contrast(cls: str) -> RContrast:
    """R's ``options("contrasts")``: treatment for a factor, polynomial for an ordered one."""
    return RContrast("poly" if cls == "ordered" else "treatment")
