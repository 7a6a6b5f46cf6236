"""The verbs around a fit: predict(re_form), simulate, update, anova of one model, drop1,
deviance/REMLcrit/df_residual/coef_table, getME pieces, tidy/glance, bootstrap.

Reference numbers: tests/data/lme4_verbs.json, written by tests/data/make_lme4_verbs.R (R 4.2.2,
lme4 1.1-31, broom.mixed 0.2.9.4) on mmbook/data/sleepstudy.csv and tests/data/verbs.csv (a
simulated data set the script writes). Models:
  m1   Reaction ~ Days + (Days | Subject), sleepstudy, REML
  m0ml Reaction ~ Days + (1 | Subject), sleepstudy, ML
  fa   y ~ x * f + z + (1 | g) + (1 | h), verbs.csv, REML (crossed intercepts)
  fb   y ~ x + f + (x | g) + (1 | h), verbs.csv, ML

Tolerances. lme4 stops its optimizer short of the optimum (tests/test_applied_numbers.py): on m1
its theta is ~1e-5 (relative) from the optimum, on fb ~1e-4: fb's criterion is flat in the slope
variance, and where lme4 stops moves with bit-level noise (runs of the R script gave thetas up to
1.2e-4 apart, relative, with deviances equal to 1e-7). Quantities that move with theta are compared at
rtol 2e-5 (m1) and 3e-4 (fb); fa's crossed intercepts are pinned more tightly (1e-6). Simulated
responses with mmbook.RRandom(seed) are lme4's draw for draw: they differ from lme4's only
through the estimates (a wrong draw would differ by a whole standard deviation).
"""

import io
import json
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

import mmbook
from mmbook import RRandom
from mmbook.engine.bootstrap import bootstrap
from mmbook.engine.stages import refit
from mmbook.engine.update import update_formula

DATA = Path(__file__).parent / "data"
REF = json.loads((DATA / "lme4_verbs.json").read_text())


def M(block):
    """A matrix stored column-major by the R script."""
    return np.reshape(block["values"], (block["nrow"], block["ncol"]), order="F")


def close(actual, desired, rtol):
    """Equal to ``rtol`` relative to the largest reference value (a prediction can be near 0)."""
    desired = np.asarray(desired, dtype=float)
    np.testing.assert_allclose(np.asarray(actual, dtype=float), desired, rtol=rtol,
                               atol=rtol * np.nanmax(np.abs(desired)))


def table(block):
    """An R data frame (or anova table) stored by column; length-1 columns were unboxed."""
    return pd.DataFrame({k: np.atleast_1d(v) for k, v in block.items()})


@pytest.fixture(scope="module")
def sleep():
    return mmbook.load_sleepstudy()


@pytest.fixture(scope="module")
def d():
    return pd.read_csv(DATA / "verbs.csv")


@pytest.fixture(scope="module")
def m1(sleep):
    return mmbook.lmer("Reaction ~ Days + (Days | Subject)", sleep)


@pytest.fixture(scope="module")
def m0ml(sleep):
    return mmbook.lmer("Reaction ~ Days + (1 | Subject)", sleep, REML=False)


@pytest.fixture(scope="module")
def fa(d):
    return mmbook.lmer("y ~ x * f + z + (1 | g) + (1 | h)", d)


@pytest.fixture(scope="module")
def fb(d):
    return mmbook.lmer("y ~ x + f + (x | g) + (1 | h)", d, REML=False)


def test_reference_file():
    assert "lme4 1.1.31" in REF["source"] and "broom.mixed 0.2.9.4" in REF["source"]


# ----------------------------------------------------------------------------- predict
@pytest.mark.parametrize("key, model, re_form, rtol", [
    ("fa_g", "fa", "~ (1 | g)", 1e-7), ("fa_h", "fa", "~(1|h)", 1e-7), ("fa_gh", "fa", "~ (1 | g) + (1 | h)", 1e-7),
    ("fa_na", "fa", None, 1e-7), ("fa_na", "fa", "NA", 1e-7), ("fa_0", "fa", "~0", 1e-7),
    ("fb_g_int", "fb", "~ (1 | g)", 3e-4), ("fb_g_slope", "fb", "~ (0 + x | g)", 3e-4), ("fb_g", "fb", "~ (x | g)", 3e-4),
    ("m1_int", "m1", "~ (1 | Subject)", 2e-5)])
def test_predict_re_form(request, key, model, re_form, rtol):
    fit = request.getfixturevalue(model)
    close(fit.predict(re_form=re_form), REF["predict"][key], rtol)


def test_predict_re_form_newdata(fa, fb):
    nd = pd.DataFrame(REF["predict"]["nd"])
    close(fa.predict(nd, re_form="~ (1 | h)"), REF["predict"]["fa_nd_h"], 1e-7)
    close(fb.predict(nd, re_form="~ (1 | g)"), REF["predict"]["fb_nd_g_int"], 3e-4)


def test_predict_re_form_all_terms_is_all(fa, fb):
    np.testing.assert_allclose(fa.predict(re_form="~ (1 | g) + (1 | h)"), fa.predict(), rtol=1e-12)
    np.testing.assert_allclose(fb.predict(re_form="~ (x | g) + (1 | h)"), fb.fitted, rtol=1e-12)


def test_predict_re_form_errors(fa, fb):
    with pytest.raises(ValueError, match="grouping factor 'f'"):
        fa.predict(re_form="~ (1 | f)")
    with pytest.raises(ValueError, match="not present in the model: x"):
        fa.predict(re_form="~ (x | g)")
    with pytest.raises(ValueError, match="formula of random-effects terms"):
        fa.predict(re_form="~ x")
    with pytest.raises(TypeError, match="re_form"):
        fa.predict(re_form=1)
    nd = pd.DataFrame({"x": [1.0], "z": [0.0], "f": ["a"], "g": ["new"], "h": ["h1"]})
    with pytest.raises(ValueError, match="new levels"):
        fb.predict(nd, re_form="~ (1 | g)")
    ok = fb.predict(nd, re_form="~ (1 | g)", allow_new_levels=True)
    np.testing.assert_allclose(ok, fb.predict(nd, re_form=None), rtol=1e-12)


# ---------------------------------------------------------------------------- simulate
@pytest.mark.parametrize("key, model, kwargs, seed, nsim, rtol", [
    ("m1", "m1", {}, 101, 3, 2e-5),
    ("m1_use_u", "m1", {"use_u": True}, 102, 2, 2e-5),
    ("fa", "fa", {}, 103, 2, 1e-6),
    ("fa_h", "fa", {"re_form": "~ (1 | h)"}, 104, 2, 1e-6),
    ("fa_na", "fa", {"re_form": None}, 105, 1, 1e-6),
])
def test_simulate_matches_lme4_draw_for_draw(request, key, model, kwargs, seed, nsim, rtol):
    fit = request.getfixturevalue(model)
    sims = fit.simulate(nsim, seed=RRandom(seed), **kwargs)
    assert list(sims.columns) == [f"sim_{i + 1}" for i in range(nsim)]
    assert sims.index.equals(fit.mf.frame.index)
    close(sims.to_numpy(), M(REF["simulate"][key]), rtol)


def test_simulate_newdata_matches_lme4(m1):
    nds = pd.DataFrame(REF["simulate"]["nds"]).astype({"Subject": str})
    a = m1.simulate(2, seed=RRandom(106), newdata=nds)
    np.testing.assert_allclose(a.to_numpy(), M(REF["simulate"]["m1_newdata"]), rtol=2e-5)
    b = m1.simulate(2, seed=RRandom(107), newdata=nds, use_u=True)
    np.testing.assert_allclose(b.to_numpy(), M(REF["simulate"]["m1_newdata_use_u"]), rtol=2e-5)
    assert b.index.equals(nds.index)


def test_simulate_conditional_on_first_term_uses_each_terms_theta(fa):
    """re_form = ~(1 | g) keeps g's modes and draws h afresh with h's own theta.

    lme4 1.1-31 draws h here with g's theta (make_lme4_verbs.R checks it: lme4's simulation equals
    the draw made with g's theta exactly), so the reference is computed independently: R's draws
    (RRandom), 8 h effects then 240 residuals, with h's theta.
    """
    check = REF["simulate"]["fa_g_theta_check"]
    assert check["with_g_theta"] == 0 and check["with_h_theta"] > 1e-3
    sims = fa.simulate(1, seed=RRandom(5), re_form="~ (1 | g)").to_numpy()[:, 0]
    rng = RRandom(5)
    u, e = rng.norm_rand(8), rng.norm_rand(fa.nobs)
    h = fa.terms[1]
    assert h.group == "h"
    eta = fa.predict(re_form="~ (1 | g)").to_numpy()
    expected = eta + fa.sigma * (fa.theta[1] * u[h.refs] + e)
    np.testing.assert_allclose(sims, expected, rtol=1e-12)


def test_simulate_new_levels_are_drawn(m1):
    nd = pd.DataFrame({"Days": [0.0, 1.0], "Subject": ["new", "new"]})
    with pytest.raises(ValueError, match="new levels"):
        m1.simulate(1, seed=1, newdata=nd)
    sims = m1.simulate(4000, seed=2, newdata=nd, allow_new_levels=True).to_numpy()
    # a new subject's two rows share its drawn effects: cov = tau0^2 (Days 0 and 1: + cov01)
    psi = m1.psi(0)
    cov = np.cov(sims)
    assert cov[0, 1] == pytest.approx(psi[0, 0] + psi[0, 1], rel=0.1)
    assert cov[0, 0] == pytest.approx(psi[0, 0] + m1.sigma ** 2, rel=0.1)


def test_simulate_bad_input(m1):
    with pytest.raises(ValueError, match="only one of use_u and re_form"):
        m1.simulate(1, use_u=True, re_form="all")
    with pytest.raises(ValueError, match="nsim"):
        m1.simulate(1.5)


def test_simulate_numpy_seed_single_term_stream_unchanged(m0ml):
    """With one term the draws are u then e, each simulation after the other (the book's seeds)."""
    rng = np.random.default_rng(7)
    u = rng.standard_normal((2, 18))
    e = rng.standard_normal((2, m0ml.nobs))
    t = m0ml.terms[0]
    expected = (m0ml.X @ m0ml.beta)[:, None] + m0ml.sigma * (m0ml.theta[0] * u[:, t.refs] + e).T
    np.testing.assert_allclose(m0ml.simulate(2, seed=7).to_numpy(), expected, rtol=1e-12)


# ------------------------------------------------------------------------------ update
@pytest.mark.parametrize("case", REF["update_formula"], ids=lambda c: f"{c['old']} | {c['new']}")
def test_update_formula_matches_r(case):
    ours = update_formula(case["old"], case["new"])
    assert ours.replace(" ", "") == case["result"].replace(" ", "")


def test_update_formula_errors():
    with pytest.raises(ValueError, match="cannot remove 'w'"):
        update_formula("y ~ x + (1 | g)", ". ~ . - w")
    with pytest.raises(ValueError, match="'.' can only stand on its own"):
        update_formula("y ~ x + (1 | g)", ". ~ a * .")
    with pytest.raises(ValueError, match="exactly one '~'"):
        update_formula("y ~ x + (1 | g)", ". - x")
    # removing part of a term written as one: (x || h) is (1 | h) + (0 + x | h)
    assert update_formula("y ~ x + (x || h)", ". ~ . - (0 + x | h)") == "y ~ x + (1 | h)"
    assert update_formula("y ~ x + (1 | g/h)", ". ~ . - (1 | h:g)") == "y ~ x + (1 | g)"


@pytest.mark.parametrize("key, kwargs", [
    ("minus_z", {"formula": ". ~ . - z"}), ("minus_xf", {"formula": ". ~ . - x:f"}),
    ("plus_I", {"formula": ". ~ . + I(z^2)"}), ("minus_h", {"formula": "~ . - (1 | h)"}),
    ("swap", {"formula": ". ~ . - (1 | g) + (x | g)"}), ("ml", {"REML": False}),
    ("no_icpt", {"formula": ". ~ . - 1"}), ("log_resp", {"formula": "log(. + 10) ~ ."})])
def test_update_matches_lme4(fa, key, kwargs):
    ref = REF["update"][key]
    m = mmbook.update(fa, **kwargs)
    assert list(m.fixef.index) == ref["names"]
    assert m.REML == ref["REML"] and m.nobs == ref["nobs"]
    rtol = 3e-4 if key == "swap" else 1e-6  # the swapped model has a slope term, as fb (see the module doc)
    np.testing.assert_allclose(m.fixef, ref["fixef"], rtol=rtol, atol=1e-7)
    assert m.objective == pytest.approx(ref["crit"], rel=1e-9, abs=1e-6)


def test_update_data_and_method(fa, m1, d):
    ref = REF["update"]["data"]
    m = fa.update(data=d[d["h"] != "h1"])
    assert m.nobs == ref["nobs"]
    assert m.objective == pytest.approx(ref["crit"], rel=1e-9)
    r = REF["update"]["m1_minus_days"]
    m = m1.update(". ~ . - Days")
    assert list(m.fixef.index) == list(np.atleast_1d(r["names"])) and m.objective == pytest.approx(r["crit"], rel=1e-9)


def test_update_errors(fa, m0ml):
    with pytest.raises(TypeError, match="no argument 'weigths'"):
        fa.update(weigths=1)
    with pytest.raises(ValueError, match="no record of the call"):
        refit(m0ml, m0ml.y).update(". ~ . - Days")
    # refit_ml keeps the call, with REML=False
    assert fa.refit_ml().call.args["REML"] is False


# ------------------------------------------------------------------- anova, drop1
@pytest.mark.parametrize("name, rtol", [("fa", 1e-6), ("fb", 3e-4), ("m1", 2e-5)])
def test_anova_one_model(request, name, rtol):
    a = mmbook.anova(request.getfixturevalue(name))
    ref = table(REF["anova"][name])
    assert list(a.index) == list(ref["rows"])
    assert list(a.columns) == ["npar", "Sum Sq", "Mean Sq", "F value"]
    assert a["npar"].tolist() == ref["npar"].tolist()
    for col in ("Sum Sq", "Mean Sq", "F value"):
        np.testing.assert_allclose(a[col], ref[col].astype(float), rtol=rtol)


def test_anova_one_model_is_sequential(fa):
    """The sum of squares of the last term is the drop in r'r when it is removed at fixed theta.

    Independent check (least squares at the fit's theta): with V = Z psi Z' + sigma^2 I,
    (R_X beta)_j^2 summed over a term's columns equals the reduction of the generalized
    residual sum of squares y'V^{-1}y - ... when the term's columns are added last.
    """
    Z = fa.Z.toarray()
    V = fa.sigma ** 2 * (Z @ (fa.Lambda @ fa.Lambda.T).toarray() @ Z.T + np.eye(fa.nobs))
    W = np.linalg.inv(V) * fa.sigma ** 2
    X, y = fa.X, fa.y

    def rss(cols):
        Xs = X[:, cols]
        b = np.linalg.solve(Xs.T @ W @ Xs, Xs.T @ W @ y)
        r = y - Xs @ b
        return r @ W @ r

    ss_last = rss(list(range(5))) - rss(list(range(7)))  # x:f is columns 5 and 6
    assert mmbook.anova(fa).loc["x:f", "Sum Sq"] == pytest.approx(ss_last, rel=1e-8)


@pytest.mark.parametrize("name", ["fa", "fb", "m1"])
def test_drop1_matches_lme4(request, name):
    fit = request.getfixturevalue(name)
    out = mmbook.drop1(fit, test="Chisq")
    ref = table(REF["drop1"][name])
    assert list(out.index) == list(ref["rows"])
    assert list(out.columns) == ["npar", "AIC", "LRT", "Pr(Chi)"]
    assert pd.isna(out["npar"].iloc[0]) and out["npar"].iloc[1:].tolist() == ref["npar"].iloc[1:].tolist()
    np.testing.assert_allclose(out["AIC"], ref["AIC"].astype(float), rtol=1e-9)
    np.testing.assert_allclose(out["LRT"].iloc[1:], ref["LRT"].iloc[1:].astype(float), rtol=1e-6)
    np.testing.assert_allclose(out["Pr(Chi)"].iloc[1:], ref["Pr(Chi)"].iloc[1:].astype(float), rtol=1e-5)


def test_drop1_without_test_and_scope(fa):
    out = fa.drop1()
    ref = table(REF["drop1"]["fa_none"])
    assert list(out.columns) == ["npar", "AIC"]
    np.testing.assert_allclose(out["AIC"], ref["AIC"].astype(float), rtol=1e-9)
    one = fa.drop1(scope=["z"], test="Chisq")
    assert list(one.index) == ["<none>", "z"]
    with pytest.raises(ValueError, match="scope term 'w'"):
        fa.drop1(scope="w")
    with pytest.raises(ValueError, match="test"):
        fa.drop1(test="F")


# ----------------------------------------------------------- deviance and friends
def test_deviance_as_lme4(m1, fb):
    ref = REF["deviance"]
    with pytest.warns(UserWarning, match="deprecated for REML fits"):
        dev = m1.deviance
    assert dev == pytest.approx(ref["m1_deviance"], rel=1e-9)  # lme4: the REML criterion, with a warning
    assert m1.REMLcrit == pytest.approx(ref["m1_REMLcrit"], rel=1e-9)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert mmbook.deviance(m1, REML=False) == pytest.approx(ref["m1_deviance_ml"], rel=1e-8)
        assert fb.deviance == pytest.approx(ref["fb_deviance"], rel=1e-9, abs=1e-6)
        assert mmbook.deviance(fb) == fb.deviance
    assert fb.REMLcrit == pytest.approx(ref["fb_REMLcrit"], rel=1e-7)
    assert mmbook.deviance(m1, REML=True) == m1.REMLcrit
    assert m1.df_residual == ref["m1_df_residual"] and fb.df_residual == ref["fb_df_residual"]


def test_coef_table(m1, fa):
    ref = REF["deviance"]["m1_coef_summary"]
    ct = m1.coef_table()
    assert list(ct.columns) == ref["cols"] and list(ct.index) == ref["rows"]
    np.testing.assert_allclose(ct.to_numpy(), M(ref["values"]), rtol=2e-5)
    ref = REF["deviance"]["fa_coef_summary"]
    np.testing.assert_allclose(fa.coef_table().to_numpy(), M(ref["values"]), rtol=1e-6)


# -------------------------------------------------------------------------- getME
def _dense(x):
    return x.toarray() if sp.issparse(x) else np.asarray(x)


@pytest.mark.parametrize("name, model, rtol", [
    ("X", "m1", 0), ("Z", "m1", 0), ("Zt", "m1", 0), ("y", "m1", 0), ("Lambda", "m1", 2e-5),
    ("Lambdat", "m1", 2e-5), ("L", "m1", 2e-5), ("RX", "m1", 2e-5), ("theta", "m1", 2e-5), ("beta", "m1", 2e-5),
    ("X", "fb", 0), ("Z", "fb", 0), ("Lambda", "fb", 3e-4), ("RX", "fb", 3e-4), ("theta", "fb", 3e-4)])
def test_getME_matrices_match_lme4(request, name, model, rtol):
    fit = request.getfixturevalue(model)
    ref = REF["getME"][model][name]
    ref = M(ref) if isinstance(ref, dict) else np.asarray(ref)
    np.testing.assert_allclose(_dense(mmbook.getME(fit, name)).reshape(ref.shape), ref, rtol=rtol,
                               atol=rtol * np.abs(ref).max())


@pytest.mark.parametrize("model, atol", [("m1", 5e-4), ("fb", 3e-3)])
def test_getME_u_b(request, model, atol):
    """u and b: the conditional modes (scale: tens of ms for m1), as lme4, to its convergence."""
    fit = request.getfixturevalue(model)
    np.testing.assert_allclose(fit.u, REF["getME"][model]["u"], atol=atol)
    np.testing.assert_allclose(fit.b, REF["getME"][model]["b"], atol=atol)
    np.testing.assert_allclose(fit.b, fit.Lambda @ fit.u, rtol=1e-12, atol=1e-12)


def test_L_is_the_cholesky_factor(m1, fb):
    for fit in (m1, fb):
        L = fit.L
        assert sp.issparse(L) and sp.tril(L).nnz == L.nnz  # lower triangular
        A = (fit.Lambda.T @ fit.Z.T @ fit.Z @ fit.Lambda + sp.identity(L.shape[0])).toarray()
        np.testing.assert_allclose((L @ L.T).toarray(), A, rtol=1e-10, atol=1e-10)
    # lme4 permutes fb's factor (CHOLMOD's fill-reducing order): compare P'(L L')P
    ref = REF["getME"]["fb"]
    Lr, perm = M(ref["L"]), np.array(ref["L_perm"], dtype=int)
    A = np.zeros_like(Lr)
    A[np.ix_(perm, perm)] = Lr @ Lr.T
    np.testing.assert_allclose((fb.L @ fb.L.T).toarray(), A, atol=3e-4 * np.abs(A).max())
    assert REF["getME"]["m1"]["L_perm"] == list(range(36))  # m1: no permutation, the factors are equal


def test_getME_structure(m1, fb):
    for fit, key in ((m1, "m1"), (fb, "fb")):
        ref = REF["getME"][key]
        np.testing.assert_array_equal(fit.Lind + 1, ref["Lind"])  # lme4's Lind counts from 1
        np.testing.assert_allclose(fit.Lambda.data, fit.theta[fit.Lind], rtol=0)
        cnms = {k: list(np.atleast_1d(v)) for k, v in ref["cnms"].items()}
        assert fit.cnms == cnms
        assert list(fit.flist.columns) == list(ref["flist"])
        for g in fit.flist.columns:
            assert list(fit.flist[g].cat.categories) == list(np.atleast_1d(ref["flist_levels"][g]))
            assert fit.flist[g].astype(str).tolist() == ref["flist"][g]
        assert mmbook.getME(fit, "n") == ref["n"] and mmbook.getME(fit, "p") == ref["p"]
        assert mmbook.getME(fit, "q") == ref["q"]
        np.testing.assert_array_equal(mmbook.getME(fit, "lower"), np.where(np.isnan(
            np.array(ref["lower"], dtype=float)), -np.inf, ref["lower"]))
        assert bool(mmbook.getME(fit, "REML")) == bool(ref["REML"])
    with pytest.raises(KeyError, match="unknown name 'Zeta'"):
        mmbook.getME(m1, "Zeta")


def test_lambda_keeps_its_pattern_at_zero():
    """A theta at 0 keeps its element of Lambda (lme4's fixed pattern): Lambda.data == theta[Lind].

    tests/data/designs/singular.csv (see make_lme4_designs.R): no between-group variation, so the
    intercept variance of (1 | g) is estimated at its bound, theta = 0.
    """
    d = pd.read_csv(DATA / "designs" / "singular.csv")
    with pytest.warns(mmbook.engine.control.SingularFitWarning):
        fit = mmbook.lmer("y ~ x + (1 | g)", d, REML=False)
    assert fit.theta[0] == 0.0
    assert fit.Lambda.nnz == fit.terms[0].nlevels  # explicit zeros, one per level
    np.testing.assert_array_equal(fit.Lambda.data, fit.theta[fit.Lind])


# ------------------------------------------------------------------- tidy, glance
def _compare_tidy(ours, ref, rtol):
    ref = table(ref)
    assert list(ours.columns) == list(ref.columns)
    assert len(ours) == len(ref)
    for c in ours.columns:
        if c in ("effect", "group", "level", "term"):
            assert [None if pd.isna(v) else str(v) for v in ours[c]] == \
                   [None if pd.isna(v) else str(v) for v in ref[c]], c
        else:
            b = ref[c].astype(float).to_numpy()
            atol = rtol * np.nanmax(np.abs(b)) if np.isfinite(b).any() else 0
            np.testing.assert_allclose(ours[c].astype(float), b, rtol=rtol, atol=atol, equal_nan=True, err_msg=c)


@pytest.mark.parametrize("key, kwargs, rtol", [
    ("m1", {}, 2e-5), ("m1_ci", {"conf_int": True}, 2e-5), ("m1_ci90", {"conf_int": True, "conf_level": 0.9}, 2e-5),
    ("m1_ci_profile", {"conf_int": True, "conf_method": "profile"}, 1e-4),
    ("m1_vcov", {"scales": ["vcov", None]}, 3e-5), ("m1_ran_vals", {"effects": "ran_vals", "conf_int": True}, 1e-4),
    ("m1_ran_coefs", {"effects": "ran_coefs"}, 2e-5)])
def test_tidy_m1(m1, key, kwargs, rtol):
    _compare_tidy(m1.tidy(**kwargs), REF["tidy"][key], rtol)


def test_tidy_other_models(fa, fb):
    _compare_tidy(mmbook.tidy(fa), REF["tidy"]["fa"], 1e-6)
    _compare_tidy(fb.tidy(effects="fixed"), REF["tidy"]["fb"], 3e-4)


def test_glance(m1, fb):
    _compare_tidy(m1.glance(), {k: [v] for k, v in REF["tidy"]["glance_m1"].items()}, 1e-6)
    _compare_tidy(mmbook.glance(fb), {k: [v] for k, v in REF["tidy"]["glance_fb"].items()}, 1e-5)


def test_tidy_bad_input(m1):
    with pytest.raises(ValueError, match="unknown effect 'random'"):
        m1.tidy(effects="random")
    with pytest.raises(ValueError, match="scale"):
        m1.tidy(scales=["sd", None])
    with pytest.raises(ValueError, match="one entry"):
        m1.tidy(scales=["vcov"])


# ---------------------------------------------------------------------- bootstrap
def test_bootstrap_matches_bootmer(m0ml):
    """mmbook.bootstrap with R's generator refits lme4's bootMer responses (t to the refits' precision)."""
    ref = REF["boot"]
    t = mmbook.bootstrap(m0ml, lambda f: f.fixef.to_numpy(), nsim=4, seed=RRandom(108))
    np.testing.assert_allclose(t, M(ref["t"]), rtol=1e-6)
    t = mmbook.bootstrap(m0ml, lambda f: f.fixef.to_numpy(), nsim=3, seed=RRandom(109), use_u=True)
    np.testing.assert_allclose(t, M(ref["t_use_u"]), rtol=1e-6)
    np.testing.assert_allclose(m0ml.fixef, ref["t0"], rtol=1e-6)


def test_bootstrap_semiparametric(m0ml):
    t = mmbook.bootstrap(m0ml, lambda f: f.sigma, nsim=5, seed=4, use_u=True, type="semiparametric")
    assert t.shape == (5,) and np.all(t > 0)
    # the first response: fitted values plus residuals drawn with replacement (numpy, seed 4)
    idx = np.random.default_rng(4).integers(0, m0ml.nobs, size=(5, m0ml.nobs))
    y = m0ml.fitted.to_numpy() + m0ml.residuals.to_numpy()[idx[0]]
    assert t[0] == pytest.approx(refit(m0ml, y, warn=False).sigma, rel=1e-10)
    with pytest.raises(ValueError, match="use_u=True"):
        mmbook.bootstrap(m0ml, lambda f: f.sigma, nsim=2, type="semiparametric")
    with pytest.raises(ValueError, match="type"):
        mmbook.bootstrap(m0ml, lambda f: f.sigma, nsim=2, type="nonparametric")
    with pytest.raises(ValueError, match="nsim"):
        mmbook.bootstrap(m0ml, lambda f: f.sigma, nsim=0)


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def test_progress_bar_redraws_in_a_terminal(m0ml, monkeypatch):
    out = _Terminal()
    monkeypatch.setattr(sys, "stdout", out)
    bootstrap(m0ml, lambda f: f.sigma, nsim=4, seed=1, progress=True)
    text = out.getvalue()
    assert text.startswith("\rbootstrap: [") and text.count("\n") == 1
    assert text.endswith("\rbootstrap: [" + "#" * 40 + "] 4/4\n")


def test_progress_bar_is_one_line_elsewhere(m0ml, monkeypatch):
    out = io.StringIO()
    monkeypatch.setattr(sys, "stdout", out)
    bootstrap(m0ml, lambda f: f.sigma, nsim=4, seed=1, progress=True)
    assert out.getvalue() == "bootstrap: [" + "#" * 40 + "] 4/4\n"


# ------------------------------------------------------------- other designs
DESIGNS = DATA / "designs"  # data sets of make_lme4_designs.R; lme4's numbers from make_lme4_verbs.R


def test_anova_and_drop1_rank_deficient():
    """x2 = 2 x: lme4 drops x2 (and one f:h column); anova lists the terms that keep a column."""
    ref = REF["designs"]
    rd = pd.read_csv(DESIGNS / "rankdef.csv")
    with pytest.warns(UserWarning, match="rank deficient"):
        fit = mmbook.lmer("y ~ x + x2 + f * h + (1 | g)", rd)
    assert list(fit.fixef.index) == ref["rankdef_fixef"]
    a, r = mmbook.anova(fit), table(ref["rankdef_anova"])
    assert list(a.index) == list(r["rows"]) and a["npar"].tolist() == r["npar"].tolist()
    np.testing.assert_allclose(a["F value"], r["F value"].astype(float), rtol=1e-5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # the smaller models are rank deficient too
        dr = mmbook.drop1(fit)
    r = table(ref["rankdef_drop1"])
    assert list(dr.index) == list(r["rows"]) and dr["npar"].iloc[1:].tolist() == r["npar"].iloc[1:].tolist()
    np.testing.assert_allclose(dr["AIC"], r["AIC"].astype(float), rtol=1e-8)


def test_uncorrelated_terms_tidy_update():
    ref = REF["designs"]
    fit = mmbook.lmer("y ~ x + (x || g)", pd.read_csv(DESIGNS / "slopes.csv"))
    assert fit.formula == ref["uncorr_formula"]
    _compare_tidy(fit.tidy(), ref["uncorr_tidy"], 2e-5)
    assert fit.update(". ~ . - (0 + x | g)").formula == ref["uncorr_update"]
    assert fit.cnms == {"g": ["(Intercept)"], "g.1": ["x"]}  # lme4 names both "g"
    # the fit's printed formula can be updated too (lme4's expanded form of ||)
    assert update_formula(fit.formula, ". ~ . - (0 + x | g)") == "y ~ x + (1 | g)"


def test_confint_singular_fit():
    """The intercept sd is estimated at 0: its profile lower limit is the bound 0, as lme4."""
    d = pd.read_csv(DESIGNS / "singular.csv")
    with pytest.warns(mmbook.engine.control.SingularFitWarning):
        fit = mmbook.lmer("y ~ x + (1 | g)", d, REML=False)
    ref = REF["designs"]["singular_confint"]
    ci = fit.confint()
    assert list(ci.index) == ref["rows"]
    assert ci.iloc[0, 0] == 0.0
    np.testing.assert_allclose(ci.to_numpy(), np.column_stack([ref["lower"], ref["upper"]]), rtol=1e-5)
