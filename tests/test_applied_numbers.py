"""The numbers of the applied-example chapter (book/applied_example.ipynb): sleepstudy,
``Reaction ~ Days + (Days | Subject)`` by REML.

Sources, stated per test:
- DOC: the reference document (../shared/seed/000_aca01b1bc62ef554.txt, "Applied Example"), whose
  output came from lme4 in 2016: summary, ranef(sleepMod), head(subjectTrajectories).
- LME4: mmbook/reference/lme4_applied.json, written by tests/data/make_lme4_applied.R (R 4.2.2,
  lme4 1.1-31): the fit with lme4's default settings ("default"), the same fit with BOBYQA's
  tolerance tightened to 1e-12 ("tight"), confint(method = "profile"), anova(m0, m), predict().
- OPTIMUM: the true REML optimum computed here, by Newton's method on the REML criterion (central
  differences with Richardson extrapolation) started from lme4 1.1-31's theta, independently of
  mmbook's optimizer. The criterion function itself is checked against statsmodels' at the same theta by
  mmbook.crosscheck.

lme4 1.1-31 stops about 1.5e-9 above the minimum of the criterion, which moves its variance
parameters in the 5th-6th significant digit and its conditional modes by up to 1.6e-4 (subject
309's intercept); hence the 2e-4 tolerance against LME4 "default", and 1e-6 against OPTIMUM.
"""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import mmbook
from conftest import reference_path

LME4 = json.loads(reference_path("lme4_applied.json").read_text())


@pytest.fixture(scope="module")
def sleep():
    return mmbook.load_sleepstudy()


@pytest.fixture(scope="module")
def fit(sleep):
    return mmbook.lmer("Reaction ~ Days + (Days | Subject)", sleep)


@pytest.fixture(scope="module")
def optimum(fit):
    """theta at the true REML optimum, by Newton's method from lme4 1.1-31's theta."""
    f = fit.pls.objective

    def central(t, h):
        return np.array([(f(t + e) - f(t - e)) / (2 * h) for e in np.eye(len(t)) * h])

    def grad(t):
        # Richardson extrapolation of central differences (h = 1e-3, 5e-4): the plain central
        # difference at h = 1e-4 is off by ~2e-5 here (its h^2 term), which moves theta by ~1e-7
        return (4 * central(t, 5e-4) - central(t, 1e-3)) / 3

    t = np.array(LME4["default"]["theta"])
    H = np.column_stack([(grad(t + e) - grad(t - e)) / (2e-3) for e in np.eye(len(t)) * 1e-3])
    H = (H + H.T) / 2
    for _ in range(5):
        t = t - np.linalg.solve(H, grad(t))
    assert np.all(np.abs(grad(t)) < 1e-7)
    return t


def _lme4_table(block, what):
    d = LME4[block][what]
    return pd.DataFrame({"(Intercept)": d["intercept"], "Days": d["Days"]}, index=d["levels"])


# ------------------------------------------------------------------ summary
def test_summary_lines_match_document(fit):
    text = str(fit)
    # DOC, except the t values, which lme4 1.1-31 prints with three decimals (DOC: 36.84, 6.77)
    expected = [
        "REML criterion at convergence: 1743.6",
        "-3.9536 -0.4634  0.0231  0.4634  5.1793",
        " Subject  (Intercept) 612.09   24.740",
        "          Days         35.07    5.922   0.07",
        " Residual             654.94   25.592",
        "Number of obs: 180, groups:  Subject, 18",
        "(Intercept)  251.405      6.825  36.838",
        "Days          10.467      1.546   6.771",
        "Days -0.138",
    ]
    lines = [line.rstrip() for line in text.splitlines()]  # R pads some lines with spaces
    for line in expected:
        assert line in lines, f"missing summary line {line!r}"


def test_criterion_is_at_or_below_lme4(fit, optimum):
    # LME4: lme4 1.1-31's REML criterion is ~1.5e-9 above mmbook's; the tight run agrees to ~1e-11
    assert fit.objective < LME4["default"]["REMLcrit"] - 1e-9
    assert fit.objective == pytest.approx(LME4["tight"]["REMLcrit"], abs=1e-9)
    assert fit.objective == pytest.approx(fit.pls.objective(optimum), abs=1e-9)
    np.testing.assert_allclose(fit.theta, optimum, atol=1e-6)


def test_variance_components(fit):
    vc = fit.varcorr
    # OPTIMUM prints as DOC: 612.09 / 24.740; lme4 1.1-31 (LME4 default) prints 612.10 / 24.741
    assert f"{vc['vcov'].iloc[0]:.2f}" == "612.09" and f"{vc['sdcor'].iloc[0]:.3f}" == "24.740"
    # LME4 "tight" stops where OPTIMUM's gradient is still ~1e-5, so its covariances are off by up
    # to ~2e-6 (relative)
    np.testing.assert_allclose(vc["vcov"], LME4["tight"]["varcorr"]["vcov"], rtol=5e-6)
    np.testing.assert_allclose(vc["vcov"], LME4["default"]["varcorr"]["vcov"], rtol=3e-5)
    np.testing.assert_allclose(fit.fixef, list(LME4["default"]["fixef"].values()), rtol=1e-10)
    np.testing.assert_allclose(np.sqrt(np.diag(fit.vcov)), list(LME4["default"]["se"].values()), rtol=1e-5)


# ------------------------------------------------------------------ random effects
def test_ranef(fit, optimum):
    re = fit.ranef["Subject"]
    assert list(re.index) == LME4["default"]["ranef"]["levels"]
    np.testing.assert_allclose(re.to_numpy(), _lme4_table("default", "ranef").to_numpy(), rtol=0, atol=2e-4)
    np.testing.assert_allclose(re.to_numpy(), _lme4_table("tight", "ranef").to_numpy(), rtol=0, atol=5e-6)
    true_gamma = fit.pls.solve(optimum).gamma[0]
    np.testing.assert_allclose(re.to_numpy(), true_gamma, rtol=0, atol=1e-6)
    # DOC's first row, 308: 2.2585654 9.1989719 (the 2016 optimizer's stopping point)
    np.testing.assert_allclose(re.loc["308"], [2.2585654, 9.1989719], rtol=0, atol=5e-6)


def test_coef_rows(fit):
    coef = fit.coef["Subject"]
    # DOC, head(subjectTrajectories): intercepts to 4 decimals, slopes to 6
    doc = {"308": (253.6637, 19.666258), "309": (211.0065, 1.847583), "310": (212.4449, 5.018406),
           "330": (275.0956, 5.652955), "331": (273.6653, 7.397391), "332": (260.4446, 10.195115)}
    for subject, (intercept, slope) in doc.items():
        assert coef.loc[subject, "(Intercept)"] == pytest.approx(intercept, abs=1e-4)
        assert coef.loc[subject, "Days"] == pytest.approx(slope, abs=2e-6)
    np.testing.assert_allclose(coef.to_numpy(), _lme4_table("default", "coef").to_numpy(), rtol=0, atol=2e-4)


# ------------------------------------------------------------------ inference
def test_profile_intervals(fit):
    ci = fit.confint("profile")
    ref = LME4["confint_profile"]
    assert list(ci.index) == ref["rownames"]
    np.testing.assert_allclose(ci.iloc[:, 0], ref["lower"], rtol=0, atol=1e-3)
    np.testing.assert_allclose(ci.iloc[:, 1], ref["upper"], rtol=0, atol=1e-3)


def test_predict(fit):
    new = pd.DataFrame({"Subject": ["308", "new subject"], "Days": [10, 10]})
    pred = fit.predict(new, allow_new_levels=True)
    assert pred.iloc[0] == pytest.approx(LME4["predict"]["subject_308_day10"], abs=1e-3)
    assert pred.iloc[1] == pytest.approx(LME4["predict"]["new_subject_day10"], rel=1e-10)
    with pytest.raises(ValueError, match="new levels"):
        fit.predict(new)


def test_anova_random_slope(sleep, fit):
    # LME4: anova(m0, m): Chisq 42.139 on 2 df, p 7.07e-10 (both refitted by ML)
    m0 = mmbook.lmer("Reaction ~ Days + (1 | Subject)", sleep)
    a = mmbook.anova(m0, fit, names=["m0", "m"])
    ref = LME4["anova"]
    np.testing.assert_allclose(a["deviance"], ref["deviance"], rtol=1e-9)
    assert a["Chisq"].iloc[1] == pytest.approx(ref["Chisq"][1], abs=1e-6)
    assert a["Df"].iloc[1] == ref["Df"][1]
    assert a["Pr(>Chisq)"].iloc[1] == pytest.approx(ref["p"][1], rel=1e-5)
