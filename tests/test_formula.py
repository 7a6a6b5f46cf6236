"""mmbook.engine.formula: lme4's formula grammar (bars, ||, nesting, the fixed part, errors).

Reference: lme4 1.1-31 (R 4.2.2). The expansions and names below are what lme4 gives for the
same formulas: ``deparse(formula(fit))`` for the printed text, ``names(getME(fit, "theta"))``
for the order of the terms, run on tests/data/designs/nested.csv (the R session is summarised
next to each case).
"""

import pytest

from mmbook.engine.formula import BarTerm, parse_formula, split_top_level


def bars(formula):
    return [(t.expr, t.group) for t in parse_formula(formula).random]


# --- the basic split -----------------------------------------------------------------------------
def test_response_fixed_random():
    f = parse_formula("Reaction ~ Days + (Days | Subject)")
    assert f.response == "Reaction"
    assert f.fixed == "Days"
    assert f.random == (BarTerm(expr="1 + Days", group="Subject", text="Days | Subject"),)
    assert f.text == "Reaction ~ Days + (Days | Subject)"


def test_text_is_normalised_like_R_deparse():
    # R: deparse(y~x+(x|g)) is "y ~ x + (x | g)"
    assert parse_formula("y~x+(x|g)").text == "y ~ x + (x | g)"
    assert parse_formula("y ~  x*f +(1|  g)").text == "y ~ x * f + (1 | g)"
    # lme4 1.1-31: (x | a / b) prints as (x | a/b); a : b as a:b
    assert parse_formula("y ~ x + (x | a / b)").text == "y ~ x + (x | a/b)"
    assert parse_formula("y ~ a : b + (1 | g)").text == "y ~ a:b + (1 | g)"


def test_random_terms_keep_their_written_order_and_fixed_terms_may_follow():
    f = parse_formula("y ~ x + (1 | g) + (0 + x | h) + z")
    assert f.fixed == "x + z"
    assert bars("y ~ x + (1 | g) + (0 + x | h) + z") == [("1", "g"), ("0 + x", "h")]
    assert f.text == "y ~ x + z + (1 | g) + (0 + x | h)"


def test_transformed_response():
    f = parse_formula("log(y) ~ x + (1 | g)")
    assert f.response == "log(y)" and f.text == "log(y) ~ x + (1 | g)"


# --- intercepts inside bars ------------------------------------------------------------------------
@pytest.mark.parametrize("formula, expr", [
    ("y ~ (1 | g)", "1"),
    ("y ~ (x | g)", "1 + x"),
    ("y ~ (1 + x | g)", "1 + x"),
    ("y ~ (0 + x | g)", "0 + x"),
    ("y ~ (-1 + x | g)", "0 + x"),   # lme4 theta name: g.x
    ("y ~ (x - 1 | g)", "0 + x"),    # lme4 theta name: g.x
    ("y ~ (x + z | g)", "1 + x + z"),
])
def test_bar_intercepts(formula, expr):
    assert bars(formula) == [(expr, "g")]


def test_bar_text_is_kept_as_written():
    assert parse_formula("y ~ (-1 + x | g)").text == "y ~ (-1 + x | g)"
    assert parse_formula("y ~ (x - 1 | g)").random[0].text == "x - 1 | g"


# --- || : lme4's expandDoubleVerts ------------------------------------------------------------------
def test_double_bar_expands_to_uncorrelated_terms():
    assert bars("y ~ x + (x || g)") == [("1", "g"), ("0 + x", "g")]
    # lme4 prints the expansion: y ~ x + ((1 | g) + (0 + x | g))
    assert parse_formula("y~x+(x||g)").text == "y ~ x + ((1 | g) + (0 + x | g))"


def test_double_bar_without_intercept_and_with_several_terms():
    assert bars("y ~ x + (0 + x || a)") == [("0 + x", "a")]
    assert parse_formula("y ~ x + (0 + x || a)").text == "y ~ x + ((0 + x | a))"  # lme4's text
    assert bars("y ~ (1 + x + z || a)") == [("1", "a"), ("0 + x", "a"), ("0 + z", "a")]
    assert parse_formula("y ~ (1 + x + z || a)").text == "y ~ ((1 | a) + (0 + x | a) + (0 + z | a))"


def test_double_bar_with_a_factor_keeps_the_factor_block():
    # lme4: (f || a) is (1 | a) + (0 + f | a); the levels of f stay correlated
    assert bars("y ~ x + (f || g)") == [("1", "g"), ("0 + f", "g")]


def test_double_bar_with_nesting_expands_terms_first():
    # lme4: (1 + x || a/b) -> ((1 | a/b) + (0 + x | a/b)), then each slash term is expanded;
    # after sorting by number of levels its theta is b:a.x, b:a.(Intercept), a.x, a.(Intercept)
    assert bars("y ~ x + (1 + x || a/b)") == [("1", "b:a"), ("1", "a"), ("0 + x", "b:a"), ("0 + x", "a")]
    assert parse_formula("y ~ x + (1 + x || a/b)").text == "y ~ x + ((1 | a/b) + (0 + x | a/b))"


# --- grouping factors: nesting and interactions --------------------------------------------------
def test_nesting_names_inner_factor_first():
    # lme4: ngrps names b:a and a; c:(b:a), b:a and a for three levels
    assert bars("y ~ x + (1 | a/b)") == [("1", "b:a"), ("1", "a")]
    assert bars("y ~ x + (1 | a/b/c)") == [("1", "c:(b:a)"), ("1", "b:a"), ("1", "a")]
    assert bars("y ~ x + (x | a / b)") == [("1 + x", "b:a"), ("1 + x", "a")]
    assert parse_formula("y ~ x + (1 | a/b)").text == "y ~ x + (1 | a/b)"


def test_group_vars():
    t = parse_formula("y ~ (1 | a/b/c)").random[0]
    assert t.group == "c:(b:a)" and t.group_vars == ["c", "b", "a"]
    assert parse_formula("y ~ (1 | a:b)").random[0].group_vars == ["a", "b"]


def test_explicit_interaction_is_one_factor():
    assert bars("y ~ x + (1 | a:b)") == [("1", "a:b")]
    assert bars("y ~ x + (1 | a) + (1 | a:b)") == [("1", "a"), ("1", "a:b")]


def test_crossed_factors():
    assert bars("y ~ x + (1 | subj) + (1 | item)") == [("1", "subj"), ("1", "item")]


# --- the fixed part -------------------------------------------------------------------------------
@pytest.mark.parametrize("formula, fixed", [
    ("y ~ (1 | g)", "1"),                  # intercept only
    ("y ~ 0 + (1 | g)", "0"),              # no fixed effects at all
    ("y ~ 0 + x + (1 | g)", "0 + x"),
    ("y ~ x - 1 + (1 | g)", "x - 1"),
    ("y ~ -1 + x + (1 | g)", "-1 + x"),
    ("y ~ x*f + (1 | g)", "x*f"),
    ("y ~ x:f + (1 | g)", "x:f"),
    ("y ~ (a+b)^2 + (1 | g)", "(a+b)^2"),  # ^ outside a call: the formula operator
    ("y ~ poly(x, 2) + (1 | g)", "poly(x, 2)"),
])
def test_fixed_part(formula, fixed):
    assert parse_formula(formula).fixed == fixed


def test_power_inside_a_call_is_arithmetic():
    # R: I(x^2) squares x; Python/formulaic spell it **; lme4's column name is I(x^2)
    f = parse_formula("y~x+I(x^2)+(1|g)")
    assert f.fixed == "x + I(x**2)"
    assert f.text == "y ~ x + I(x^2) + (1 | g)"
    assert parse_formula("y ~ log(x^2) + (1 | g)").fixed == "log(x**2)"
    assert parse_formula("y ~ I(x**2) + (1 | g)").fixed == "I(x**2)"  # the Python spelling works too
    assert parse_formula("y ~ (a + b)^2 + (1 | g)").fixed == "(a + b)^2"


# --- errors -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("formula, message", [
    ("y x + (1 | g)", "exactly one '~'"),
    ("y ~ x ~ z", "exactly one '~'"),
    ("~ x + (1 | g)", "no response"),
    ("y ~", "no terms"),
    ("y ~ x + (1 | g", "unbalanced"),
    ("y ~ x + 1 | g)", "unbalanced"),
    ("y ~ x + 1 | g", "must be written in brackets"),
    ("y ~ x + ( | g)", "nothing before '|'"),
    ("y ~ x + (1 | )", "no grouping factor"),
    ("y ~ x + (1 | g | h)", "more than one '|'"),
    ("y ~ x + (1 | g/)", "must be a column name"),
    ("y ~ x + (1 | factor(g))", "must be a column name"),
    ("y ~ x + (0 || g)", "no columns"),
    ("y ~ x + + (1 | g)", "empty term"),
    ("y ~ x - (1 | g)", "cannot be removed"),
    ("y ~ (x - z | g)", "removing terms other than the intercept"),
])
def test_errors(formula, message):
    with pytest.raises(ValueError, match=message):
        parse_formula(formula)


def test_formula_must_be_a_string():
    with pytest.raises(TypeError, match="formula must be a string"):
        parse_formula(["y ~ x + (1 | g)"])


# --- the splitter ---------------------------------------------------------------------------------
def test_split_top_level_respects_brackets_and_signs():
    assert split_top_level("x + (1 | g) - 1") == [("+", "x"), ("+", "(1 | g) - 1")]
    assert split_top_level("x + (1 | g) - 1", "+-") == [("+", "x"), ("+", "(1 | g)"), ("-", "1")]
    assert split_top_level("I(x ** -2) + z", "+-") == [("+", "I(x ** -2)"), ("+", "z")]
    assert split_top_level("-1 + x", "+-") == [("+", "-1"), ("+", "x")]  # a leading sign is the operand's
    with pytest.raises(ValueError, match="unbalanced"):
        split_top_level("a + (b")
    with pytest.raises(ValueError, match="unbalanced"):
        split_top_level("a) + b")
