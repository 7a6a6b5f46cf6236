"""mmbook.inference: Satterthwaite and Kenward-Roger t and F tests against lmerTest and pbkrtest.

Reference numbers: tests/data/lmertest.json, written by tests/data/make_lmertest.R (R 4.2.2,
lme4 1.1-31, lmerTest 3.1-3, pbkrtest 0.5.2, numDeriv 2016.8-1.1; versions in its "source"
field) on sleepstudy and the simulated designs in tests/data/designs/ (split plot, crossed,
unbalanced with an interaction).

Two kinds of comparison, with tolerances argued per quantity:

* **The arithmetic, at lme4's optimum.** The fit is moved to lme4's ``theta`` (``at_theta``), so
  both programs differentiate the same functions at the same point. numDeriv's Richardson steps are
  reproduced exactly, so the Satterthwaite df agree to ~1e-8 (relative; observed <= 1e-7 over all
  models), their p-values to 1e-6, and everything from pbkrtest's closed forms to ~1e-12.
  Tolerances: 1e-6 for df, F and standard errors, 1e-5 for p-values (a p-value of 1e-24 moves
  by t * dt relative to a change dt in t).
* **mmbook's own fit, at lmerTest's printed digits.** lme4 stops its optimizer ~1e-6 (relative,
  in theta) short of the optimum that mmbook finds (mmbook's criterion is lower, by up to
  2.6e-8 here): the df move by up to ~1e-4 relative for the vector-valued models (sleepstudy ML:
  mmbook 18.0000 against lme4's 18.0011), so these comparisons use lmerTest's printed precision
  (df to 3 decimals for df < 100, otherwise 4 significant digits) and relative tolerances of 2e-3
  elsewhere.
"""

import json
import warnings
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import mmbook
from mmbook.inference import anova_table, coef_table, contest
from mmbook.inference import kenward_roger, numderiv
from mmbook.inference.satterthwaite import satterthwaite_setup

from conftest import DATA

REF = json.loads((DATA / "lmertest.json").read_text())
MODELS = REF["models"]
F_COLS = ["Sum Sq", "Mean Sq", "NumDF", "DenDF", "F value", "Pr(>F)"]
T_COLS = ["Estimate", "Std. Error", "df", "t value", "Pr(>|t|)"]


def _data(name):
    if name == "sleepstudy":
        return mmbook.load_sleepstudy()
    return pd.read_csv(DATA / "designs" / f"{name}.csv")


_FITS = {}


def fit_of(name):
    if name not in _FITS:
        r = MODELS[name]
        with warnings.catch_warnings():  # rankdef drops columns, singular_slope is singular: as in R
            warnings.simplefilter("ignore")
            _FITS[name] = mmbook.lmer(r["formula"], _data(r["data"]), REML=r["REML"])
    return _FITS[name]


def at_theta(fit, theta):
    """The same model at another ``theta`` (lme4's optimum): every estimate is recomputed there."""
    theta = np.atleast_1d(np.asarray(theta, dtype=float))
    return replace(fit, opt=replace(fit.opt, theta=theta, fun=fit.pls.objective(theta)))


_AT_R = {}


def at_r(name):
    if name not in _AT_R:
        _AT_R[name] = at_theta(fit_of(name), MODELS[name]["theta"])
    return _AT_R[name]


def col(ref, name):
    return np.atleast_1d(np.asarray(ref[name], dtype=float))


def assert_table(mine, ref, cols, rtol, p_rtol=None):
    assert list(map(str, mine.index)) == [str(x) for x in np.atleast_1d(ref["rownames"])] or \
        len(mine) == len(np.atleast_1d(ref["rownames"]))
    for c in cols:
        tol = p_rtol if (p_rtol is not None and c.startswith("Pr(")) else rtol
        np.testing.assert_allclose(mine[c].to_numpy(dtype=float), col(ref, c), rtol=tol, atol=0, err_msg=c)


REML_MODELS = [m for m, r in MODELS.items() if r["REML"]]


# ------------------------------------------------------------ numerical derivatives
def test_numderiv_is_exact_for_low_degree_polynomials():
    """Richardson extrapolation over 4 halvings is exact (to rounding) for polynomials of degree <= 5."""
    def f(x):
        return x[0] ** 3 * x[1] + 2 * x[1] ** 4 - x[0] * x[1] ** 2 + 5 * x[0]
    x = np.array([0.7, -1.3])
    H = numderiv.hessian(f, x)
    exact = np.array([[6 * x[0] * x[1], 3 * x[0] ** 2 - 2 * x[1]],
                      [3 * x[0] ** 2 - 2 * x[1], 24 * x[1] ** 2 - 2 * x[0]]])
    np.testing.assert_allclose(H, exact, rtol=1e-9)
    J = numderiv.jacobian(lambda v: np.array([[v[0] ** 2, v[0] * v[1]], [np.sin(v[1]), 1.0]]), x)
    assert J.shape == (2, 2, 2)
    np.testing.assert_allclose(J[:, :, 0], [[2 * x[0], x[1]], [0, 0]], atol=1e-10)
    np.testing.assert_allclose(J[:, :, 1], [[0, x[0]], [np.cos(x[1]), 0]], atol=1e-10)


def test_numderiv_steps_are_numderivs():
    """numDeriv's documented default steps: h0 = |d x| + eps [|x| < zero.tol], d = 0.1 for the
    hessian and 1e-4 for the jacobian, eps = 1e-4, halved 3 times (r = 4)."""
    seen = []

    def f(v):
        seen.append(v.copy())
        return float(v @ v)

    numderiv.hessian(f, np.array([0.0, 2.0]))
    steps = sorted({round(abs(v[0]), 12) for v in seen if v[1] == 2.0} - {0.0})
    assert steps == [1e-4 / 8, 1e-4 / 4, 1e-4 / 2, 1e-4]
    steps = sorted({round(abs(v[1] - 2.0), 12) for v in seen if v[0] == 0.0} - {0.0})
    assert steps == [0.2 / 8, 0.2 / 4, 0.2 / 2, 0.2]
    seen.clear()
    numderiv.jacobian(lambda v: np.atleast_1d(f(v)), np.array([0.0, 2.0]))
    assert sorted({round(abs(v[1] - 2.0), 12) for v in seen} - {0.0}) == [2e-4 / 8, 2e-4 / 4, 2e-4 / 2, 2e-4]


# ------------------------------------------------------------ at lme4's optimum
@pytest.mark.parametrize("name", list(MODELS))
def test_varpar_hessian_and_jacobian_at_lme4_optimum(name):
    """lmerTest's vcov_varpar (2 H^-1) and Jac_list, from numDeriv with the same steps."""
    r = MODELS[name]
    s = satterthwaite_setup(at_r(name))
    A = np.array(r["vcov_varpar"])
    # A theta of exactly 0 (a singular fit) is differentiated with numDeriv's absolute step 1e-4 / 8:
    # rounding errors of 1e-13 in a deviance of 1e2 become ~1e-3 in its second derivative, in R as
    # here. Its row and column are compared at 1e-3, the rest at 1e-6.
    interior = np.concatenate([np.atleast_1d(r["theta"]) != 0, [True]])
    inner = np.ix_(interior, interior)
    assert np.max(np.abs(s.vcov_varpar[inner] - A[inner])) <= 1e-6 * np.max(np.abs(A))
    assert np.max(np.abs(s.vcov_varpar - A)) <= 1e-3 * np.max(np.abs(A))
    for i, J in enumerate(r["jac"]):
        J = np.array(J)
        assert np.max(np.abs(s.jac[:, :, i] - J)) <= 1e-6 * np.max(np.abs(J)), i


@pytest.mark.parametrize("name", list(MODELS))
def test_coef_table_satterthwaite_at_lme4_optimum(name):
    tab = coef_table(at_r(name), ddf="Satterthwaite")
    assert list(tab.columns) == T_COLS
    assert_table(tab, MODELS[name]["coef_satterthwaite"], T_COLS, rtol=1e-6, p_rtol=1e-5)


@pytest.mark.parametrize("name", REML_MODELS)
def test_coef_table_kenward_roger_at_lme4_optimum(name):
    """pbkrtest's adjusted standard errors (vcovAdj) and Lb_ddf df, as lmerTest's summary shows them."""
    fit = at_r(name)
    tab = coef_table(fit, ddf="Kenward-Roger")
    assert_table(tab, MODELS[name]["coef_kenward_roger"], T_COLS, rtol=1e-6, p_rtol=1e-5)
    np.testing.assert_allclose(kenward_roger.kr_setup(fit).PhiA, np.array(MODELS[name]["vcov_adj"]),
                               rtol=1e-6, atol=1e-9 * np.max(np.abs(MODELS[name]["vcov_adj"])))


@pytest.mark.parametrize("type_", ["1", "2", "3"])
@pytest.mark.parametrize("name", list(MODELS))
def test_anova_satterthwaite_at_lme4_optimum(name, type_):
    tab = anova_table(at_r(name), type=int(type_), ddf="Satterthwaite")
    assert list(tab.columns) == F_COLS
    assert_table(tab, MODELS[name][f"anova_{type_}_satterthwaite"], F_COLS, rtol=1e-6, p_rtol=1e-5)


@pytest.mark.parametrize("type_", ["1", "2", "3"])
@pytest.mark.parametrize("name", REML_MODELS)
def test_anova_kenward_roger_at_lme4_optimum(name, type_):
    tab = anova_table(at_r(name), type=type_, ddf="Kenward-Roger")
    assert_table(tab, MODELS[name][f"anova_{type_}_kenward_roger"], F_COLS, rtol=1e-6, p_rtol=1e-5)


@pytest.mark.parametrize("name", list(MODELS))
def test_anova_lme4_table_at_lme4_optimum(name):
    """ddf="lme4": lme4's one-model anova (sequential sums of squares from R_X' beta, no df)."""
    ref = MODELS[name]["anova_lme4"]
    tab = anova_table(at_r(name), ddf="lme4")
    cols = ["npar", "Sum Sq", "Mean Sq", "F value"]
    assert list(tab.columns) == cols
    assert list(tab.index) == [str(x) for x in np.atleast_1d(ref["rownames"])]
    if len(tab):
        assert_table(tab, ref, cols, rtol=1e-6)


def test_anova_row_names_are_r_term_labels():
    """Terms in R's order and with R's labels, including sum-coded factors and their interaction."""
    for name in ["unbal_u2", "unbal_sum", "splitplot"]:
        tab = anova_table(fit_of(name))
        assert list(tab.index) == list(np.atleast_1d(MODELS[name]["anova_3_satterthwaite"]["rownames"]))
    assert anova_table(fit_of("unbal_u2"), type="III").attrs["heading"] == \
        "Type III Analysis of Variance Table with Satterthwaite's method"


# ------------------------------------------------------------ contest
def _contest_cases():
    c = REF["contest"]
    L1, L2 = np.array(c["L1"]), np.array(c["L2"])
    return [
        ("oneD_satterthwaite", dict(L=L1, joint=False, ddf="Satterthwaite")),
        ("oneD_kenward_roger", dict(L=L1, joint=False, ddf="Kenward-Roger")),
        ("oneD_rhs_satterthwaite", dict(L=L1, rhs=0.2, joint=False, ddf="Satterthwaite")),
        ("twoD_satterthwaite", dict(L=L2, ddf="Satterthwaite")),
        ("twoD_kenward_roger", dict(L=L2, ddf="Kenward-Roger")),
        ("twoD_rhs_satterthwaite", dict(L=L2, rhs=[0.1, -0.2], ddf="Satterthwaite")),
        ("twoD_rhs_kenward_roger", dict(L=L2, rhs=[0.1, -0.2], ddf="Kenward-Roger")),
        ("rows_satterthwaite", dict(L=L2, joint=False, level=0.9, ddf="Satterthwaite")),
    ]


@pytest.mark.parametrize("key,kwargs", _contest_cases(), ids=[k for k, _ in _contest_cases()])
def test_contest_matches_lmertest(key, kwargs):
    ref = REF["contest"][key]
    kwargs = dict(kwargs)
    L = kwargs.pop("L")
    tab = contest(at_r("unbal_u1"), L, **kwargs)
    cols = [c for c in ref if c != "rownames"]
    assert list(tab.columns) == cols
    assert_table(tab, ref, cols, rtol=1e-6, p_rtol=1e-5)


def test_contest_aligns_named_contrasts():
    """A Series or DataFrame is matched to the fixed effects by name; the result equals the plain matrix."""
    fit = fit_of("unbal_u1")
    names = list(fit.fixef.index)
    plain = contest(fit, np.eye(len(names))[[2, 3]])
    named = contest(fit, pd.DataFrame([{names[3]: 0.0, names[2]: 1.0}, {names[3]: 1.0, names[2]: 0.0}]))
    pd.testing.assert_frame_equal(plain, named)
    one = contest(fit, pd.Series({names[1]: 1.0}), joint=False)
    assert one["Estimate"].iloc[0] == pytest.approx(fit.fixef.iloc[1], rel=1e-12)


# ------------------------------------------------------------ mmbook's own fits
@pytest.mark.parametrize("name", list(MODELS))
def test_own_fit_matches_lmertest(name):
    """At mmbook's own optimum. lme4's theta is up to 4e-5 (relative) away from it, and never better:
    mmbook's criterion is at most lme4's at lme4's theta. The df move about twice as much as theta,
    hence 1e-4 for df, standard errors and t values; p-values of t near 20 move up to 3e-3."""
    r = MODELS[name]
    fit = fit_of(name)
    assert fit.objective <= fit.pls.objective(np.atleast_1d(r["theta"])) + 1e-9 * abs(fit.objective)
    tab = coef_table(fit, ddf="Satterthwaite")
    assert_table(tab, r["coef_satterthwaite"], ["Estimate", "Std. Error", "df", "t value"], rtol=1e-4)
    assert_table(tab, r["coef_satterthwaite"], ["Pr(>|t|)"], rtol=3e-3)
    a = anova_table(fit)
    assert_table(a, r["anova_3_satterthwaite"], ["DenDF", "F value"], rtol=1e-4)
    if r["REML"]:
        tab = coef_table(fit, ddf="Kenward-Roger")
        assert_table(tab, r["coef_kenward_roger"], ["Estimate", "Std. Error", "df", "t value"], rtol=1e-4)
        a = anova_table(fit, ddf="Kenward-Roger")
        assert_table(a, r["anova_3_kenward_roger"], ["DenDF", "F value"], rtol=1e-4)


def test_sleepstudy_days_has_17_df():
    """Sleepstudy is balanced: the Satterthwaite and Kenward-Roger df of both fixed effects are the
    number of subjects minus one (Kuznetsova et al. 2017), exactly at the REML optimum."""
    fit = fit_of("sleep_slope")
    np.testing.assert_allclose(coef_table(fit)["df"], 17.0, atol=1e-4)
    np.testing.assert_allclose(coef_table(fit, ddf="KR")["df"], 17.0, atol=1e-8)


def test_split_plot_df_are_the_strata_df():
    """Balanced split plot, 15 whole plots in 3 groups of 5, 4 subplots each: the between-plot factor
    is tested against 15 - 3 = 12 df, the within-plot terms against 15 * 3 - 3 * 3 = 36 (the classical
    split-plot ANOVA); both methods recover them."""
    fit = fit_of("splitplot")
    for ddf in ["Satterthwaite", "Kenward-Roger"]:
        a = anova_table(fit, ddf=ddf)
        np.testing.assert_allclose(a.loc["A", "DenDF"], 12.0, atol=1e-4)
        np.testing.assert_allclose(a.loc[["B", "A:B"], "DenDF"], 36.0, atol=1e-4)


def test_cluster_level_treatment_has_m_minus_2_df():
    """Equal clusters, half of them treated: the treatment test is the two-sample t test of the
    cluster means, on m - 2 df. Kenward-Roger reaches it through pbkrtest's division by zero
    (V2 = 0, rho = inf, df = 4 + 3 / inf: R's arithmetic gives 4, as here)."""
    rng = np.random.default_rng(5)
    m, k = 6, 4
    g = np.repeat(np.arange(m), k)
    d = pd.DataFrame({"y": rng.normal(size=m)[g] + rng.normal(size=m * k), "treated": (np.arange(m) % 2)[g],
                      "g": [f"c{j}" for j in g]})
    fit = mmbook.lmer("y ~ treated + (1 | g)", d)
    assert not fit.is_singular
    means = d.groupby("g")["y"].mean().to_numpy()
    two_sample = stats.ttest_ind(means[1::2], means[0::2])
    for ddf in ["Satterthwaite", "Kenward-Roger"]:
        row = coef_table(fit, ddf=ddf).loc["treated"]
        assert row["df"] == pytest.approx(m - 2, abs=1e-6)
        assert row["t value"] == pytest.approx(two_sample.statistic, rel=1e-6)
        assert row["Pr(>|t|)"] == pytest.approx(two_sample.pvalue, rel=1e-5)


def test_lme4_table():
    fit = fit_of("sleep_slope")
    tab = coef_table(fit, ddf="lme4")
    assert list(tab.columns) == ["Estimate", "Std. Error", "t value"]
    np.testing.assert_allclose(tab["Std. Error"], fit.stderror, rtol=1e-14)
    np.testing.assert_allclose(tab["Estimate"], col(MODELS["sleep_slope"]["coef_satterthwaite"], "Estimate"),
                               rtol=1e-5)


# ------------------------------------------------------------ what is rejected
@pytest.mark.parametrize("name", [m for m, r in MODELS.items() if not r["REML"]])
def test_kenward_roger_rejects_ml_fits(name):
    assert "only available for REML" in MODELS[name]["kenward_roger_error"]
    fit = fit_of(name)
    for call in (lambda: coef_table(fit, ddf="Kenward-Roger"), lambda: anova_table(fit, ddf="KR"),
                 lambda: contest(fit, np.eye(fit.mf.p)[1], ddf="Kenward-Roger")):
        with pytest.raises(ValueError, match="only available for REML model fits"):
            call()


def test_kenward_roger_size_limit(monkeypatch):
    monkeypatch.setattr(kenward_roger, "MAX_N", 100)
    fit = mmbook.lmer("Reaction ~ Days + (1 | Subject)", mmbook.load_sleepstudy())
    with pytest.raises(ValueError, match="exceeds mmbook.inference.kenward_roger.MAX_N = 100"):
        coef_table(fit, ddf="Kenward-Roger")


def test_bad_arguments():
    fit = fit_of("sleep_int")
    ols = mmbook.lm("Reaction ~ Days", mmbook.load_sleepstudy())
    for call in (lambda: coef_table(ols), lambda: anova_table(ols), lambda: contest(ols, [0, 1]),
                 lambda: mmbook.emmeans(ols, "Days"), lambda: mmbook.r2(ols), lambda: mmbook.icc(ols)):
        with pytest.raises(TypeError, match="fitted by mmbook.lmer"):
            call()
    with pytest.raises(ValueError, match="ddf must be one of"):
        coef_table(fit, ddf="containment")
    with pytest.raises(ValueError, match="type must be 1, 2 or 3"):
        anova_table(fit, type=4)
    with pytest.raises(ValueError, match="L must have 2 columns"):
        contest(fit, [1.0, 0.0, 0.0])
    with pytest.raises(ValueError, match="not fixed effects"):
        contest(fit, pd.Series({"Nights": 1.0}))
    with pytest.raises(ValueError, match="rhs must be"):
        contest(fit, np.eye(2), rhs=[1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="missing or infinite"):
        contest(fit, [np.nan, 1.0])
    with pytest.raises(ValueError, match="ddf must be one of 'Satterthwaite', 'Kenward-Roger'; got 'lme4'"):
        contest(fit, [0.0, 1.0], ddf="lme4")
    with pytest.raises(ValueError, match="level must be between 0 and 1"):
        contest(fit, [0.0, 1.0], joint=False, level=95)
