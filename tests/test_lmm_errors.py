"""Bad input to lmer: each gives a clear error, or a warning, naming the problem.

Where lme4 has a message for the same problem, mmbook uses its words; lme4 1.1-31's messages
(R 4.2.2, run on the same inputs) are quoted next to each test. Data: mmbook's sleepstudy and
small frames built here.
"""

import re
import warnings

import numpy as np
import pandas as pd
import pytest

import mmbook

FORMULA = "Reaction ~ Days + (Days | Subject)"


@pytest.fixture(scope="module")
def sleep():
    return mmbook.load_sleepstudy()


@pytest.fixture(scope="module")
def small():
    return pd.DataFrame({"y": [1.5, 2.5, 3.5, 4.5, 5.5, 6.5], "x": [1.0, 2, 3, 4, 5, 6],
                         "g": list("aabbcc"), "h": list("abcdef")})


# --- unknown columns: lme4 "object 'Dayz' not found" -----------------------------------------
@pytest.mark.parametrize("formula, name", [
    ("Reaction ~ Dayz + (1 | Subject)", "Dayz"),           # fixed part
    ("Reaction ~ Days + (1 | Subjekt)", "Subjekt"),        # grouping factor
    ("Reactoin ~ Days + (1 | Subject)", "Reactoin"),       # response
    ("Reaction ~ Days + (Dayz | Subject)", "Dayz"),        # random-effects expression
    ("Reaction ~ Days + (1 | Subject/Nigth)", "Nigth"),    # nested factor
])
def test_unknown_column(sleep, formula, name):
    with pytest.raises(KeyError, match=rf"'{name}' not found in data; its columns are: Reaction, Days, Subject"):
        mmbook.lmer(formula, sleep)


# --- malformed formulas -------------------------------------------------------------------------
@pytest.mark.parametrize("formula, message", [
    ("Reaction Days + (1 | Subject)", "exactly one '~'"),
    ("Reaction ~ Days ~ (1 | Subject)", "exactly one '~'"),
    ("~ Days + (1 | Subject)", "no response"),
    ("Reaction ~ ", "no terms"),
    ("Reaction ~ Days + (1 | Subject", "unbalanced"),
    ("Reaction ~ Days + 1 | Subject)", "unbalanced"),
    ("Reaction ~ Days + 1 | Subject", r"must be written in brackets, like \(1 \| g\)"),
    ("Reaction ~ Days + ( | Subject)", "nothing before '|'"),
    ("Reaction ~ Days + (1 | )", "no grouping factor after '|'"),
    ("Reaction ~ Days + (1 | Subject | Days)", "more than one '|'"),
    ("Reaction ~ Days + (1 | Subject/)", "must be a column name"),
    ("Reaction ~ Days + (1 | log(Subject))", "must be a column name"),
    ("Reaction ~ Days + + (1 | Subject)", "empty term"),
    ("Reaction ~ Days - (1 | Subject)", "cannot be removed"),
])
def test_malformed_formula(sleep, formula, message):
    with pytest.raises(ValueError, match=message) as info:
        mmbook.lmer(formula, sleep)
    assert "malformed" in str(info.value)


def test_malformed_fixed_part_is_one_clean_line(sleep):
    with pytest.raises(ValueError) as info:
        mmbook.lmer("Reaction ~ Days +* 3 + (1 | Subject)", sleep)
    msg = str(info.value)
    assert msg.startswith("malformed formula term")
    assert "\n" not in msg and "\x1b" not in msg  # no multi-line, coloured formulaic report


def test_formula_must_be_a_string(sleep):
    with pytest.raises(TypeError, match="formula must be a string"):
        mmbook.lmer(None, sleep)


# --- the response: lme4 "response must be numeric" ---------------------------------------------
@pytest.mark.parametrize("column, values", [
    ("txt", lambda d: "a"),
    ("cat", lambda d: pd.Categorical(np.where(d.Days > 4, "hi", "lo"))),
])
def test_non_numeric_response(sleep, column, values):
    d = sleep.copy()
    d[column] = values(d)
    with pytest.raises(TypeError, match=rf"response '{column}' must be numeric"):
        mmbook.lmer(f"{column} ~ Days + (1 | Subject)", d)


def test_infinite_response(sleep):
    d = sleep.copy()
    d.loc[5, "Reaction"] = np.inf
    with pytest.raises(ValueError, match="response 'Reaction' has infinite values"):
        mmbook.lmer(FORMULA, d)


# --- missing values: rows dropped (R's na.omit), with a warning --------------------------------
def test_missing_values_dropped_with_warning(sleep):
    d = sleep.copy()
    d.loc[[2, 49], "Reaction"] = np.nan
    d.loc[50, "Days"] = np.nan
    d.loc[77, "Subject"] = np.nan
    d["unused"] = np.nan  # a column the formula does not use drops nothing
    with pytest.warns(UserWarning, match=r"^4 rows with missing values removed \(of 180\)$"):
        fit = mmbook.lmer(FORMULA, d)
    complete = d.drop(index=[2, 49, 50, 77]).drop(columns="unused")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the complete rows fit without any warning
        ref = mmbook.lmer(FORMULA, complete)
    assert fit.nobs == ref.nobs == 176  # lme4: nobs 176
    assert fit.objective == pytest.approx(ref.objective, abs=1e-9)
    np.testing.assert_allclose(fit.theta, ref.theta, atol=1e-7)
    np.testing.assert_allclose(fit.fixef, ref.fixef, rtol=1e-9)
    assert list(fit.fitted.index) == list(complete.index)


def test_one_missing_row_singular_wording(sleep):
    d = sleep.copy()
    d.loc[0, "Reaction"] = np.nan
    with pytest.warns(UserWarning, match=r"^1 row with missing values removed \(of 180\)$"):
        mmbook.lmer(FORMULA, d)


def test_all_rows_missing(sleep):
    d = sleep.copy()
    d["Reaction"] = np.nan
    with pytest.raises(ValueError, match="no complete rows"):
        mmbook.lmer(FORMULA, d)


# --- identifiability: lme4's checks in mkReTrms / checkNlevels ---------------------------------
def test_grouping_factor_with_one_level(sleep):
    # lme4: "grouping factors must have > 1 sampled level"
    d = sleep.assign(site="s1")
    with pytest.raises(ValueError, match=r"grouping factor 'site' has 1 level: grouping factors must have > 1 "
                                         r"sampled level"):
        mmbook.lmer("Reaction ~ Days + (1 | site)", d)


def test_as_many_levels_as_observations(small):
    # lme4: "number of levels of each grouping factor must be < number of observations (problems: h)"
    with pytest.raises(ValueError, match=re.escape("number of levels of each grouping factor must be < number "
                                                   "of observations (problems: h)")):
        mmbook.lmer("y ~ x + (1 | h)", small)


def test_more_random_effects_than_observations(small):
    # lme4: "number of observations (=6) <= number of random effects (=6) for term (x | g); the
    # random-effects parameters and the residual variance (or scale parameter) are probably
    # unidentifiable"
    with pytest.raises(ValueError, match=re.escape("number of observations (=6) <= number of random effects "
                                                   "(=6) for term (x | g); the random-effects parameters and "
                                                   "the residual variance")):
        mmbook.lmer("y ~ x + (x | g)", small)


# --- the data argument ----------------------------------------------------------------------------
def test_empty_data(sleep):
    # lme4: "0 (non-NA) cases"
    with pytest.raises(ValueError, match="data has no rows"):
        mmbook.lmer(FORMULA, sleep.iloc[:0])


@pytest.mark.parametrize("data", ["sleepstudy", None, [1, 2, 3], np.zeros((3, 3))])
def test_data_not_a_data_frame(data):
    with pytest.raises(TypeError, match=r"data must be a pandas DataFrame \(or a dict of columns\), got "):
        mmbook.lmer(FORMULA, data)


def test_dict_of_columns_is_accepted(sleep):
    fit = mmbook.lmer("Reaction ~ Days + (1 | Subject)", {c: sleep[c].to_numpy() for c in sleep.columns})
    ref = mmbook.lmer("Reaction ~ Days + (1 | Subject)", sleep)
    assert fit.objective == pytest.approx(ref.objective, abs=1e-9)


def test_no_random_term(sleep):
    # lme4: "No random effects terms specified in formula"
    with pytest.raises(ValueError, match=r"no random-effects terms in 'Reaction ~ Days': add one such as "
                                         r"\(1 \| group\), or use mmbook.lm"):
        mmbook.lmer("Reaction ~ Days", sleep)


def test_wrong_start_length(sleep):
    with pytest.raises(ValueError, match=r"start must have 3 values \(theta\), got 2"):
        mmbook.lmer(FORMULA, sleep, start=[1.0, 1.0])


# --- warnings with lme4's words -------------------------------------------------------------------
def test_rank_deficient_X_warns(sleep):
    # lme4: "fixed-effect model matrix is rank deficient so dropping 1 column / coefficient"
    d = sleep.assign(Days2=2 * sleep.Days)
    with pytest.warns(UserWarning, match=r"fixed-effect model matrix is rank deficient so dropping 1 column / "
                                         r"coefficient \(Days2\)"):
        fit = mmbook.lmer("Reaction ~ Days + Days2 + (1 | Subject)", d)
    assert list(fit.fixef.index) == ["(Intercept)", "Days"]


def test_crosscheck_unrepresentable_model_says_why(sleep):
    from mmbook.crosscheck import crosscheck

    d = sleep.assign(Night=np.where(sleep.Days % 2 == 0, "even", "odd"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the Night variance is estimated as zero: a singular fit
        fit = mmbook.lmer("Reaction ~ Days + (Days | Subject) + (1 | Night)", d)
    with pytest.raises(NotImplementedError, match=r"cannot represent the vector-valued term \(Days \| Subject\) "
                                                  r"crossed with another grouping factor"):
        crosscheck(fit)
