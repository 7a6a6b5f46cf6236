"""mmbook.crosscheck's result and its display (issue 9: output that does not depend on the machine).

References: the numbers compared are statsmodels 0.15 MixedLM's (an independent likelihood and
optimizer) and mmbook's; this file tests the CrossCheck object itself: the exact table, the
tolerances, how a quantity that could not be compared is reported, and that the printed table
does not change when statsmodels' values move within the tolerance (as they do between OpenBLAS
kernels, because its optimizer stops elsewhere) or mmbook's move at the level of BLAS noise.
"""

import dataclasses
import importlib
import functools
import re

import numpy as np
import pandas as pd
import pytest

import mmbook
from mmbook.tables import fmt_at, html_table, resolution, text_table

cx = importlib.import_module("mmbook.crosscheck")  # the package binds the function under this name


@functools.lru_cache(maxsize=None)
def fit(formula="Reaction ~ Days + (Days | Subject)", REML=True):
    return mmbook.lmer(formula, mmbook.load_sleepstudy(), REML=REML)


@functools.lru_cache(maxsize=None)
def check(formula="Reaction ~ Days + (Days | Subject)", REML=True):
    return cx.crosscheck(fit(formula, REML))


def test_table_columns_and_rows():
    cc = check()
    t = cc.table
    assert list(t.columns) == ["mmbook", "statsmodels", "abs_diff", "rel_diff", "scale", "tolerance", "agree",
                               "kind", "note"]
    assert list(t.index) == [
        "REML criterion", "REML criterion, statsmodels at mmbook's theta", "(Intercept)", "Days",
        "var Subject (Intercept)", "var Subject Days", "cov Subject (Intercept), Days", "var Residual",
        "ranef (max |b| of 36; max |diff|)"]
    # exact differences stay available for tests
    np.testing.assert_allclose(t.abs_diff.iloc[:-1], (t.mmbook - t.statsmodels).abs().iloc[:-1])
    denom = np.maximum(np.maximum(t.mmbook.abs(), t.statsmodels.abs()), t.scale)
    np.testing.assert_allclose(t.rel_diff, t.abs_diff / denom)
    assert t.tolerance.tolist() == [1e-6, 1e-8] + [1e-4] * 7
    assert t.agree.tolist() == [True] * 9 and (t.note == "").all()
    # the scales: 1 for criteria, SE for fixed effects, sigma^2/100 for variances
    f = fit()
    np.testing.assert_allclose(t.scale.iloc[2:4], f.stderror)
    np.testing.assert_allclose(t.scale["var Subject Days"], f.sigma ** 2 / 100)
    assert cc.not_compared == {}
    assert cc.translation.groups == "Subject" and cc.translation.re_formula == "1 + Days"
    assert cc.method in ("lbfgs", "bfgs", "powell") and set(cc.attempts) == {"lbfgs", "bfgs", "powell"}


def test_printed_table():
    """Values at 4 significant digits of max(|mmbook|, scale), criteria at 7; tolerance and agreement."""
    cc = check()
    text = str(cc).splitlines()
    assert text[0] == "mmbook vs statsmodels MixedLM (REML)"
    assert text[1].split() == ["quantity", "mmbook", "statsmodels", "tolerance", "agree"]
    rows = {line[:46].strip(): line[46:].split() for line in text[2:11]}
    assert rows["REML criterion"] == ["1743.628", "1743.628", "1e-06", "yes"]
    assert rows["(Intercept)"] == ["251.4", "251.4", "1e-04", "yes"]
    assert rows["Days"] == ["10.47", "10.47", "1e-04", "yes"]
    # the covariance's scale is the product of the SDs (146.5): one decimal
    assert rows["cov Subject (Intercept), Days"] == ["9.6", "9.6", "1e-04", "yes"]
    assert text[11] == cc.verdict == "agree: criteria within 1e-06 (relative), estimates within 1e-04"
    assert "statsmodels' column repeats mmbook's rounded value" in " ".join(text[12:])
    html = cc._repr_html_()
    assert html.count("<tr>") == len(cc.table) + 1
    assert "text-align:right" in html and "tabular-nums" in html and cc.verdict in html


def perturbed(cc, sm_rel, mm_rel, seed):
    """A copy of ``cc`` with statsmodels' values moved by up to ``sm_rel`` of their tolerance and
    mmbook's by ``mm_rel`` (relative), as another machine might give."""
    rng = np.random.default_rng(seed)
    t = cc.table.copy()
    denom = np.maximum(t.mmbook.abs(), t.scale)
    t["statsmodels"] = t.mmbook + rng.uniform(-1, 1, len(t)) * sm_rel * t.tolerance * denom
    t["mmbook"] = t.mmbook * (1 + rng.uniform(-1, 1, len(t)) * mm_rel)
    return dataclasses.replace(cc, table=t)


@pytest.mark.parametrize("formula,REML", [("Reaction ~ Days + (Days | Subject)", True),
                                          ("Reaction ~ Days + (1 | Subject)", False),
                                          ("Reaction ~ Days + (Days || Subject)", True)])
def test_display_does_not_move_with_statsmodels_digits(formula, REML):
    """Within the tolerance statsmodels' last digits never reach the page, and mmbook's noise
    across OpenBLAS kernels (~1e-10 relative, measured on these fits) does not either."""
    cc = check(formula, REML)
    shown = str(cc), cc._repr_html_()
    for seed in range(20):
        other = perturbed(cc, 0.99, 1e-10, seed)
        assert (str(other), other._repr_html_()) == shown


def test_disagreeing_row_shows_statsmodels_value():
    cc = check()
    t = cc.table.copy()
    t.loc["Days", ["statsmodels", "agree"]] = [11.0, False]
    row = next(r for r in dataclasses.replace(cc, table=t).display_rows() if r[0] == "Days")
    assert row == ("Days", "10.47", "11.00", "1e-04", "no")


def test_criterion_not_evaluated_is_reported(monkeypatch):
    """If statsmodels cannot evaluate its criterion at mmbook's theta, the row says so and the verdict
    names it (issue 9 §3: no check that silently does not run)."""
    def broken(*args, **kwargs):
        raise np.linalg.LinAlgError("Singular matrix")

    monkeypatch.setattr(cx, "_sm_criterion_at", broken)
    cc = cx.crosscheck(fit("Reaction ~ Days + (1 | Subject)"))
    name = "REML criterion, statsmodels at mmbook's theta"
    assert cc.not_compared == {name: "statsmodels could not evaluate it (LinAlgError: Singular matrix)"}
    assert cc.table.loc[name, "agree"] is None and "LinAlgError" in cc.table.loc[name, "note"]
    assert cc.verdict.endswith(f"; not compared: {name} (statsmodels could not evaluate it "
                               "(LinAlgError: Singular matrix))")
    row = next(r for r in cc.display_rows() if r[0] == name)
    assert row[2:] == ("NA", "1e-08", "not compared")
    assert cc.agree  # the other comparisons still hold


def test_statsmodels_failing_everywhere_is_not_agreement(monkeypatch):
    def fail(model, REML, methods, fit_kwargs):
        return None, np.nan, None, {m: "ValueError: boom" for m in methods}

    monkeypatch.setattr(cx, "_sm_fit", fail)
    cc = cx.crosscheck(fit("Reaction ~ Days + (1 | Subject)"))
    assert not cc.agree
    assert cc.verdict.startswith("not compared: statsmodels failed to fit (lbfgs: ValueError: boom")
    assert all(cc.table.agree.iloc[i] is None for i in (0, 2, 3))


def test_same_optimum_keeps_first_optimizer():
    """Optimizers that reach the same optimum (within 1e-9) keep the first in order, not the one whose
    last digits happen to be lowest on this machine."""
    class Res:
        def __init__(self, llf):
            self.llf, self.fe_params = llf, np.zeros(1)

    class Model:
        values = {"lbfgs": -500.0, "bfgs": -500.0 + 1e-10, "powell": -501.0}  # log-likelihoods

        def fit(self, reml, method):
            return Res(self.values[method[0]])

    res, crit, meth, attempts = cx._sm_fit(Model(), True, ("lbfgs", "bfgs", "powell"), {})
    assert meth == "lbfgs" and crit == 1000.0 and attempts["powell"] == 1002.0
    Model.values["bfgs"] = -499.9  # a clearly better optimum wins
    assert cx._sm_fit(Model(), True, ("lbfgs", "bfgs", "powell"), {})[2] == "bfgs"


@pytest.mark.parametrize("x,size,digits,expected", [
    (612.0886, 612.0886, 4, "612.1"), (10.4673, 10.4673, 4, "10.47"), (0.0123, 6.8, 4, "0.012"),
    (-1e-12, 6.5, 4, "0.000"), (1743.6282719, 1743.6, 7, "1743.628"), (1234567.0, 1234567.0, 4, "1.235e+06"),
    (3.0, 1234567.0, 4, "0.000e+06"), (2.5e-9, 3e-9, 2, "2.5e-09"), (np.nan, 1.0, 4, "NA")])
def test_fmt_at(x, size, digits, expected):
    assert fmt_at(x, resolution(size, digits), size) == expected


def test_text_and_html_tables():
    t = text_table(["name", "value"], [["a", "1.0"], ["bb", "10.25"]], title="T", footer=["done"])
    assert t.splitlines() == ["T", "name  value", "a       1.0", "bb    10.25", "done"]
    h = html_table(["name", "value"], [["<a>", "1"]], caption="C", notes=["n"])
    assert "&lt;a&gt;" in h and "<caption" in h and "font-size:smaller" in h


def test_names_patsy_cannot_read_are_renamed():
    """A response called `yield` (nlme's Oats) or a factor called `class` are Python keywords: patsy
    cannot evaluate them, so the translation renames them (found by the registry's Oats models)."""
    from mmbook import datasets

    oats = cx.crosscheck(mmbook.lmer("yield ~ nitro + Variety + (1 | Block/Variety)", datasets.load("Oats")))
    assert oats.agree and oats.translation.formula.startswith("v_yield ~ ")
    d = datasets.load("Rail").rename(columns={"Rail": "class"})
    cc = cx.crosscheck(mmbook.lmer("travel ~ 1 + (1 | class)", d))
    assert cc.agree and cc.translation.groups != "class"
