"""mmbook.forms.icc: the intraclass correlation and its interval.

References, stated per test:
- icc_sleepstudy.json: R 4.2.2, lme4 1.1-31 (how, in its "source" field): the ICC of
  lmer(Reaction ~ Days + (1 | Subject)) from VarCorr, REML and ML, and the profile limits of
  theta where the ML devfun exceeds the ML deviance by qchisq(0.95, 1), found by uniroot.
- fit.varcorr: tau^2 / (tau^2 + sigma^2), the definition.
"""

import json
from pathlib import Path

import numpy as np
import pytest

import mmbook
from mmbook.forms.icc import ICCInterval, icc_interval

HERE = Path(__file__).parent
REF = json.loads((HERE / "data" / "icc_sleepstudy.json").read_text())


@pytest.fixture(scope="module")
def sleep():
    return mmbook.load_sleepstudy()


@pytest.fixture(scope="module")
def fit(sleep):
    return mmbook.lmer("Reaction ~ Days + (1 | Subject)", sleep)


def test_icc_is_variance_ratio(fit):
    vc = fit.varcorr.set_index("grp")["vcov"]
    tau2, sigma2 = vc["Subject"], vc["Residual"]
    assert fit.icc() == pytest.approx(tau2 / (tau2 + sigma2), rel=1e-14)
    assert fit.icc() == pytest.approx(fit.theta[0] ** 2 / (1 + fit.theta[0] ** 2), rel=1e-12)
    # R, REML and ML. The criterion is flat to rounding noise (~1e-12 of 1786) within ~2e-7 of
    # the optimum theta, so neither lme4 nor mmbook pins theta (and the ICC) closer than ~1e-7.
    assert fit.icc() == pytest.approx(REF["icc_REML"], rel=1e-6)
    assert fit.refit_ml().icc() == pytest.approx(REF["icc_ML"], rel=1e-6)


def test_profile_interval_equals_r(fit):
    ci = icc_interval(fit, method="profile")
    assert isinstance(ci, ICCInterval) and ci.method == "profile" and ci.nsim is None
    assert ci.estimate == fit.icc()
    assert ci.lower == pytest.approx(REF["icc_lower"], abs=1e-7)
    assert ci.upper == pytest.approx(REF["icc_upper"], abs=1e-7)
    assert ci.lower < ci.estimate < ci.upper


def test_profile_interval_narrows_with_level(fit):
    wide = icc_interval(fit, level=0.99)
    narrow = icc_interval(fit, level=0.8)
    assert wide.lower < narrow.lower < fit.icc() < narrow.upper < wide.upper


def test_boot_interval_contains_estimate_and_is_reproducible(fit):
    a = icc_interval(fit, method="boot", nsim=30, seed=11)
    b = icc_interval(fit, method="boot", nsim=30, seed=11)
    assert a == b
    assert a.method == "boot" and a.nsim == 30
    assert 0 <= a.lower < a.estimate < a.upper <= 1
    c = icc_interval(fit, method="boot", nsim=30, seed=12)
    assert (c.lower, c.upper) != (a.lower, a.upper)


def test_str(fit):
    assert str(icc_interval(fit)) == "ICC = 0.589, 95% profile-likelihood interval [0.403, 0.751]"


def test_profile_lower_limit_zero_when_tau_small():
    # clusters that barely differ: tau = 0 is inside the interval
    rng = np.random.default_rng(1)
    import pandas as pd
    d = pd.DataFrame({"g": np.repeat(np.arange(6), 4), "y": rng.normal(size=24)})
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        f = mmbook.lmer("y ~ 1 + (1 | g)", d)
    ci = icc_interval(f)
    assert ci.lower == 0.0 and ci.upper > ci.estimate


@pytest.mark.parametrize("formula", ["Reaction ~ Days + (Days | Subject)",
                                     "Reaction ~ Days + (1 | Subject) + (0 + Days | Subject)",
                                     "Reaction ~ 1 + (0 + Days | Subject)"])
def test_error_for_other_models(sleep, formula):
    f = mmbook.lmer(formula, sleep)
    with pytest.raises(ValueError, match="random intercept"):
        icc_interval(f)
    with pytest.raises(ValueError, match=r"\(1 \| g\)"):
        f.icc()


def test_bad_arguments(fit):
    with pytest.raises(ValueError, match="method must be"):
        icc_interval(fit, method="wald")
    with pytest.raises(ValueError, match="level"):
        icc_interval(fit, level=95)
    with pytest.raises(ValueError, match="nsim"):
        icc_interval(fit, method="boot", nsim=1)
    with pytest.raises(TypeError, match="mmbook.lmer"):
        icc_interval("not a fit")
