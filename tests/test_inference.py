"""mmbook.engine: predict, simulate, refit, bootstrap, anova, confint.

Reference numbers: tests/data/lme4_inference.json, written by tests/data/make_lme4_inference.R
(R 4.2.2, lme4 1.1-31) on the same sleepstudy data. lme4 stops its optimizer ~1e-5 short of the
optimum in theta on this model (see tests/data/README.md), so quantities that depend on theta are
compared at a relative tolerance of 1e-4; the likelihood-ratio statistic, which lme4 computes from
ML fits that both programs converge well, is compared at 1e-6.
"""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import mmbook
from mmbook.engine.bootstrap import bootstrap
from mmbook.engine.stages import refit

REF = json.loads((Path(__file__).parent / "data" / "lme4_inference.json").read_text())


@pytest.fixture(scope="module")
def sleep():
    return mmbook.load_sleepstudy()


@pytest.fixture(scope="module")
def m1(sleep):
    return mmbook.lmer("Reaction ~ Days + (Days | Subject)", sleep)


@pytest.fixture(scope="module")
def m0(sleep):
    return mmbook.lmer("Reaction ~ Days + (1 | Subject)", sleep)


def test_anova_matches_lme4(m0, m1):
    a = mmbook.anova(m1, m0, names=["m1", "m0"])  # ordered by npar, as lme4
    ref = REF["anova"]
    assert list(a.index) == ["m0", "m1"]
    assert a["npar"].tolist() == ref["npar"]
    for col, key in [("AIC", "AIC"), ("BIC", "BIC"), ("logLik", "logLik"), ("deviance", "deviance")]:
        np.testing.assert_allclose(a[col].to_numpy(), ref[key], rtol=1e-9)
    assert np.isnan(a["Chisq"].iloc[0])
    assert a["Chisq"].iloc[1] == pytest.approx(ref["Chisq"], rel=1e-6)
    assert a["Df"].iloc[1] == ref["Df"]
    assert a["Pr(>Chisq)"].iloc[1] == pytest.approx(ref["p"], rel=1e-5)


def test_anova_rejects_different_data(sleep, m1):
    other = mmbook.lmer("Reaction ~ Days + (1 | Subject)", sleep.iloc[:170])
    with pytest.raises(ValueError, match="same number of observations"):
        mmbook.anova(m1, other)
    with pytest.raises(ValueError, match="a fitted model"):
        mmbook.anova()


def test_confint_wald(m1):
    ci = m1.confint("Wald")
    ref = REF["confint_wald"]
    assert list(ci.index) == ref["rows"]
    assert list(ci.columns) == ["2.5 %", "97.5 %"]
    assert ci.iloc[:4].isna().all().all()  # lme4 gives NA for the variance parameters
    np.testing.assert_allclose(ci.iloc[4:, 0], ref["lower"][4:], rtol=1e-6)
    np.testing.assert_allclose(ci.iloc[4:, 1], ref["upper"][4:], rtol=1e-6)


def test_confint_profile_matches_lme4(m1):
    ci = m1.confint("profile")
    ref = REF["confint_profile"]
    assert list(ci.index) == ref["rows"]
    np.testing.assert_allclose(ci.iloc[:, 0], ref["lower"], rtol=1e-4)
    np.testing.assert_allclose(ci.iloc[:, 1], ref["upper"], rtol=1e-4)


def test_predict_newdata(m1):
    ref = REF["predict_newdata"]
    nd = pd.DataFrame({"Days": ref["Days"], "Subject": ref["Subject"]})
    np.testing.assert_allclose(m1.predict(nd, allow_new_levels=True), ref["all"], rtol=1e-6)
    np.testing.assert_allclose(m1.predict(nd, re_form=None), ref["fixed"], rtol=1e-9)
    with pytest.raises(ValueError, match="new levels detected"):
        m1.predict(nd)


def test_predict_data_is_fitted(m1):
    np.testing.assert_allclose(m1.predict(), m1.fitted, rtol=1e-12)
    np.testing.assert_allclose(m1.predict(re_form=None), m1.mf.X @ m1.beta, rtol=1e-12)


def test_condvar_matches_lme4(m1):
    ref = np.reshape(REF["condvar_first"]["values"], (2, 2), order="F")
    np.testing.assert_allclose(m1.ranef_condvar["Subject"][0], ref, rtol=1e-4)


def test_simulate_shape_seed_and_moments(m0):
    a = m0.simulate(3, seed=42)
    b = m0.simulate(3, seed=42)
    assert a.shape == (m0.nobs, 3) and list(a.columns) == ["sim_1", "sim_2", "sim_3"]
    pd.testing.assert_frame_equal(a, b)
    # over many draws, the covariance of two observations of one subject is tau^2 (computation:
    # the marginal model y ~ N(X beta, Z psi Z' + sigma^2 I))
    sims = m0.simulate(4000, seed=1).to_numpy()
    tau2 = m0.psi(0)[0, 0]
    c = np.cov(sims[0], sims[1])
    assert c[0, 1] == pytest.approx(tau2, rel=0.08)
    assert c[0, 0] == pytest.approx(tau2 + m0.sigma ** 2, rel=0.08)
    with pytest.raises(ValueError):
        m0.simulate(0)


def test_refit_same_response_gives_same_fit(m1):
    r = refit(m1, m1.mf.y)
    assert r.objective == pytest.approx(m1.objective, abs=1e-8)
    np.testing.assert_allclose(r.fixef, m1.fixef, rtol=1e-9)
    with pytest.raises(ValueError):
        refit(m1, m1.mf.y[:-1])


def test_bootstrap_is_reproducible_and_prints_a_fixed_bar(m0, capsys):
    a = bootstrap(m0, lambda f: f.fixef.to_numpy(), nsim=8, seed=3, progress=True)
    out = capsys.readouterr().out
    b = bootstrap(m0, lambda f: f.fixef.to_numpy(), nsim=8, seed=3)
    assert a.shape == (8, 2)
    np.testing.assert_array_equal(a, b)
    # captured output is not a terminal: the finished bar, once, as one line
    assert out == "bootstrap: [" + "#" * 40 + "] 8/8\n"


def test_lrt_bootstrap_statistic(m0, m1):
    stat = bootstrap(
        m0, lambda fits: 2 * (fits[1].refit_ml().loglik - fits[0].refit_ml().loglik),
        nsim=5, seed=11, fits=[m0, m1])
    assert stat.shape == (5,)
    assert np.all(stat > -1e-6)  # the bigger model never fits worse


def test_confint_bad_input(m1):
    with pytest.raises(ValueError, match="method"):
        m1.confint("bogus")
    with pytest.raises(ValueError, match="level"):
        m1.confint("Wald", level=1.5)
