"""lmer on simulated designs against lme4, and the statsmodels cross-check.

Reference: tests/data/lme4_designs.json, written by tests/data/make_lme4_designs.R (R 4.2.2,
lme4 1.1-31, Matrix 1.5-3; versions recorded in the file) from the CSV files in
tests/data/designs/, which the same script simulated with set.seed. The designs: random
intercepts (numeric group labels), correlated and uncorrelated (``||``) slopes (string labels),
nesting ``(1|a/b)`` (and with ``||``), the explicit ``(1|a) + (1|a:b)`` and ``(1|a:b)`` alone, three-level nesting,
crossed factors, a three-term model, unbalanced groups, a factor-by-numeric interaction, a
no-intercept fixed part, ``I(x^2)``, a factor random slope ``(0 + f|g)``, two singular fits,
two rank-deficient X (a collinear column, an empty interaction cell), a transformed response;
REML and ML.

Tolerances. The criterion: mmbook's must be lme4's or lower, and equal within 1e-6 (relative).
lme4's optimizer stops up to ~5e-5 short in theta on some of these fits (the criterion is
flat at the optimum, so that costs it < 1e-7), so theta is compared to 2e-4 (absolute; theta is
a ratio of SDs, of order 1), and every quantity computed from it to 2e-4 relative to its
own size or its natural scale (a fixed effect's standard error, sigma^2 for a variance, sigma for
an SD, the largest conditional mode of the factor), so values near zero do not demand
meaningless relative precision. Names, levels, counts, the dropped columns and isSingular must
match exactly.

statsmodels 0.15 MixedLM (through mmbook.crosscheck) must agree wherever it can represent the
model: criteria within 1e-6 and estimates within 1e-4, or mmbook lower (statsmodels stopping at
a worse optimum, as it does on the singular fits).
"""

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import mmbook
from mmbook.crosscheck import crosscheck
from mmbook.engine.control import SingularFitWarning

DATA = Path(__file__).parent / "data"
REF = json.loads((DATA / "lme4_designs.json").read_text())
FITS = REF["fits"]
NAMES = list(FITS)
TOL = 2e-4  # see the module docstring

_cache: dict = {}


def fitted(name):
    """mmbook's fit of design ``name`` and the warnings it raised (each model fitted once)."""
    if name not in _cache:
        r = FITS[name]
        data = pd.read_csv(DATA / r["data"])
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            fit = mmbook.lmer(r["formula"], data, REML=r["REML"])
        _cache[name] = (fit, [str(x.message) for x in w], [x.category for x in w])
    return _cache[name]


def _close(ours, theirs, scale, what):
    ours, theirs, scale = (np.asarray(v, dtype=float) for v in (ours, theirs, scale))
    bound = TOL * np.maximum(np.abs(theirs), scale)
    bad = np.abs(ours - theirs) > bound
    assert not np.any(bad), f"{what}: mmbook {ours[bad]} vs lme4 {theirs[bad]} (bound {bound[bad]})"


def test_reference_files():
    assert "lme4 1.1.31" in REF["source"] and REF["R_version"].startswith("R version 4.2.2")
    assert len(FITS) >= 20
    for r in FITS.values():
        assert (DATA / r["data"]).exists()
        assert len(pd.read_csv(DATA / r["data"])) <= 400  # small: the suite stays fast


def test_designs_cover_the_brief():
    formulas = [r["formula"] for r in FITS.values()]
    for piece in ["(1 | g)", "(x | g)", "(x || g)", "(1 | a/b)", "(1 | a:b)", "(1 | subj) + (1 | item)",
                  "I(x^2)", "0 + f", "(0 + f | g)", "x * f", "(1 | a/b/c)", "log(y)"]:
        assert any(piece in f for f in formulas), piece
    assert {r["REML"] for r in FITS.values()} == {True, False}
    assert any(r["isSingular"] for r in FITS.values())
    assert any(r["col_dropped"] for r in FITS.values())


@pytest.mark.parametrize("name", NAMES)
def test_criterion(name):
    r = FITS[name]
    fit = fitted(name)[0]
    scale = max(1.0, abs(r["criterion"]))
    assert fit.objective <= r["criterion"] + 1e-6 * scale
    assert abs(fit.objective - r["criterion"]) <= 1e-6 * scale
    assert fit.nobs == r["nobs"]
    for ours, theirs in [(fit.loglik, r["logLik"]), (fit.aic, r["AIC"]), (fit.bic, r["BIC"])]:
        assert abs(ours - theirs) <= 1e-6 * scale


@pytest.mark.parametrize("name", NAMES)
def test_fixef(name):
    r = FITS[name]
    fit = fitted(name)[0]
    assert list(fit.fixef.index) == r["fixef_names"]
    assert fit.mf.dropped_columns == r["col_dropped"]
    se = np.sqrt(np.diag(np.array(r["vcov"])))
    _close(fit.fixef.to_numpy(), r["fixef"], se, "fixef")
    _close(np.sqrt(np.diag(fit.vcov.to_numpy())), se, se, "standard errors")


@pytest.mark.parametrize("name", NAMES)
def test_theta_sigma_varcorr(name):
    r = FITS[name]
    fit = fitted(name)[0]
    assert len(fit.theta) == len(r["theta"])
    assert np.max(np.abs(fit.theta - np.array(r["theta"]))) <= TOL
    _close(fit.sigma, r["sigma"], r["sigma"], "sigma")
    vc, ref = fit.varcorr, r["varcorr"]
    assert len(vc) == len(ref["grp"])
    assert [None if pd.isna(v) else v for v in vc.var1] == ref["var1"]
    assert [None if pd.isna(v) else v for v in vc.var2] == ref["var2"]
    s2 = r["sigma"] ** 2
    _close(vc.vcov, ref["vcov"], s2, "VarCorr vcov")
    is_cor = vc.var2.notna().to_numpy()
    sdcor = np.array([np.nan if v is None else v for v in ref["sdcor"]], dtype=float)
    _close(vc.sdcor[~is_cor], sdcor[~is_cor], r["sigma"], "VarCorr sd")
    if is_cor.any():
        _close(vc.sdcor[is_cor], sdcor[is_cor], 1.0, "VarCorr correlation")


# lme4's VarCorr names a factor used by several terms with make.names + make.unique, which also turns
# ":" into ".": (1 + x || a/b) gives "b.a", "b.a.1", "a", "a.1" (LmerFit.group_names does the same).
@pytest.mark.parametrize("name", NAMES)
def test_varcorr_group_names(name):
    assert list(fitted(name)[0].varcorr.grp) == FITS[name]["varcorr"]["grp"]


@pytest.mark.parametrize("name", NAMES)
def test_ranef_ngroups_singular(name):
    r = FITS[name]
    fit = fitted(name)[0]
    assert fit.ngroups == r["ngroups"]
    assert list(fit.ngroups) == list(r["ngroups"])
    assert list(fit.ranef) == list(r["ranef"])
    for g, ref in r["ranef"].items():
        ours = fit.ranef[g]
        assert [str(x) for x in ours.index] == ref["levels"]
        assert list(ours.columns) == ref["terms"]
        theirs = np.column_stack([ref["values"][t] for t in ref["terms"]])
        _close(ours.to_numpy(), theirs, np.max(np.abs(theirs)), f"ranef {g}")
    assert fit.is_singular is r["isSingular"]


@pytest.mark.parametrize("name", NAMES)
def test_messages(name):
    """lme4's fit-time messages (rank deficiency, singular fit) come as warnings with its words.

    lme4's singular-fit message points to R's help page (``see help('isSingular')``); mmbook's
    keeps lme4's words and points to what exists in Python instead.
    """
    r = FITS[name]
    _, messages, categories = fitted(name)
    for m in r["messages"]:
        m = m.replace(": see help('isSingular')", ": see fit.is_singular")
        assert any(m in ours for ours in messages), (m, messages)
    assert (SingularFitWarning in categories) is r["isSingular"]
    if not r["messages"]:
        assert messages == []


@pytest.mark.parametrize("name", NAMES)
def test_crosscheck(name):
    r = FITS[name]
    fit = fitted(name)[0]
    if "not representable in statsmodels" in r["note"]:
        with pytest.raises(NotImplementedError, match="cannot represent"):
            crosscheck(fit)
        return
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # crosscheck keeps statsmodels' warnings to itself
        cc = crosscheck(fit)
    assert cc.agree, str(cc)
    if not r["isSingular"]:
        assert cc.verdict.startswith("agree: criteria within"), str(cc)
    assert cc.criterion_diff <= 1e-9 * max(1.0, abs(fit.objective))
    assert isinstance(str(cc), str) and "<table " in cc._repr_html_()


def test_crosscheck_translations():
    """The statsmodels formulas each lme4 structure becomes (documented in mmbook.crosscheck)."""
    tr = {n: crosscheck_translation(n) for n in ["slope_REML", "uncorr_REML", "nested_REML",
                                                  "crossed_REML", "three_terms", "factor_slope",
                                                  "deep_nested", "rankdef_collinear"]}
    assert str(tr["slope_REML"]) == "MixedLM.from_formula('y ~ x', data, groups='g', re_formula='1 + x')"
    assert tr["uncorr_REML"].re_formula == "1" and tr["uncorr_REML"].vc_formula == {"g.x": "0 + x"}
    assert tr["nested_REML"].groups == "a" and tr["nested_REML"].vc_formula == {"b:a": "0 + C(b_a)"}
    assert tr["crossed_REML"].re_formula is None and tr["crossed_REML"].top is None
    assert tr["crossed_REML"].vc_formula == {"subj": "0 + C(subj)", "item": "0 + C(item)"}
    assert tr["three_terms"].vc_formula["subj.x"] == "0 + C(subj):x"
    assert tr["factor_slope"].re_formula == "0 + f"
    assert tr["deep_nested"].vc_formula == {"c:(b:a)": "0 + C(c_b_a)", "b:a": "0 + C(b_a)"}
    assert tr["rankdef_collinear"].fixed_from_X


def crosscheck_translation(name):
    from mmbook.crosscheck import translate

    return translate(fitted(name)[0])
