"""all_fit (lme4's allFit) against lme4's own allFit.

Reference: tests/data/lme4_allfit.json, written by tests/data/make_lme4_allfit.R (R 4.2.2,
lme4 1.1-31): allFit() of sleepstudy's ``Reaction ~ Days + (Days | Subject)`` (REML) and of the
same model by ML with Days in units of 1e-4 days (``DaysS = Days * 1e4``). On the second, lme4's
optimizers stop between 1751.939 and 1788.657 (deviance), every one of them calls the fit
singular, and optimx's L-BFGS-B fails; mmbook's three optimizers must all reach lme4's best
deviance or lower, agree with each other, and not call the fit singular.
"""

import json
import warnings
from pathlib import Path

import numpy as np
import pytest

import mmbook
from mmbook.engine.control import PredictorScaleWarning

REF = json.loads((Path(__file__).parent / "data" / "lme4_allfit.json").read_text())["models"]


def _fit(name):
    d = mmbook.load_sleepstudy()
    d["DaysS"] = d["Days"] * 1e4
    r = REF[name]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PredictorScaleWarning)
        return mmbook.lmer(r["formula"], d, REML=r["REML"])


@pytest.fixture(scope="module", params=list(REF))
def case(request):
    fit = _fit(request.param)
    return request.param, fit, mmbook.all_fit(fit)


def test_reference_file():
    assert set(REF) == {"sleep_REML", "sleep_scaled_ML"}
    assert len(REF["sleep_REML"]["fits"]) == 7
    crit = [r["criterion"] for r in REF["sleep_scaled_ML"]["fits"].values()]
    assert max(crit) - min(crit) > 30  # lme4's optimizers disagree on the scaled model


def test_every_optimizer_reaches_lme4s_best(case):
    name, fit, af = case
    lme4 = REF[name]["fits"]
    best = min(lme4, key=lambda k: lme4[k]["criterion"])
    assert list(af.fits) == ["L-BFGS-B", "bobyqa", "Nelder-Mead"] and af.which_ok.all()
    crit = af.criterion
    ref = lme4[best]["criterion"]
    assert np.all(crit <= ref + 1e-9 * ref) and np.all(crit >= ref - 1e-6)
    assert crit.max() - crit.min() < 1e-9 * ref
    assert af.converged.all() and not any(af.msgs.values())
    # estimates: lme4's best optimizer stops within ~1e-6 (relative) of the optimum
    np.testing.assert_allclose(af.fixef.to_numpy(), np.tile(list(lme4[best]["fixef"].values()), (3, 1)), rtol=1e-5)
    np.testing.assert_allclose(af.theta.to_numpy(), np.tile(lme4[best]["theta"], (3, 1)), rtol=2e-4)
    # lme4 stores as.data.frame(VarCorr())$sdcor (SDs, then the correlation, then sigma) under
    # theta's names (SD, correlation, SD); mmbook's sdcor follows the names
    np.testing.assert_allclose(af.sdcor.to_numpy()[:, [0, 2, 1, 3]], np.tile(lme4[best]["sdcor"], (3, 1)),
                               rtol=2e-4)
    np.testing.assert_allclose(af.llik, lme4[best]["loglik"], rtol=1e-9)


def test_names_and_print(case):
    name, fit, af = case
    var = "DaysS" if "scaled" in name else "Days"
    assert list(af.theta.columns) == ["Subject.(Intercept)", f"Subject.{var}.(Intercept)", f"Subject.{var}"]
    assert list(af.sdcor.columns) == list(af.theta.columns) + ["sigma"]
    text = str(af)
    assert text.splitlines()[:3] == ["original model:", fit.formula,
                                     "optimizers (3): L-BFGS-B, bobyqa, Nelder-Mead"]
    assert "differences in negative log-likelihoods:" in text and "failed" not in text


def test_scaled_model_is_not_singular():
    fit = _fit("sleep_scaled_ML")
    lme4 = REF["sleep_scaled_ML"]["fits"]
    assert all("boundary (singular) fit" in " ".join(r["messages"]) for r in lme4.values())
    assert not fit.is_singular  # the same model as sleep with Days in days, which is not singular


def test_failed_optimizer_is_reported(monkeypatch):
    """An optimizer that cannot run is a row of its own, not a silent omission."""
    import builtins

    real_import = builtins.__import__

    def no_nlopt(name, *args, **kw):
        if name == "nlopt":
            raise ImportError("No module named 'nlopt'")
        return real_import(name, *args, **kw)

    monkeypatch.setattr(builtins, "__import__", no_nlopt)
    af = mmbook.all_fit(_fit("sleep_REML"))
    assert af.which_ok.to_dict() == {"L-BFGS-B": True, "bobyqa": False, "Nelder-Mead": True}
    assert "needs the nlopt package" in af.msgs["bobyqa"][0]
    assert "1 optimizer(s) failed" in str(af)
    with pytest.raises(ValueError, match="unknown optimizer 'BFGS'"):
        mmbook.all_fit(_fit("sleep_REML"), optimizers=["BFGS"])
