"""mmbook.forms.panel: cluster means, the within transformation, the within estimator, the hybrid model.

References, stated per test:
- within estimator vs least squares with one dummy per cluster: mmbook.lm on ``y ~ x1 + x2 + g``
  (g categorical; mmbook.lm is checked against R in test_lm.py) and statsmodels OLS, an independent
  implementation. The two are algebraically the same estimator (Frisch-Waugh-Lovell), so
  coefficients, standard errors, residuals and sigma must agree to rounding.
- hybrid / Mundlak: a closed form. With x_within orthogonal to every cluster-constant column, the GLS
  coefficient of x_within in y ~ x_within + x_mean + (1|g) (of x in y ~ x + x_mean + (1|g)) equals
  the within estimate for any variance parameters (Mundlak 1978), so it holds at lmer's estimates
  whatever the optimizer did.
- cluster means: pandas groupby-transform.
"""

import numpy as np
import pandas as pd
import pytest
import statsmodels.formula.api as smf

import mmbook
from mmbook.forms.panel import add_cluster_means, cluster_means, within, within_fit


@pytest.fixture(scope="module")
def panel():
    """Unbalanced clusters (sizes 2 to 15); cluster effects correlated with the covariates' means."""
    rng = np.random.default_rng(515)
    G = 25
    n_c = rng.integers(2, 16, size=G)
    g = np.repeat(np.arange(G), n_c)
    c = rng.normal(size=G)
    x1 = c[g] + rng.normal(size=g.size)
    x2 = 0.5 * c[g] + rng.normal(size=g.size)
    u = 1.5 * c + rng.normal(0, 0.5, size=G)
    y = 1.0 + 0.5 * x1 - 0.3 * x2 + u[g] + rng.normal(size=g.size)
    labels = np.array([f"k{j:02d}" for j in range(G)])
    d = pd.DataFrame({"y": y, "x1": x1, "x2": x2, "g": labels[g]})
    return d.sample(frac=1.0, random_state=1)  # rows not sorted by cluster


def test_cluster_means_and_within_match_groupby(panel):
    m = cluster_means(panel, ["x1", "x2"], "g")
    w = within(panel, "x1", "g")
    ref = panel.groupby("g")[["x1", "x2"]].transform("mean")
    np.testing.assert_allclose(m.to_numpy(), ref.to_numpy(), rtol=1e-12)
    assert list(m.columns) == ["x1_mean", "x2_mean"] and list(w.columns) == ["x1_within"]
    assert m.index.equals(panel.index)
    np.testing.assert_allclose(w["x1_within"], panel["x1"] - ref["x1"], atol=1e-12)
    np.testing.assert_allclose(w["x1_within"].groupby(panel["g"]).sum(), 0.0, atol=1e-12)


def test_add_cluster_means(panel):
    d = add_cluster_means(panel, "x1", "g")
    np.testing.assert_allclose(d["x1_mean"] + d["x1_within"], panel["x1"], atol=1e-12)
    assert "x1_mean" not in panel.columns  # a copy
    with pytest.raises(ValueError, match="already has columns 'x1_mean', 'x1_within'"):
        add_cluster_means(d, "x1", "g")


def test_within_equals_ols_with_cluster_dummies(panel):
    fe = within_fit(panel, "y", ["x1", "x2"], "g")
    d = panel.assign(g=pd.Categorical(panel["g"]))
    dummies = mmbook.lm("y ~ x1 + x2 + g", d)
    sm = smf.ols("y ~ x1 + x2 + C(g)", data=panel).fit()
    for name in ["x1", "x2"]:
        for ref_coef, ref_se in [(dummies.coef[name], dummies.se[name]), (sm.params[name], sm.bse[name])]:
            assert fe.coef[name] == pytest.approx(ref_coef, rel=1e-10)
            assert fe.se[name] == pytest.approx(ref_se, rel=1e-10)
        assert fe.pvalues[name] == pytest.approx(sm.pvalues[name], rel=1e-8)
    assert fe.df_resid == dummies.df_resid == int(sm.df_resid)
    assert fe.sigma == pytest.approx(dummies.sigma, rel=1e-10)
    np.testing.assert_allclose(fe.residuals.to_numpy(), dummies.residuals.to_numpy(), atol=1e-9)
    np.testing.assert_allclose(fe.fitted.loc[panel.index], sm.fittedvalues.loc[panel.index], atol=1e-9)
    # the cluster intercepts: the dummies model's intercept plus each cluster's dummy coefficient
    base = dummies.coef["(Intercept)"]
    levels = list(d["g"].cat.categories)
    alpha_ref = [base] + [base + dummies.coef[f"g{lev}"] for lev in levels[1:]]
    assert list(fe.alpha.index) == levels
    np.testing.assert_allclose(fe.alpha.to_numpy(), alpha_ref, rtol=1e-10)
    assert fe.nobs == len(panel) and fe.ngroups == 25
    assert list(fe.table.columns) == ["Estimate", "Std. Error", "t value", "Pr(>|t|)"]


def test_hybrid_and_mundlak_within_coefficient_equal_within_estimate(panel):
    d = add_cluster_means(panel, ["x1", "x2"], "g")
    fe = within_fit(d, "y", ["x1", "x2"], "g")
    hybrid = mmbook.lmer("y ~ x1_within + x2_within + x1_mean + x2_mean + (1 | g)", d)
    mundlak = mmbook.lmer("y ~ x1 + x2 + x1_mean + x2_mean + (1 | g)", d)
    for name in ["x1", "x2"]:
        assert hybrid.fixef[f"{name}_within"] == pytest.approx(fe.coef[name], rel=1e-9)
        assert mundlak.fixef[name] == pytest.approx(fe.coef[name], rel=1e-9)
        # and the Mundlak mean coefficient is the hybrid's between minus within coefficient
        assert mundlak.fixef[f"{name}_mean"] == pytest.approx(
            hybrid.fixef[f"{name}_mean"] - hybrid.fixef[f"{name}_within"], rel=1e-7)
    # the plain random-intercept model is not the within estimator here (cluster effects are
    # correlated with the covariate means by construction)
    plain = mmbook.lmer("y ~ x1 + x2 + (1 | g)", d)
    assert abs(plain.fixef["x1"] - fe.coef["x1"]) > 0.02


def test_hybrid_equality_holds_at_any_variance(panel):
    """The equality is algebraic: it holds at theta values far from the optimum too."""
    d = add_cluster_means(panel, "x1", "g")
    fe = within_fit(d, "y", "x1", "g")
    hybrid = mmbook.lmer("y ~ x1_within + x1_mean + (1 | g)", d)
    for theta in [0.05, 0.7, 3.0]:
        s = hybrid.pls.solve(np.array([theta]))
        j = list(hybrid.fixef.index).index("x1_within")
        assert s.beta[j] == pytest.approx(fe.coef["x1"], rel=1e-9)


def test_bad_input(panel):
    with pytest.raises(TypeError, match="DataFrame"):
        within_fit(panel.to_numpy(), "y", "x1", "g")
    with pytest.raises(KeyError, match="'z' not in data"):
        within_fit(panel, "y", ["x1", "z"], "g")
    with pytest.raises(KeyError, match="'cluster' not in data"):
        cluster_means(panel, "x1", "cluster")
    with pytest.raises(ValueError, match="x is empty"):
        within_fit(panel, "y", [], "g")
    with pytest.raises(ValueError, match="response 'y' cannot also be a covariate"):
        within_fit(panel, "y", ["y", "x1"], "g")
    with pytest.raises(ValueError, match="group column 'g' cannot also be a covariate"):
        cluster_means(panel.assign(g=1.0), ["x1", "g"], "g")
    with pytest.raises(TypeError, match="must be numeric"):
        within_fit(panel.assign(s="a"), "y", ["x1", "s"], "g")
    d = panel.copy()
    d.iloc[3, d.columns.get_loc("x1")] = np.nan
    with pytest.raises(ValueError, match="'x1' has 1 missing"):
        within_fit(d, "y", "x1", "g")
    d = panel.copy()
    d.iloc[[0, 5], d.columns.get_loc("g")] = None
    with pytest.raises(ValueError, match="group column 'g' has 2 missing values"):
        within(d, "x1", "g")


def test_cluster_level_covariate_has_no_within_estimate(panel):
    d = add_cluster_means(panel, "x1", "g")
    with pytest.raises(ValueError, match="'x1_mean' does not vary within any cluster"):
        within_fit(d, "y", ["x1", "x1_mean"], "g")
    d = d.assign(x3=2.0 * d["x1"] - d["x2"] + 5.0 * d["x1_mean"])
    with pytest.raises(ValueError, match="'x3' is, within clusters, a linear combination"):
        within_fit(d, "y", ["x1", "x2", "x3"], "g")


def test_no_degrees_of_freedom():
    # 3 rows, 2 clusters, 1 covariate: n - G - k = 0
    d = pd.DataFrame({"y": [1.0, 2.0, 3.0], "x": [0.0, 1.0, 0.0], "g": ["a", "a", "b"]})
    with pytest.raises(ValueError, match="no residual degrees of freedom"):
        within_fit(d, "y", "x", "g")
