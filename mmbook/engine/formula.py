"""lme4's model formula: a fixed part and random-effects terms.

A mixed-model formula reads ``response ~ fixed + (expr | group) + ...``.
The fixed part is an ordinary (Wilkinson-Rogers) formula and is handed to
formulaic; this module only parses what formulaic does not know, the
random-effects terms:

* ``(expr | g)`` - the columns of ``expr`` (intercept included unless
  ``0 +`` or ``- 1``) vary by the levels of ``g``, correlated;
* ``(expr || g)`` - the same columns, uncorrelated: lme4 expands it into
  ``(1 | g) + (0 + x1 | g) + ...``, one term per model term of ``expr``;
* ``(expr | a/b)`` - nested: ``(expr | a) + (expr | a:b)``;
* ``(expr | a:b)`` - the interaction of two factors as one grouping factor.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["BarTerm", "MixedFormula", "parse_formula", "split_top_level", "strip_outer_parens"]


@dataclass(frozen=True)
class BarTerm:
    """One random-effects term ``(expr | group)`` after expansion.

    Attributes
    ----------
    expr : str
        Right-hand side of the term's model matrix, e.g. ``"1 + Days"`` or
        ``"0 + Days"``; it is evaluated like a formula right-hand side, so
        it has an intercept unless it says ``0 +`` or ``- 1``.
    group : str
        Grouping factor, a column name or an interaction ``"a:b"``.
    text : str
        The term as lme4 prints it, e.g. ``"Days | Subject"``.
    """

    expr: str
    group: str
    text: str

    @property
    def group_vars(self) -> list[str]:
        """Variables of the grouping factor, slowest-varying first (``"c:(b:a)"`` -> c, b, a)."""
        return [g.strip("() ") for g in self.group.split(":")]


@dataclass(frozen=True)
class MixedFormula:
    """A parsed lme4 formula.

    Attributes
    ----------
    text : str
        The formula as written (whitespace normalised).
    response : str
        Left-hand side, e.g. ``"Reaction"``.
    fixed : str
        Right-hand side of the fixed-effects part, e.g. ``"Days"`` or
        ``"1"``; always a valid formulaic right-hand side.
    random : tuple of BarTerm
        Random-effects terms in the order written, after ``||`` and ``/``
        have been expanded.
    offsets : tuple of str
        Expressions of the ``offset(...)`` terms (``"log(n)"`` for
        ``offset(log(n))``), each once: R's ``terms`` keeps one copy of a
        repeated term.
    """

    text: str
    response: str
    fixed: str
    random: tuple[BarTerm, ...]
    offsets: tuple[str, ...] = ()


def split_top_level(s: str, seps: str = "+") -> list[tuple[str, str]]:
    """Split ``s`` at the characters in ``seps`` that are not inside brackets.

    Returns a list of ``(sign, piece)`` pairs, where ``sign`` is the
    separator that preceded the piece (``"+"`` for the first one).
    """
    out, depth, start, sign = [], 0, 0, "+"
    for i, ch in enumerate(s):
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
            if depth < 0:
                raise ValueError(f"malformed formula: unbalanced ')' in {s!r}")
        elif depth == 0 and ch in seps:
            # a '-' or '+' right after an operator ('**', 'e') belongs to the operand
            prev = s[:i].rstrip()
            if ch in "+-" and (prev == "" or prev[-1] in "*/^(,=:~"):
                continue
            out.append((sign, s[start:i].strip()))
            sign, start = ch, i + 1
    if depth != 0:
        raise ValueError(f"malformed formula: unbalanced '(' in {s!r}")
    out.append((sign, s[start:].strip()))
    return out


def strip_outer_parens(s: str) -> str | None:
    """``"(a | b)"`` -> ``"a | b"`` if one pair of brackets encloses all of ``s``.

    Parameters
    ----------
    s : str
        A term of a formula; surrounding white space is ignored.

    Returns
    -------
    str or None
        What the outer brackets enclose (not stripped), or None when ``s`` is
        not one bracketed expression (``"(a) + (b)"``, ``"a"``).
    """
    s = s.strip()
    if not (s.startswith("(") and s.endswith(")")):
        return None
    depth = 0
    for i, ch in enumerate(s):
        depth += ch == "("
        depth -= ch == ")"
        if depth == 0 and i < len(s) - 1:
            return None
    return s[1:-1]


def _find_bar(inner: str) -> tuple[int, int] | None:
    """Position and width of a top-level ``|`` or ``||`` in ``inner``."""
    depth = 0
    for i, ch in enumerate(inner):
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif ch == "|" and depth == 0:
            width = 2 if inner[i:i + 2] == "||" else 1
            return i, width
    return None


_NAME = r"[A-Za-z_.][A-Za-z0-9_.]*"


def _expand_group(group: str, term: str) -> list[str]:
    """Grouping factors of a term, named as lme4 names them.

    ``a`` -> ``[a]``; ``a:b`` -> ``[a:b]``; nesting ``a/b`` -> ``[b:a, a]`` and
    ``a/b/c`` -> ``[c:(b:a), b:a, a]`` (lme4's ``expandSlash``: the innermost
    factor first, written before the factors it is nested in).
    """
    group = re.sub(r"\s+", "", group)
    if not group:
        raise ValueError(f"malformed random-effects term ({term}): no grouping factor after '|'")
    parts = group.split("/")
    for part in parts:
        for v in part.split(":"):
            if not re.fullmatch(_NAME, v):
                raise ValueError(
                    f"malformed random-effects term ({term}): grouping factor {v!r} "
                    "must be a column name (use a:b for an interaction, a/b for nesting)")
    out = [parts[0]]
    for part in parts[1:]:
        prev = out[0]
        out.insert(0, f"{part}:({prev})" if ":" in prev else f"{part}:{prev}")
    return out


def _expr_terms(expr: str) -> tuple[bool, list[str]]:
    """Intercept flag and the non-intercept terms of a term's left-hand side."""
    intercept = True
    terms = []
    for sign, piece in split_top_level(expr, "+-"):
        if piece in ("", "1") and sign == "+":
            if piece == "1":
                intercept = True
            continue
        if piece in ("0", "-1") or (piece == "1" and sign == "-"):
            intercept = False
            continue
        if sign == "-":
            raise ValueError(f"removing terms other than the intercept is not supported in ({expr})")
        terms.append(piece)
    return intercept, terms


def _bar_terms(inner: str, term_text: str) -> list[BarTerm]:
    pos = _find_bar(inner)
    assert pos is not None
    i, width = pos
    lhs, rhs = inner[:i].strip(), inner[i + width:].strip()
    if not lhs:
        raise ValueError(f"malformed random-effects term ({term_text}): nothing before '|'")
    if _find_bar(rhs) is not None:
        raise ValueError(f"malformed random-effects term ({term_text}): more than one '|'")
    groups = _expand_group(rhs, term_text)
    intercept, terms = _expr_terms(lhs)
    if width == 1:
        expr = " + ".join((["1"] if intercept else ["0"]) + terms)
        return [BarTerm(expr=expr, group=g, text=f"{_deparse(lhs)} | {g}") for g in groups]
    # lme4's expandDoubleVerts: one uncorrelated term per model term, each of which is
    # then expanded over nested factors: (1 + x || a/b) -> (1 | b:a) + (1 | a) + (0 + x | b:a) + (0 + x | a)
    cols = _double_vert_columns(intercept, terms)
    if not cols:
        raise ValueError(f"malformed random-effects term ({term_text}): no columns")
    return [BarTerm(expr=c, group=g, text=f"{c} | {g}") for c in cols for g in groups]


def _double_vert_columns(intercept: bool, terms: list[str]) -> list[str]:
    return (["1"] if intercept else []) + [f"0 + {t}" for t in terms]


def _deparse(s: str) -> str:
    """Normalise spacing the way R's deparse prints a formula."""
    s = re.sub(r"\s+", " ", s.strip())
    s = s.replace("**", "^")
    s = re.sub(r"\s*([+~|*])\s*", r" \1 ", s)
    s = s.replace(" *  * ", "^").replace(" * * ", "^")
    s = re.sub(r"\s*\|\s*\|\s*", " || ", s)
    s = re.sub(r"\s*([/:^])\s*", r"\1", s)  # R writes a/b, a:b, x^2 without spaces
    s = re.sub(r"\s*,\s*", ", ", s)  # f(x, 2), g(x, df = 4)
    s = re.sub(r"\s*(?<![=<>!])=(?!=)\s*", " = ", s)
    s = re.sub(r" +", " ", s)
    return s.strip()


def _call_powers(s: str) -> str:
    """R's ``^`` inside a function call is arithmetic (``I(x^2)``, ``log(x^2)``): write it ``**``.

    Outside calls ``^`` stays the formula operator (``(a + b)^2``, all
    interactions up to order 2), as in R.
    """
    out, calls = [], []
    for i, ch in enumerate(s):
        if ch == "(":
            prev = s[:i].rstrip()
            calls.append(bool(prev) and (prev[-1].isalnum() or prev[-1] in "._"))
        elif ch == ")" and calls:
            calls.pop()
        elif ch == "^" and any(calls):
            out.append("**")
            continue
        out.append(ch)
    return "".join(out)


def parse_formula(formula: str) -> MixedFormula:
    """Parse an lme4 model formula.

    Parameters
    ----------
    formula : str
        ``"response ~ fixed terms + (expr | group) + ..."``. The fixed part
        may use ``0 +``/``- 1``, ``a*b``, ``a:b`` and transforms such as
        ``I(x^2)`` (R's spelling; ``I(x**2)`` also works); random terms may
        use ``|``, ``||``, ``a/b`` and ``a:b``.

    Returns
    -------
    MixedFormula

    Raises
    ------
    ValueError
        If the formula is malformed: no or several ``~``, no response,
        unbalanced brackets, an empty or malformed random-effects term.

    Examples
    --------
    >>> f = parse_formula("Reaction ~ Days + (Days | Subject)")
    >>> f.fixed, [(t.expr, t.group) for t in f.random]
    ('Days', [('1 + Days', 'Subject')])
    """
    if not isinstance(formula, str):
        raise TypeError(f"formula must be a string such as 'y ~ x + (1 | g)', got {type(formula).__name__}")
    text = _call_powers(formula.strip())
    if text.count("~") != 1:
        raise ValueError(f"malformed formula {formula!r}: it needs exactly one '~' between response and terms")
    lhs, rhs = (p.strip() for p in text.split("~"))
    if not lhs:
        raise ValueError(f"malformed formula {formula!r}: no response on the left of '~'")
    if not rhs:
        raise ValueError(f"malformed formula {formula!r}: no terms on the right of '~'")
    for part in (lhs, rhs):
        if part.count("(") != part.count(")"):
            raise ValueError(f"malformed formula {formula!r}: unbalanced brackets")

    fixed_parts: list[str] = []
    random: list[BarTerm] = []
    offsets: list[str] = []
    shown_fixed: list[str] = []
    for sign, piece in split_top_level(rhs, "+-"):
        if piece == "":
            if sign == "+" and not fixed_parts and not random:
                continue  # leading sign
            raise ValueError(f"malformed formula {formula!r}: empty term")
        inner = strip_outer_parens(piece)
        if inner is not None and _find_bar(inner) is not None:
            if sign == "-":
                raise ValueError(f"malformed formula {formula!r}: a random-effects term cannot be removed with '-'")
            random.extend(_bar_terms(inner, _deparse(inner)))
        elif "|" in piece:
            raise ValueError(
                f"malformed formula {formula!r}: random-effects terms must be written in brackets, "
                f"like (1 | g); got {piece!r}")
        elif (off := _offset_expr(piece, formula)) is not None:
            if sign == "-":
                raise ValueError(f"malformed formula {formula!r}: an offset cannot be removed with '-'")
            if off not in offsets:
                offsets.append(off)
            shown_fixed.append(piece)
        else:
            fixed_parts.append(piece if sign == "+" else f"- {piece}")
            shown_fixed.append(fixed_parts[-1])
    fixed = " + ".join(fixed_parts).replace("+ -", "-") if fixed_parts else "1"
    if all(p.startswith("-") for p in fixed_parts) and fixed_parts:
        fixed = "1 " + " ".join(fixed_parts)
    shown = _deparse(lhs) + " ~ " + " + ".join(
        [_deparse(p) for p in shown_fixed] + [_show_bar(t) for t in _raw_bars(rhs)])
    shown = shown.replace("+ -", "-")
    return MixedFormula(text=shown, response=lhs, fixed=fixed, random=tuple(random), offsets=tuple(offsets))


def _offset_expr(piece: str, formula: str) -> str | None:
    """``"log(n)"`` for the term ``offset(log(n))``; None for any other term."""
    m = re.fullmatch(r"offset\s*(\(.*\))", piece, flags=re.S)
    if m is None:
        return None
    inner = strip_outer_parens(m.group(1))
    if inner is None:
        return None
    if not inner.strip():
        raise ValueError(f"malformed formula {formula!r}: offset() needs an expression, like offset(log(n))")
    if "|" in inner:
        raise ValueError(f"malformed formula {formula!r}: an offset cannot contain '|'")
    return inner.strip()


def _show_bar(inner: str) -> str:
    """A bar term as lme4 prints it; ``(x || g)`` is shown expanded."""
    i, width = _find_bar(inner)
    if width == 1:
        return f"({_deparse(inner)})"
    _bar_terms(inner, inner)  # validates
    intercept, terms = _expr_terms(inner[:i].strip())
    group = _deparse(inner[i + width:])
    return "(" + " + ".join(f"({c} | {group})" for c in _double_vert_columns(intercept, terms)) + ")"


def _raw_bars(rhs: str) -> list[str]:
    out = []
    for _, piece in split_top_level(rhs, "+-"):
        inner = strip_outer_parens(piece)
        if inner is not None and _find_bar(inner) is not None:
            out.append(inner)
    return out
