"""lme4's ``update``: the same model fitted again with a changed formula, data or criterion.

A fit records how it was made (:class:`FitCall`, lme4's ``getCall``);
:func:`update` changes some of the arguments and makes the call again.

The formula is changed with R's ``update.formula`` arithmetic, extended to
lme4's random-effects terms:

* on the left, ``.`` is the old response (also inside an expression:
  ``log(.) ~ .`` gives ``log(y) ~ ...``); a formula without a left side
  (``"~ . + x"``) keeps the response;
* on the right, ``.`` is the old terms; ``+ term`` adds a term, ``- term``
  removes one: fixed terms (``a*b`` stands for ``a``, ``b``, ``a:b``, as in R)
  and random-effects terms (``(1 | g)``; ``(x || g)`` and ``(1 | a/b)`` stand
  for the terms they expand to); ``- 1`` or ``+ 0`` drops the intercept and
  ``+ 1`` restores it.

The result lists the terms as R's ``terms.formula(simplify = TRUE)`` does:
by their order (a random-effects term counts as a main effect), and in order
of appearance within an order, so ``y ~ a*b + (1 | g)`` updated with
``. ~ . + z`` is ``y ~ a + b + (1 | g) + z + a:b``.
"""

from __future__ import annotations

import inspect
import re
from dataclasses import dataclass, field

from .formula import BarTerm, parse_formula, split_top_level, strip_outer_parens

__all__ = ["FitCall", "update", "update_formula", "fixed_terms", "term_key"]

_DOT = re.compile(r"(?<![A-Za-z0-9_.])\.(?![A-Za-z0-9_.])")


@dataclass(frozen=True)
class FitCall:
    """How a fit was made: the fitting function and its arguments (lme4's ``getCall``).

    Attributes
    ----------
    fun : callable
        The function that made the fit (:func:`mmbook.lmer`).
    args : dict
        Its arguments by name.
    """

    fun: object
    args: dict = field(default_factory=dict)

    def with_args(self, **changes) -> "FitCall":
        """The same call with some arguments changed."""
        return FitCall(self.fun, {**self.args, **changes})


# ------------------------------------------------------------------ formula terms
def term_key(factors) -> frozenset:
    """A term's identity: its factors, without spaces and with ``**`` written ``^`` (``b:a`` is ``a:b``)."""
    return frozenset(re.sub(r"\s+", "", str(f)).replace("**", "^") for f in factors)


@dataclass
class _Fixed:
    label: str
    key: frozenset
    degree: int


@dataclass
class _Random:
    text: str
    bars: list  # of BarTerm

    @property
    def degree(self) -> int:
        return 1


def _bar_key(b: BarTerm) -> tuple:
    return (b.group, b.expr.replace(" ", ""))


def _random_items(piece: str) -> list[_Random] | None:
    """The random-effects terms of ``piece`` (None if it is not one).

    ``((1 | h) + (0 + x | h))``, lme4's printed form of ``(x || h)``, is split
    into its terms.
    """
    inner = strip_outer_parens(piece)
    if inner is None or "|" not in inner:
        return None
    depth, top_bar = 0, False
    for ch in inner:
        depth += ch == "("
        depth -= ch == ")"
        top_bar = top_bar or (ch == "|" and depth == 0)
    if not top_bar:
        out = []
        for _, p in split_top_level(inner, "+"):
            sub = _random_items(p.strip())
            if sub is None:
                raise ValueError(f"malformed random-effects term {piece!r}")
            out += sub
        return out
    try:
        bars = parse_formula(f"update_response ~ 0 + {piece}").random
    except ValueError as exc:
        raise ValueError(f"malformed random-effects term {piece!r}: {exc}") from None
    return [_Random(text=piece, bars=list(bars))]


def _fixed_items(piece: str) -> list[_Fixed]:
    import formulaic

    if _DOT.search(piece):
        raise ValueError(f"'.' can only stand on its own in an update formula (as in '. ~ . + x'), not in {piece!r}")
    try:
        terms = [t for t in formulaic.Formula(piece) if t.degree > 0]
    except Exception as exc:  # formulaic's parse errors: first line only
        msg = re.sub(r"\x1b\[[0-9;]*m", "", str(exc)).strip().splitlines()
        raise ValueError(f"malformed formula term {piece!r}: {msg[0] if msg else type(exc).__name__}") from None
    if len(terms) == 1:
        return [_Fixed(label=re.sub(r"\s+", " ", piece.strip()), key=term_key(terms[0].factors),
                       degree=terms[0].degree)]
    return [_Fixed(label=str(t).replace(" ** ", "^").replace("**", "^"), key=term_key(t.factors), degree=t.degree)
            for t in terms]


class _Terms:
    """The right-hand side of a formula as R's terms: an intercept flag and ordered terms."""

    def __init__(self):
        self.intercept = True
        self.items: list = []

    def copy(self) -> "_Terms":
        out = _Terms()
        out.intercept = self.intercept
        out.items = list(self.items)
        return out

    def _fixed_keys(self):
        return {it.key for it in self.items if isinstance(it, _Fixed)}

    def _bar_keys(self):
        return {_bar_key(b) for it in self.items if isinstance(it, _Random) for b in it.bars}

    def add(self, new: list):
        for it in new:
            if isinstance(it, _Fixed) and it.key not in self._fixed_keys():
                self.items.append(it)
            elif isinstance(it, _Random):
                have = self._bar_keys()
                if not all(_bar_key(b) in have for b in it.bars):
                    self.items.append(it)

    def remove(self, gone: list, piece: str):
        fixed = {it.key for it in gone if isinstance(it, _Fixed)}
        bars = {_bar_key(b) for it in gone if isinstance(it, _Random) for b in it.bars}
        found = set()
        out = []
        for it in self.items:
            if isinstance(it, _Fixed):
                if it.key in fixed:
                    found.add(it.key)
                    continue
                out.append(it)
            else:
                keep = [b for b in it.bars if _bar_key(b) not in bars]
                found |= {_bar_key(b) for b in it.bars if _bar_key(b) in bars}
                if len(keep) == len(it.bars):
                    out.append(it)
                else:  # what is left of a term written as one ((x || g), (1 | a/b)): its terms one by one
                    out += [_Random(text=f"({b.expr} | {b.group})", bars=[b]) for b in keep]
        if found != fixed | bars:
            raise ValueError(f"cannot remove {piece!r}: the formula has no such term (its terms: "
                             f"{', '.join(self.labels()) or 'none'})")
        self.items = out

    def labels(self) -> list[str]:
        ordered = sorted(self.items, key=lambda it: it.degree)  # stable: order of appearance within a degree
        return [it.label if isinstance(it, _Fixed) else it.text for it in ordered]

    def text(self) -> str:
        labels = self.labels()
        if not labels:
            return "1" if self.intercept else "0"
        return " + ".join(labels) + ("" if self.intercept else " - 1")


def _parse_rhs(rhs: str, old: _Terms | None = None) -> _Terms:
    """R's terms of a right-hand side; ``.`` stands for ``old``."""
    out = _Terms() if old is None else None
    for sign, piece in split_top_level(rhs, "+-"):
        piece = piece.strip()
        if piece == "":
            if sign == "+":
                continue
            raise ValueError(f"malformed formula: empty term in {rhs!r}")
        if piece == ".":
            if old is None:
                raise ValueError("'.' in a formula that has no previous formula to stand for")
            if sign == "-":
                raise ValueError("'- .' is not supported in an update formula")
            if out is None:
                out = old.copy()
            else:
                out.add(old.items)
                out.intercept = out.intercept and old.intercept
            continue
        if out is None:  # a new formula without '.': start empty, as R
            out = _Terms()
        if piece in ("0", "1"):
            out.intercept = (piece == "1") == (sign == "+")
            continue
        items = _random_items(piece)
        if items is None:
            items = _fixed_items(piece)
        if sign == "+":
            out.add(items)
        else:
            out.remove(items, piece)
    return out if out is not None else _Terms()


def _split(formula: str) -> tuple[str, str]:
    if not isinstance(formula, str):
        raise TypeError(f"formula must be a string such as '. ~ . - x', got {type(formula).__name__}")
    if formula.count("~") != 1:
        raise ValueError(f"malformed formula {formula!r}: it needs exactly one '~'")
    lhs, rhs = (p.strip() for p in formula.split("~"))
    if not rhs:
        raise ValueError(f"malformed formula {formula!r}: nothing on the right of '~'")
    return lhs, rhs


def update_formula(old: str, new: str) -> str:
    """R's ``update.formula(old, new)`` on lme4 formulas (see the module docstring).

    Parameters
    ----------
    old : str
        The model's formula, e.g. ``"y ~ x * f + (1 | g)"``.
    new : str
        The change, e.g. ``". ~ . - x:f"``, ``"~ . + (1 | h)"``, ``"log(.) ~ ."``.

    Returns
    -------
    str

    Raises
    ------
    ValueError
        A malformed formula; ``- term`` for a term the formula does not
        have; ``.`` inside a term (``a*.``), which is not supported.

    Examples
    --------
    >>> update_formula("y ~ a*b + x + (1 | g)", ". ~ . - x + (0 + x | g)")
    'y ~ a + b + (1 | g) + (0 + x | g) + a:b'
    """
    old_lhs, old_rhs = _split(old)
    new_lhs, new_rhs = _split(new)
    lhs = old_lhs if not new_lhs else _DOT.sub(lambda m: old_lhs, new_lhs)
    if not lhs:
        raise ValueError(f"the updated formula has no response: {old!r} updated with {new!r}")
    terms = _parse_rhs(new_rhs, _parse_rhs(old_rhs))
    return f"{lhs} ~ {terms.text()}"


def fixed_terms(formula: str) -> list[tuple[str, frozenset, int]]:
    """R's fixed-effects term labels of a formula, in R's order: ``(label, key, degree)``."""
    _, rhs = _split(formula)
    terms = _parse_rhs(rhs)
    ordered = sorted((it for it in terms.items if isinstance(it, _Fixed)), key=lambda it: it.degree)
    return [(it.label, it.key, it.degree) for it in ordered]


# ------------------------------------------------------------------------ update
def update(fit, formula: str | None = None, data=None, REML: bool | None = None, **kwargs):
    """The model of ``fit`` fitted again with some of its arguments changed (lme4's ``update``).

    Parameters
    ----------
    fit : LmerFit
    formula : str, optional
        A change of formula in R's notation (:func:`update_formula`):
        ``". ~ . - x"``, ``". ~ . + z"``, ``"~ . + (1 | h)"``, ``"log(.) ~ ."``.
    data : DataFrame, optional
        New data.
    REML : bool, optional
        Fit by REML (True) or ML (False).
    **kwargs
        Any other argument of the function that made the fit
        (:func:`mmbook.lmer`), e.g. ``control``.

    Returns
    -------
    LmerFit

    Raises
    ------
    ValueError
        The fit has no record of how it was made, or a bad formula change.
    TypeError
        An argument the fitting function does not take.

    Examples
    --------
    >>> import mmbook
    >>> fit = mmbook.lmer("Reaction ~ Days + (Days | Subject)", mmbook.load_sleepstudy())
    >>> mmbook.update(fit, ". ~ . - (Days | Subject) + (1 | Subject)").formula
    'Reaction ~ Days + (1 | Subject)'
    """
    call = getattr(fit, "call", None)
    if call is None:
        raise ValueError("this fit has no record of the call that made it (it was not made by mmbook.lmer); "
                         "fit the changed model with mmbook.lmer directly")
    params = inspect.signature(call.fun).parameters
    bad = [k for k in kwargs if k not in params]
    if bad:
        raise TypeError(f"update: {getattr(call.fun, '__name__', 'the fitting function')} has no argument "
                        f"{bad[0]!r} (its arguments: {', '.join(params)})")
    args = dict(call.args)
    if formula is not None:
        args["formula"] = update_formula(args["formula"], formula)
    if data is not None:
        args["data"] = data
    if REML is not None:
        args["REML"] = bool(REML)
    args.update(kwargs)
    return call.fun(**args)
