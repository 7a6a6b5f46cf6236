"""mmbook.forms.pooling: complete, no and partial pooling, and the shrinkage weight.

References, stated per test:
- no pooling: numpy.linalg.lstsq on each cluster's rows, an independent computation.
- complete pooling: mmbook.lm (itself checked against R and statsmodels in test_lm.py).
- partial pooling: lme4's coef(sleepMod) for Reaction ~ Days + (Days | Subject), as printed in
  the reference document (../shared/seed, "subjectTrajectories": subject 308 int 253.6637,
  slope 19.666258; 309: 211.0065, 1.847583).
- shrinkage identity: a closed form. For y_ic = x_ic' beta + gamma_c + e_ic with
  gamma_c ~ N(0, tau^2), e_ic ~ N(0, sigma^2), E[gamma_c | y, beta] = w_c * mean_c(y - X beta)
  with w_c = tau^2 / (tau^2 + sigma^2 / n_c); lmer's conditional modes are these at the GLS beta.
"""

import warnings

import numpy as np
import pandas as pd
import pytest

import mmbook
from mmbook.forms.pooling import (complete_pooling, no_pooling, partial_pooling, pooling_table,
                            shrinkage_table, shrinkage_weight)


@pytest.fixture(scope="module")
def sleep():
    return mmbook.load_sleepstudy()


@pytest.fixture(scope="module")
def unbalanced():
    """Seeded, unbalanced clusters of sizes 1 to 25, with a covariate and a cluster effect."""
    rng = np.random.default_rng(20240531)
    G = 30
    n_c = rng.integers(1, 26, size=G)
    g = np.repeat(np.arange(G), n_c)
    x = rng.normal(size=g.size)
    y = 2.0 + 0.5 * x + rng.normal(0, 0.8, size=G)[g] + rng.normal(0, 1.0, size=g.size)
    return pd.DataFrame({"y": y, "x": x, "g": [f"c{k:02d}" for k in g]})


def lstsq_per_cluster(data, ycol, xcols, group):
    out = {}
    for lev, d in data.groupby(group, observed=True, sort=False):
        X = np.column_stack([np.ones(len(d))] + [d[c].to_numpy(float) for c in xcols])
        out[str(lev)] = np.linalg.lstsq(X, d[ycol].to_numpy(float), rcond=None)[0]
    return out


# ------------------------------------------------------------------ no pooling
def test_no_pooling_equals_lstsq_per_cluster_sleepstudy(sleep):
    nop = no_pooling("Reaction ~ Days", sleep, "Subject")
    assert list(nop.columns) == ["(Intercept)", "Days"]
    assert list(nop.index) == list(sleep["Subject"].cat.categories)
    ref = lstsq_per_cluster(sleep, "Reaction", ["Days"], "Subject")
    for lev, b in ref.items():
        np.testing.assert_allclose(nop.loc[lev].to_numpy(), b, rtol=1e-10)


def test_no_pooling_equals_lstsq_unbalanced(unbalanced):
    d = unbalanced[unbalanced.groupby("g")["g"].transform("size") >= 2]
    nop = no_pooling("y ~ x", d, "g")
    ref = lstsq_per_cluster(d, "y", ["x"], "g")
    assert len(ref) == len(nop)
    for lev, b in ref.items():
        np.testing.assert_allclose(nop.loc[lev].to_numpy(), b, rtol=1e-9, atol=1e-12)


def test_no_pooling_row_order_does_not_matter(sleep):
    shuffled = sleep.sample(frac=1.0, random_state=1)
    pd.testing.assert_frame_equal(no_pooling("Reaction ~ Days", shuffled, "Subject"),
                                  no_pooling("Reaction ~ Days", sleep, "Subject"), rtol=1e-10)


def test_no_pooling_too_few_rows_gives_nan_and_warning(unbalanced):
    n_c = unbalanced.groupby("g")["g"].size()
    singles = sorted(n_c.index[n_c == 1])
    assert singles, "the seeded data should have a cluster with one row"
    with pytest.warns(UserWarning, match="cannot identify the 2 coefficients") as rec:
        nop = no_pooling("y ~ x", unbalanced, "g")
    assert all(s in str(rec[0].message) for s in singles)
    assert nop.loc[singles].isna().all().all()
    assert nop.drop(index=singles).notna().all().all()
    # the intercept-only regression is identified with one row: the cluster mean
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        means = no_pooling("y ~ 1", unbalanced, "g")["(Intercept)"]
    np.testing.assert_allclose(means, unbalanced.groupby("g")["y"].mean().loc[means.index], rtol=1e-12)


def test_no_pooling_constant_column_within_cluster_gives_nan(sleep):
    d = sleep.copy()
    d.loc[d["Subject"] == "309", "Days"] = 3  # no spread in x: no slope for 309
    with pytest.warns(UserWarning, match=r"\(309\)"):
        nop = no_pooling("Reaction ~ Days", d, "Subject")
    assert nop.loc["309"].isna().all()
    assert nop.drop(index="309").notna().all().all()


def test_missing_group_column(sleep):
    with pytest.raises(KeyError, match="group column 'Person' not found"):
        no_pooling("Reaction ~ Days", sleep, "Person")
    with pytest.raises(KeyError, match="group column"):
        pooling_table("Reaction ~ Days", sleep, "Person")


def test_missing_group_values(sleep):
    d = sleep.copy()
    d["Subject"] = d["Subject"].astype(object)
    d.loc[[0, 5], "Subject"] = None
    with pytest.raises(ValueError, match="2 missing values"):
        no_pooling("Reaction ~ Days", d, "Subject")


def test_random_term_in_formula_is_rejected(sleep):
    with pytest.raises(ValueError, match="random-effects term"):
        no_pooling("Reaction ~ Days + (1 | Subject)", sleep, "Subject")


# ------------------------------------------------------------- complete pooling
def test_complete_pooling_equals_lm(sleep):
    cp = complete_pooling("Reaction ~ Days", sleep)
    np.testing.assert_allclose(cp.to_numpy(), mmbook.lm("Reaction ~ Days", sleep).coef.to_numpy(), rtol=1e-14)
    assert list(cp.index) == ["(Intercept)", "Days"]


# -------------------------------------------------------------- partial pooling
def test_partial_pooling_matches_lme4_coef(sleep):
    fit = mmbook.lmer("Reaction ~ Days + (Days | Subject)", sleep)
    pp = partial_pooling(fit)
    # lme4 1.1-31, printed in the reference document (7 significant digits)
    np.testing.assert_allclose(pp.loc["308"], [253.6637, 19.666258], rtol=2e-6)
    np.testing.assert_allclose(pp.loc["309"], [211.0065, 1.847583], rtol=2e-6)
    np.testing.assert_allclose(pp.to_numpy(), (fit.fixef.to_numpy() + fit.ranef["Subject"].to_numpy()),
                               rtol=1e-14)
    with pytest.raises(KeyError, match="not a grouping factor"):
        partial_pooling(fit, "Days")


def test_pooling_table_layout(sleep):
    fit = mmbook.lmer("Reaction ~ Days + (Days | Subject)", sleep)
    tab = pooling_table("Reaction ~ Days", sleep, "Subject", fit=fit)
    assert list(tab.columns) == ["Subject", "method", "(Intercept)", "Days", "n"]
    assert len(tab) == 3 * 18
    assert list(tab["method"][:3]) == ["complete", "none", "partial"]
    assert (tab["n"] == 10).all()
    refit = pooling_table("Reaction ~ Days", sleep, "Subject")  # fits (Days | Subject) itself
    pd.testing.assert_frame_equal(tab, refit, rtol=1e-8)
    part = tab[tab["method"] == "partial"].set_index("Subject")[["(Intercept)", "Days"]]
    np.testing.assert_allclose(part.to_numpy(), fit.coef["Subject"].to_numpy(), rtol=1e-14)


def test_pooling_table_keeps_clusters_without_own_fit(unbalanced):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        tab = pooling_table("y ~ x", unbalanced, "g")
    singles = unbalanced.groupby("g")["g"].size().pipe(lambda s: s.index[s == 1])
    rows = tab[tab["g"].isin(singles)]
    assert rows.loc[rows["method"] == "none", ["(Intercept)", "x"]].isna().all().all()
    assert rows.loc[rows["method"] != "none", ["(Intercept)", "x"]].notna().all().all()


# ------------------------------------------------------------------- shrinkage
def test_shrinkage_weight_values_and_errors():
    assert shrinkage_weight(1.0, 1.0, 1) == pytest.approx(0.5)
    np.testing.assert_allclose(shrinkage_weight(2.0, 4.0, np.array([1, 2, 8])), [1 / 3, 1 / 2, 4 / 5])
    assert shrinkage_weight(0.0, 1.0, 5) == 0.0
    for args in [(-1.0, 1.0, 3), (1.0, 0.0, 3), (1.0, 1.0, 0), (np.nan, 1.0, 3)]:
        with pytest.raises(ValueError):
            shrinkage_weight(*args)


def test_shrinkage_identity_sleepstudy_intercept_only(sleep):
    fit = mmbook.lmer("Reaction ~ 1 + (1 | Subject)", sleep)
    tab = shrinkage_table(fit)
    ybar = sleep.groupby("Subject", observed=True)["Reaction"].mean()
    mu = fit.fixef["(Intercept)"]
    np.testing.assert_allclose(tab["own_deviation"], ybar - mu, atol=1e-10)
    np.testing.assert_allclose(tab["ranef"], tab["weight"] * (ybar - mu), atol=1e-8)
    # partial pooling is a weighted average of no pooling and the population mean
    nop = no_pooling("Reaction ~ 1", sleep, "Subject")["(Intercept)"]
    w = tab["weight"]
    np.testing.assert_allclose(partial_pooling(fit)["(Intercept)"], w * nop + (1 - w) * mu, atol=1e-8)


def test_shrinkage_identity_with_covariate(sleep):
    fit = mmbook.lmer("Reaction ~ Days + (1 | Subject)", sleep)
    tab = shrinkage_table(fit)
    np.testing.assert_allclose(tab["shrunk"], tab["ranef"], atol=1e-8)


def test_shrinkage_identity_unbalanced(unbalanced):
    for formula in ["y ~ 1 + (1 | g)", "y ~ x + (1 | g)"]:
        fit = mmbook.lmer(formula, unbalanced)
        tab = shrinkage_table(fit)
        assert tab["n"].nunique() > 5  # really unbalanced
        np.testing.assert_allclose(tab["shrunk"], tab["ranef"], atol=1e-8)
        # bigger clusters keep more of their own deviation
        order = np.argsort(tab["n"].to_numpy())
        assert np.all(np.diff(tab["weight"].to_numpy()[order]) >= 0)


def test_shrinkage_table_needs_random_intercept_only(sleep):
    fit = mmbook.lmer("Reaction ~ Days + (Days | Subject)", sleep)
    with pytest.raises(ValueError, match=r"only random-effects term is \(1 \| g\)"):
        shrinkage_table(fit)
