"""lmer's arguments weights=, offset=, contrasts= and na_action= against lme4.

Reference: tests/data/lme4_args.json, written by tests/data/make_lme4_args.R (R 4.2.2, lme4 1.1-31;
versions recorded in the file) from tests/data/args/args.csv (sleepstudy plus simulated weights,
offsets, a four-level factor and three missing responses) and tests/data/args/args_new.csv.

Tolerances, as in tests/test_lmm_designs.py: the criterion must be lme4's or lower and equal within
1e-6 (relative); lme4's optimizer stops up to ~1e-4 short in theta on the weighted slope fits (the
criterion is flat there, so that costs it < 1e-6), so theta is compared to 2e-4 (absolute) and
everything computed from it to 2e-4 relative to its natural scale (sigma for residuals, the
largest element for vcov, the response's size for fitted values). Names must match exactly.

Two places where mmbook deliberately differs from lme4 1.1-31, each tested against the lme4 fit
that means the same model:
* zero weights: lme4 returns an infinite criterion and stays at its start (recorded in the JSON);
  mmbook removes the rows' influence, so its fit is lme4's fit without those rows;
* the offset *argument* with new data: lme4 leaves it out of predict(newdata); mmbook evaluates it
  on the new data, as R's predict.lm does - the reference is lme4's fit with the same offsets
  written as offset() terms, which lme4 does evaluate on new data.
"""

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import mmbook
from mmbook.engine.contrasts import contr

DATA = Path(__file__).parent / "data"
REF = json.loads((DATA / "lme4_args.json").read_text())
TOL = 2e-4


@pytest.fixture(scope="module")
def args_data():
    return pd.read_csv(DATA / "args" / "args.csv"), pd.read_csv(DATA / "args" / "args_new.csv")


def vec(v) -> np.ndarray:
    """A JSON vector (R's NA as null, a length-1 vector unboxed) as floats."""
    return np.array([np.nan if x is None else x for x in np.atleast_1d(np.array(v, dtype=object))], dtype=float)


def close(ours, theirs, scale, tol=TOL):
    ours, theirs = np.asarray(ours, dtype=float), vec(theirs)
    assert ours.shape == theirs.shape
    np.testing.assert_array_equal(np.isnan(ours), np.isnan(theirs))
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=tol * scale, equal_nan=True)


def check_core(fit, r, nobs=None):
    """Criterion, estimates and information criteria of a fit against lme4's."""
    assert fit.REML == r["REML"]
    assert fit.objective <= r["objective"] + 1e-6 * abs(r["objective"])
    assert fit.objective == pytest.approx(r["objective"], rel=1e-6)
    assert list(fit.fixef.index) == r["fixef_names"]
    close(fit.theta, r["theta"], 1.0)
    close([fit.sigma], r["sigma"], r["sigma"])
    se = np.sqrt(np.diag(np.array(r["vcov"])))
    np.testing.assert_allclose(fit.fixef.to_numpy(), vec(r["fixef"]), rtol=0, atol=TOL * se.max())
    V = np.array(r["vcov"])
    np.testing.assert_allclose(fit.vcov.to_numpy(), V, rtol=0, atol=TOL * np.abs(V).max())
    for ours, key in ((fit.loglik, "logLik"), (fit.aic, "AIC"), (fit.bic, "BIC")):
        assert ours == pytest.approx(r[key], rel=1e-6)
    assert fit.nobs == (r["nobs"] if nobs is None else nobs)


def check_rows(fit, r, newdata, k=24, new_ref=None):
    """Fitted values, residuals and predictions (the first k rows) against lme4's."""
    y = np.abs(vec(r["fitted"]))
    scale = np.nanmax(y)
    close(fit.fitted.to_numpy()[:k], vec(r["fitted"])[:k], scale)
    close(fit.resid("response").to_numpy()[:k], vec(r["resid_response"])[:k], r["sigma"])
    close(fit.resid("pearson").to_numpy()[:k], vec(r["resid_pearson"])[:k], r["sigma"])
    close(fit.resid("pearson", scaled=True).to_numpy()[:k], vec(r["resid_pearson_scaled"])[:k], 1.0)
    close(fit.predict().to_numpy()[:k], vec(r["predict"])[:k], scale)
    close(fit.predict(re_form=None).to_numpy()[:k], vec(r["predict_fixed"])[:k], scale)
    new_ref = r if new_ref is None else new_ref
    close(fit.predict(newdata).to_numpy(), new_ref["predict_new"], scale)
    close(fit.predict(newdata, re_form=None).to_numpy(), new_ref["predict_new_fixed"], scale)


# --- weights ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", list(REF["weights"]))
def test_weighted_fit_matches_lme4(args_data, name):
    d, nd = args_data
    r = REF["weights"][name]
    fit = mmbook.lmer(r["formula"], d, REML=r["REML"], weights=r["weights"])
    check_core(fit, r)
    check_rows(fit, r, nd)


def test_weights_as_array_equal_weights_as_column(args_data):
    d, _ = args_data
    a = mmbook.lmer("Reaction ~ Days + (Days | Subject)", d, weights=d["w"].to_numpy())
    b = mmbook.lmer("Reaction ~ Days + (Days | Subject)", d, weights="w")
    assert a.objective == b.objective
    np.testing.assert_array_equal(a.weights, d["w"].to_numpy())


def test_weighted_criterion_constant_is_lme4s(args_data):
    """Weights c*w describe the same model as w with sigma scaled by sqrt(c) and theta by
    1/sqrt(c); because the criterion subtracts sum(log w_i) (lme4's ldW) it is the model's
    (restricted) likelihood and does not change - without that term it would move by n log(c)."""
    d, _ = args_data
    for REML in (True, False):
        a = mmbook.lmer("Reaction ~ Days + (1 | Subject)", d, weights="w", REML=REML)
        b = mmbook.lmer("Reaction ~ Days + (1 | Subject)", d, weights=4.0 * d["w"].to_numpy(), REML=REML)
        assert b.sigma == pytest.approx(2.0 * a.sigma, rel=1e-6)
        np.testing.assert_allclose(b.theta, a.theta / 2.0, rtol=1e-5)
        assert b.objective == pytest.approx(a.objective, abs=1e-6)


def test_zero_weights_drop_the_rows_influence(args_data):
    """lme4 1.1-31 gives an infinite criterion for zero weights (recorded); mmbook's fit equals
    lme4's fit without the zero-weight rows, and still gives those rows fitted values."""
    d, _ = args_data
    z = REF["zero"]
    assert z["lme4_REMLcrit_with_zeros"] == "Inf"
    zero = np.array(z["zero_rows_1based"]) - 1
    for REML, r in ((True, z["without_zero_rows"]), (False, z["without_zero_rows_ML"])):
        fit = mmbook.lmer(z["formula"], d, REML=REML, weights="w0")
        assert fit.nobs == len(d) and fit.mf.n_eff == r["nobs"] == len(d) - len(zero)
        check_core(fit, r, nobs=len(d))
        assert np.all(np.isfinite(fit.fitted.to_numpy()[zero]))
        assert np.all(fit.resid("pearson").to_numpy()[zero] == 0.0)


@pytest.mark.parametrize("w, message", [
    (-1.0, "non-negative: 1 is negative"),
    (np.inf, "finite"),
])
def test_bad_weights_are_errors(args_data, w, message):
    d, _ = args_data
    bad = d["w"].to_numpy().copy()
    bad[7] = w
    with pytest.raises(ValueError, match=message):
        mmbook.lmer("Reaction ~ Days + (1 | Subject)", d, weights=bad)


def test_weights_of_the_wrong_length_or_kind(args_data):
    d, _ = args_data
    with pytest.raises(ValueError, match="one value per row of data"):
        mmbook.lmer("Reaction ~ Days + (1 | Subject)", d, weights=np.ones(10))
    with pytest.raises(TypeError, match="must be numeric"):
        mmbook.lmer("Reaction ~ Days + (1 | Subject)", d, weights="s")
    with pytest.raises(ValueError, match="all weights are zero"):
        mmbook.lmer("Reaction ~ Days + (1 | Subject)", d, weights=np.zeros(len(d)))


def test_weights_survive_refit_and_refit_ml(args_data):
    """Every path builds the criterion from the model frame, which carries the weights."""
    d, _ = args_data
    r = REF["weights"]
    reml = mmbook.lmer("Reaction ~ Days + (Days | Subject)", d, weights="w")
    check_core(reml.refit_ml(), r["slope_ML"])
    again = mmbook.refit(reml, d["Reaction"].to_numpy())
    assert again.objective == pytest.approx(reml.objective, abs=1e-6)
    np.testing.assert_array_equal(again.weights, d["w"].to_numpy())


def test_simulate_weighted_fit_uses_sigma_over_sqrt_w(args_data):
    """Var(y*_i) = tau^2 + sigma^2 / w_i for a random-intercept model (lme4's simulate)."""
    d, _ = args_data
    fit = mmbook.lmer("Reaction ~ Days + (1 | Subject)", d, weights="w")
    Y = fit.simulate(nsim=40000, seed=11).to_numpy()
    expected = fit.psi(0)[0, 0] + fit.sigma ** 2 / d["w"].to_numpy()
    # the variance of 40000 draws has relative sd sqrt(2 / 40000) = 0.7%: 4% is > 5 sd
    np.testing.assert_allclose(Y.var(axis=1), expected, rtol=0.04)


# --- offsets ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["formula", "two_terms", "repeated", "weighted_slope"])
def test_offset_in_the_formula_matches_lme4(args_data, name):
    d, nd = args_data
    r = REF["offsets"][name]
    fit = mmbook.lmer(r["formula"], d, weights=r.get("weights"))
    check_core(fit, r)
    check_rows(fit, r, nd)


@pytest.mark.parametrize("name, same_model", [("argument", "formula"), ("both", "two_terms")])
def test_offset_argument_matches_lme4(args_data, name, same_model):
    """The fit is lme4's; for new data the offset argument is evaluated on them (see module docstring)."""
    d, nd = args_data
    r = REF["offsets"][name]
    fit = mmbook.lmer(r["formula"], d, offset=r["offset"])
    check_core(fit, r)
    check_rows(fit, r, nd, new_ref=REF["offsets"][same_model])


def test_offset_as_array_and_repeated_terms(args_data):
    d, nd = args_data
    a = mmbook.lmer("Reaction ~ Days + (1 | Subject)", d, offset=d["o"].to_numpy())
    b = mmbook.lmer("Reaction ~ Days + offset(o) + (1 | Subject)", d)
    np.testing.assert_allclose(a.fitted, b.fitted, rtol=1e-12)
    np.testing.assert_allclose(a.offset, d["o"].to_numpy())
    assert b.mf.formula.offsets == ("o",)
    with pytest.raises(ValueError, match="offset was given as an array"):
        a.predict(nd)


def test_offset_in_formula_is_no_longer_a_missing_variable(args_data):
    d, _ = args_data
    fit = mmbook.lmer("Reaction ~ Days + offset(log(w)) + (1 | Subject)", d)
    assert fit.formula == "Reaction ~ Days + offset(log(w)) + (1 | Subject)"
    np.testing.assert_allclose(fit.offset, np.log(d["w"].to_numpy()))


def test_offset_survives_refit_and_simulate(args_data):
    """refit's new response includes the offset, as lme4's refit(newresp) does."""
    d, _ = args_data
    fit = mmbook.lmer("Reaction ~ Days + offset(o) + (1 | Subject)", d)
    again = mmbook.refit(fit, d["Reaction"].to_numpy())
    assert again.objective == pytest.approx(fit.objective, abs=1e-6)
    # the mean of 20000 draws has sd sqrt(tau^2 + sigma^2) / sqrt(20000) < 0.35 here: 2.5 is > 7 sd
    Y = fit.simulate(nsim=20000, seed=3).to_numpy()
    np.testing.assert_allclose(Y.mean(axis=1), fit.predict(re_form=None).to_numpy(), atol=2.5)


# --- contrasts -------------------------------------------------------------------------------------
CONTRASTS = {
    "sum": "contr.sum",
    "helmert": "contr.helmert",
    "poly": "contr.poly",
    "SAS": "contr.SAS",
    "treatment_base2": contr.treatment(base="b"),
    "matrix_unnamed": "matrix",
    "matrix_named": "named matrix",
}


@pytest.mark.parametrize("name", list(CONTRASTS))
def test_contrasts_match_lme4(args_data, name):
    d, _ = args_data
    C = REF["contrasts"]
    spec = CONTRASTS[name]
    M = np.array(C["matrix"])
    if spec == "matrix":
        spec = M
    elif spec == "named matrix":
        spec = pd.DataFrame(M, index=C["levels"], columns=["x1", "x2", "x3"])
    fit = mmbook.lmer(C["formula"], d, contrasts={"s": spec})
    check_core(fit, C[name])


def test_contrasts_in_an_interaction(args_data):
    d, _ = args_data
    r = REF["contrasts"]["interaction_sum"]
    check_core(mmbook.lmer(r["formula"], d, contrasts={"s": "contr.sum"}), r)


def test_contrast_errors(args_data):
    d, _ = args_data
    f = "Reaction ~ Days + s + (1 | Subject)"
    with pytest.raises(ValueError, match="unknown contrast 'contr.foo'"):
        mmbook.lmer(f, d, contrasts={"s": "contr.foo"})
    with pytest.raises(ValueError, match="contrasts apply only to factors; 'Days' is numeric"):
        mmbook.lmer(f, d, contrasts={"Days": "contr.sum"})
    with pytest.raises(ValueError, match="base 'z' is not a level"):
        mmbook.lmer(f, d, contrasts={"s": contr.treatment(base="z")})
    with pytest.raises(ValueError, match="must have 4 rows"):
        mmbook.lmer(f, d, contrasts={"s": np.ones((3, 2))})
    with pytest.warns(UserWarning, match="'h' is not in the fixed part; its contrast will be ignored"):
        mmbook.lmer(f, d, contrasts={"h": "contr.sum"})


def test_contrasts_do_not_reach_the_random_part(args_data):
    """lme4 passes contrasts to X only; a factor in a random term keeps treatment coding."""
    d, _ = args_data
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = mmbook.lmer("Reaction ~ s + (s | Subject)", d, contrasts={"s": "contr.sum"})
    assert list(fit.fixef.index) == ["(Intercept)", "s1", "s2", "s3"]
    assert fit.terms[0].cnames == ["(Intercept)", "sb", "sc", "sd"]


# --- na_action -------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["unweighted", "weighted"])
def test_na_exclude_pads_like_lme4(args_data, name):
    d, nd = args_data
    E = REF["exclude"]
    r = E[name]
    with pytest.warns(UserWarning, match=r"^3 rows with missing values removed \(of 180\)$"):
        fit = mmbook.lmer(E["formula"], d, weights=r.get("weights"), na_action="exclude")
    check_core(fit, r)
    check_rows(fit, r, nd, k=len(d))
    for s in (fit.fitted, fit.residuals, fit.predict(), fit.resid("pearson")):
        assert s.index.equals(d.index)
        assert list(np.flatnonzero(s.isna())) == [i - 1 for i in E["na_rows_1based"]]
    sim = fit.simulate(seed=1)
    assert len(sim) == E["simulate_rows"] and sim.iloc[:, 0].isna().sum() == 3


def test_na_omit_is_the_default(args_data):
    d, _ = args_data
    with pytest.warns(UserWarning):
        fit = mmbook.lmer("y2 ~ Days + (1 | Subject)", d)
    assert len(fit.fitted) == len(fit.residuals) == len(fit.predict()) == len(d) - 3
    with pytest.raises(ValueError, match="na_action must be 'omit' or 'exclude'"):
        mmbook.lmer("y2 ~ Days + (1 | Subject)", d, na_action="pass")


def test_resid_types(args_data):
    d, _ = args_data
    fit = mmbook.lmer("Reaction ~ Days + (1 | Subject)", d, weights="w")
    np.testing.assert_allclose(fit.resid("working"), fit.residuals)
    np.testing.assert_allclose(fit.resid("deviance"), fit.resid("pearson"))
    np.testing.assert_allclose(fit.resid("pearson"), fit.residuals * np.sqrt(d["w"].to_numpy()))
    with pytest.raises(ValueError, match="type must be"):
        fit.resid("partial")


def test_crosscheck_says_statsmodels_cannot_fit_weights_or_offsets(args_data):
    d, _ = args_data
    for kwargs in ({"weights": "w"}, {"offset": "o"}):
        fit = mmbook.lmer("Reaction ~ Days + (1 | Subject)", d, **kwargs)
        with pytest.raises(NotImplementedError, match="statsmodels' MixedLM cannot fit a model with"):
            mmbook.crosscheck(fit)


def test_profile_intervals_of_a_weighted_fit(args_data):
    """Variance parameters: lme4's profile intervals. Fixed effects: lme4 1.1-31's profile of a
    weighted fit is wrong there (its Days interval is 40 times narrower than Wald's, with
    "bad spline fit" warnings), so the check is independent: at each limit v of beta_Days, the
    ML deviance with Days' coefficient held at v (an offset v * Days, weights kept) exceeds the
    minimum by qnorm(0.975)^2."""
    d, _ = args_data
    r = REF["weights"]["ri_REML"]
    fit = mmbook.lmer(r["formula"], d, weights="w")
    ci = fit.confint(method="profile")
    assert list(ci.index) == r["confint_names"]
    ref = np.array(r["confint_profile"])
    np.testing.assert_allclose(ci.to_numpy()[:2], ref[:2], rtol=1e-5)
    dev_min = fit.refit_ml().objective
    for v in ci.loc["Days"]:
        held = mmbook.lmer("Reaction ~ 1 + offset(v * Days) + (1 | Subject)", d.assign(v=v), weights="w",
                           REML=False)
        assert held.objective - dev_min == pytest.approx(1.959963984540054 ** 2, abs=1e-4)


def test_summary_of_a_weighted_offset_fit_is_lme4s(args_data):
    """lme4's printed summary, "Weights:" and " Offset:" lines included; lme4 prints the data's R
    name ("   Data: d"), which mmbook does not know, and the scaled residuals are Pearson's."""
    d, _ = args_data
    r = REF["summary_weighted_offset"]
    fit = mmbook.lmer(r["formula"], d, weights=r["weights"], offset=r["offset"])
    expected = [line for line in r["text"] if not line.startswith("   Data: ")]
    while expected and expected[-1] == "":
        expected.pop()
    assert str(fit).splitlines() == expected


def test_weights_and_offset_survive_the_bootstrap(args_data):
    """Each bootstrap refit is the same weighted model with the offset (they live on the model frame)."""
    d, _ = args_data
    fit = mmbook.lmer("Reaction ~ Days + offset(o) + (1 | Subject)", d, weights="w", contrasts=None)
    draws = mmbook.bootstrap(fit, lambda f: [f.weights.sum(), f.offset.sum(), f.mf.n_eff], nsim=3, seed=2)
    np.testing.assert_allclose(draws, [[d["w"].sum(), d["o"].sum(), len(d)]] * 3)
    assert fit.mf.arguments == {"weights": "w"}
