"""R's functions, factors and column names in lme4 formulas, and new data that cannot be misread.

Reference: tests/data/lme4_frames.json, written by tests/data/make_lme4_frames.R (R 4.2.2,
lme4 1.1-31; versions recorded in the file) from tests/data/frames/frames.csv and frames_new.csv:
fits with scale(), poly() (orthogonal and raw), bs(), log/sqrt/exp/abs/I(), log(, base), factor(h),
an ordered factor (contr.poly), a logical predictor, transforms inside random terms; lme4's
criterion, fixef names and values, theta, sigma, random-effects column names (cnms) and
predict(newdata) with and without random effects. Two responses are missing, so R's stateful
transforms learn their state from all rows of x before the incomplete rows are removed - the
numbers below only agree if mmbook does the same. The file also holds R's as.character() of some
numbers (factor labels) and deparse() of some calls (term labels).

Tolerances as in tests/test_lmm_designs.py: criterion within 1e-6 (relative) and not above
lme4's; theta within 2e-4; fixef within 2e-4 of its scale; predictions within 2e-4 of sigma.
"""

import json
import warnings
from pathlib import Path

import formulaic
import numpy as np
import pandas as pd
import pytest

import mmbook
from mmbook.engine.formula import parse_formula
from mmbook.engine.modelmatrix import formula_variables
from mmbook.engine.rfunctions import NewLevelError
from mmbook.engine.rnames import r_deparse, r_number, to_python

DATA = Path(__file__).parent / "data"
REF = json.loads((DATA / "lme4_frames.json").read_text())
TOL = 2e-4


def load(name: str) -> pd.DataFrame:
    d = pd.read_csv(DATA / "frames" / name)
    d["o"] = pd.Categorical(d["o"], categories=["lo", "mid", "hi", "top"], ordered=True)
    return d


@pytest.fixture(scope="module")
def frames():
    return load("frames.csv"), load("frames_new.csv")


_fits: dict = {}


def fit_of(name, d):
    if name not in _fits:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="2 rows with missing values removed")
            _fits[name] = mmbook.lmer(REF["fits"][name]["formula"], d)
    return _fits[name]


@pytest.mark.parametrize("name", list(REF["fits"]))
def test_fit_matches_lme4(frames, name):
    d, nd = frames
    r = REF["fits"][name]
    fit = fit_of(name, d)
    assert list(fit.fixef.index) == r["fixef_names"]
    cnms = r["cnms"] if isinstance(r["cnms"][0], list) else [r["cnms"]]
    assert [t.cnames for t in fit.terms] == cnms
    assert fit.nobs == r["nobs"]
    assert fit.objective <= r["REMLcrit"] + 1e-6 * abs(r["REMLcrit"])
    assert fit.objective == pytest.approx(r["REMLcrit"], rel=1e-6)
    np.testing.assert_allclose(fit.theta, np.atleast_1d(r["theta"]), atol=TOL)
    assert fit.sigma == pytest.approx(r["sigma"], rel=TOL)
    fe = np.array(r["fixef"])
    np.testing.assert_allclose(fit.fixef.to_numpy(), fe, atol=TOL * np.abs(fe).max())
    # new data are transformed with the fitted state: scale's centre, poly's coefficients, bs's knots
    np.testing.assert_allclose(fit.predict(nd).to_numpy(), r["predict_new"], atol=TOL * r["sigma"])
    np.testing.assert_allclose(fit.predict(nd, re_form=None).to_numpy(), r["predict_new_fixed"],
                               atol=TOL * r["sigma"])


# --- R's labels ------------------------------------------------------------------------------------
def test_numbers_are_labelled_as_R_labels_factor_levels():
    s = REF["strings"]
    assert [r_number(x) for x in s["numbers"]] == s["as_character"]


def test_terms_are_named_as_R_deparses_them():
    s = REF["strings"]
    for call, expected in zip(s["calls"], s["deparse"]):
        # the expression as formulaic hands it over: R spellings made Python, then normalised
        (term,) = [t for t in formulaic.Formula("0 + " + to_python(call.replace("^", "**")))]
        assert r_deparse(term.factors[0].expr) == expected


# --- variables inside calls --------------------------------------------------------------------------
@pytest.mark.parametrize("rhs, expected", [
    ("scale(x)", {"x"}),
    ("poly(x, 2)", {"x"}),
    ("bs(x, df = 4)", {"x"}),
    ("center(x) + factor(h)", {"x", "h"}),
    ("I(x^2) + log(z, base = 2) + C(f, contr.sum)", {"x", "z", "f"}),
    ("poly(x, degree = 2, raw = TRUE) + x:b", {"x", "b"}),
])
def test_variables_inside_stateful_transforms_are_found(rhs, expected):
    assert formula_variables(to_python(rhs.replace("^", "**")), ["x", "z", "h", "f", "b"]) == expected


@pytest.mark.parametrize("formula", ["y ~ scale(x) + (1 | g)", "y ~ poly(x, 2) + (1 | g)",
                                     "y ~ bs(x, df = 4) + (1 | g)"])
def test_a_transformed_variable_need_not_appear_elsewhere(frames, formula):
    d, _ = frames
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = mmbook.lmer(formula, d)
    assert "x" in fit.mf.frame.columns


def test_unknown_function_and_unknown_variable(frames):
    d, _ = frames
    with pytest.raises(ValueError, match="function 'ns' in the term 'ns\\(x, 3\\)' is not available"):
        mmbook.lmer("y ~ ns(x, 3) + (1 | g)", d)
    with pytest.raises(KeyError, match="variable 'w' not found in data"):
        mmbook.lmer("y ~ log(w) + (1 | g)", d)


# --- new data that cannot be misread --------------------------------------------------------------
@pytest.fixture(scope="module")
def combined(frames):
    return fit_of("combined", frames[0])


@pytest.mark.parametrize("column, value, message", [
    ("f", "zz", r"factor 'f' has level 'zz' that the model was not fitted with \(its levels: a, b, c, d\)"),
    ("h", 7, r"factor\(h\) has level '7' that the model was not fitted with"),
    ("o", "huge", r"level 'huge'"),
])
def test_new_level_of_a_fixed_factor_is_an_error(frames, combined, column, value, message):
    _, nd = frames
    bad = nd.copy()
    if column == "o":
        bad["o"] = pd.Categorical(["lo", "huge", "mid", "hi", "top", "lo"],
                                  categories=["lo", "mid", "hi", "top", "huge"], ordered=True)
    else:
        bad[column] = bad[column].astype(object)
        bad.loc[bad.index[1], column] = value
    with pytest.raises(NewLevelError, match=message):
        combined.predict(bad)


def test_missing_values_in_newdata_give_nan_rows(frames, combined):
    _, nd = frames
    full = combined.predict(nd).to_numpy()
    bad = nd.copy()
    bad["x"] = bad["x"].astype(float)
    bad.loc[bad.index[0], "x"] = np.nan      # numeric
    bad["f"] = bad["f"].astype(object)
    bad.loc[bad.index[2], "f"] = None        # factor: NaN, never the base level's prediction
    bad["b"] = bad["b"].astype(object)
    bad.loc[bad.index[4], "b"] = None        # logical
    p = combined.predict(bad).to_numpy()
    assert np.isnan(p[[0, 2, 4]]).all()
    np.testing.assert_allclose(p[[1, 3, 5]], full[[1, 3, 5]], rtol=1e-12)


def test_missing_grouping_factor_is_an_error_unless_new_levels_allowed(frames, combined):
    _, nd = frames
    bad = nd.copy()
    bad["g"] = bad["g"].astype(object)
    bad.loc[bad.index[1], "g"] = None
    with pytest.raises(ValueError, match="missing values in grouping factor 'g'"):
        combined.predict(bad)
    p = combined.predict(bad, allow_new_levels=True).to_numpy()
    assert p[1] == pytest.approx(combined.predict(nd, re_form=None).to_numpy()[1], rel=1e-12)
    # population predictions do not need the grouping factor
    np.testing.assert_allclose(combined.predict(bad, re_form=None), combined.predict(nd, re_form=None))


@pytest.mark.parametrize("column, values, message", [
    ("x", ["1", "2", "3", "4", "5", "6"], "variable 'x' was fitted as numeric but newdata gives factor"),
    ("f", [1, 2, 3, 1, 2, 3], "variable 'f' was fitted as factor but newdata gives numeric"),
    ("b", [1.0, 0.0, 1.0, 0.0, 0.0, 1.0], "variable 'b' was fitted as logical but newdata gives numeric"),
])
def test_a_column_of_another_kind_is_an_error(frames, combined, column, values, message):
    _, nd = frames
    bad = nd.copy()
    bad[column] = values
    with pytest.raises(TypeError, match=message):
        combined.predict(bad)


def test_missing_column_in_newdata(frames, combined):
    _, nd = frames
    with pytest.raises(KeyError, match="newdata has no column 'z'"):
        combined.predict(nd.drop(columns="z"))


def test_strings_for_an_ordered_factor_are_accepted(frames, combined):
    """R treats a character column as the fitted factor (its levels and order come from the fit)."""
    _, nd = frames
    plain = nd.copy()
    plain["o"] = plain["o"].astype(str)
    np.testing.assert_allclose(combined.predict(plain), combined.predict(nd), rtol=1e-12)


def test_formula_text_keeps_transforms(frames):
    assert parse_formula("y ~ poly(x,2) + offset(log(z)) + (1|g)").text == "y ~ poly(x, 2) + offset(log(z)) + (1 | g)"


def test_dot_shorthand_and_namespaced_functions(frames):
    d, _ = frames
    with pytest.raises(ValueError, match="the '.' shorthand"):
        mmbook.lmer("y ~ . + (1 | g)", d)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a = mmbook.lmer("y ~ splines::bs(x, df = 4) + (1 | g)", d)
        b = fit_of("bs", d)
    assert list(a.fixef.index) == [n.replace("bs(", "splines::bs(") for n in b.fixef.index]
    np.testing.assert_allclose(a.fixef.to_numpy(), b.fixef.to_numpy(), rtol=1e-10)


def test_logical_response_counts_as_0_1(frames):
    """lme4 (mkRespMod) turns a logical response into integers for lmer."""
    d, _ = frames
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a = mmbook.lmer("b ~ x + (1 | g)", d)
        d01 = d.assign(b=d["b"].astype(float))
        b = mmbook.lmer("b ~ x + (1 | g)", d01)
    assert a.objective == b.objective


def test_contr_is_exported():
    assert mmbook.contr.treatment(base="b").base == "b"
    assert mmbook.contr.sum().name == "contr.sum"


def test_the_fitted_spec_itself_refuses_what_predict_refuses(frames, combined):
    """The checks live in the spec that rebuilds X, so every caller of it (predict, simulate with
    new data, ...) gets them: strings for a numeric column, a new level, NaN rows."""
    from mmbook.engine.design import model_matrix

    _, nd = frames
    spec = combined.mf.x_spec
    with pytest.raises(TypeError, match="variable 'x' was fitted as numeric but newdata gives factor"):
        model_matrix(spec, nd.assign(x=nd["x"].astype(str)), "X")
    with pytest.raises(NewLevelError, match="factor 'f' has level 'q'"):
        model_matrix(spec, nd.assign(f=["a", "q", "b", "c", "d", "a"]), "X")
    X, _ = model_matrix(spec, nd.assign(f=["a", None, "b", "c", "d", "a"]), "X")
    assert np.isnan(X[1]).any() and np.isfinite(X[[0, 2, 3, 4, 5]]).all()


def test_C_with_R_coding_names_and_poly_on_too_few_values(frames):
    d, _ = frames
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a = mmbook.lmer("y ~ C(f, sum) + (1 | g)", d)
        b = mmbook.lmer("y ~ f + (1 | g)", d, contrasts={"f": "contr.sum"})
        assert list(a.fixef.index) == ["(Intercept)", "C(f, sum)1", "C(f, sum)2", "C(f, sum)3"]
        np.testing.assert_allclose(a.fixef.to_numpy(), b.fixef.to_numpy(), rtol=1e-10)
        with pytest.raises(ValueError, match="degree 2 needs more than 2 distinct values"):
            mmbook.lmer("y ~ poly(h0, 2) + (1 | g)", d.assign(h0=np.where(d["h"] > 1, 1.0, 0.0)))
