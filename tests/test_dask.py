"""mmbook.lmer on a Dask DataFrame (mmbook.engine.bigdata) against the same fit on the pandas frame.

The reference is mmbook's in-memory fit of the same rows (tests/test_lmm_designs.py checks it
against lme4 1.1-31): the Dask path sums the same cross-products partition by partition, so the
criterion agrees to rounding (1e-10 relative is asked), and so do the estimates and fitted values.
"""

import logging

import numpy as np
import pandas as pd
import pytest

import mmbook

dd = pytest.importorskip("dask.dataframe")
distributed = pytest.importorskip("distributed")

# the simulated h has no variance of its own: some of these fits are singular, in both paths alike
pytestmark = pytest.mark.filterwarnings("ignore::mmbook.engine.control.SingularFitWarning")


def data(seed=1, n=3000, n_g=200, n_h=30):
    rng = np.random.default_rng(seed)
    g = rng.integers(0, n_g, n)
    d = pd.DataFrame({"x": rng.standard_normal(n), "g": g.astype(str),
                      "h": ("h" + pd.Series(rng.integers(0, n_h, n)).astype(str)).to_numpy(),
                      "f": rng.choice(["lo", "mid", "hi"], n), "s": rng.integers(0, 50, n)})
    d["y"] = (1 + d.x + rng.standard_normal(n_g)[g] + 0.5 * rng.standard_normal(n_g)[g] * d.x
              + (d.f == "hi") * 0.4 + rng.standard_normal(n))
    return d


@pytest.fixture(scope="module")
def client():
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                                       dashboard_address=None, silence_logs=logging.ERROR)
    with distributed.Client(cluster) as c:
        yield c
    cluster.close()


def compare(a, b):
    assert b.objective == pytest.approx(a.objective, rel=1e-10)
    assert list(b.fixef.index) == list(a.fixef.index)
    np.testing.assert_allclose(b.fixef, a.fixef, rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(b.theta, a.theta, rtol=1e-5, atol=1e-7)
    assert b.sigma == pytest.approx(a.sigma, rel=1e-7)
    assert b.nobs == a.nobs and b.ngroups == a.ngroups


@pytest.mark.parametrize("formula,REML", [
    ("y ~ x + (x | g)", True),
    ("y ~ x + f + (1 | g) + (1 | h)", True),
    ("y ~ x * f + (x | h) + (1 | g)", False),
    ("y ~ x + (1 | s) + (1 | g)", True),   # a numeric grouping column
])
def test_dask_fit_equals_pandas_fit_on_local_cluster(client, formula, REML):
    d = data()
    a = mmbook.lmer(formula, d, REML=REML)
    b = mmbook.lmer(formula, dd.from_pandas(d, npartitions=5), REML=REML)
    compare(a, b)
    for k in a.ranef:
        np.testing.assert_allclose(b.ranef[k].to_numpy(), a.ranef[k].to_numpy(), atol=1e-7)
        assert list(b.ranef[k].index) == list(a.ranef[k].index)


def test_fitted_residuals_predictions_are_dask_series(client):
    d = data(seed=2)
    a = mmbook.lmer("y ~ x + f + (x | g) + (1 | h)", d)
    b = mmbook.lmer("y ~ x + f + (x | g) + (1 | h)", dd.from_pandas(d, npartitions=4))
    for name in ("fitted", "residuals", "scaled_residuals"):
        got = getattr(b, name)
        assert isinstance(got, dd.Series), name
        got = got.compute()
        np.testing.assert_allclose(got.to_numpy(), getattr(a, name).to_numpy(), atol=1e-8)
        assert got.index.equals(getattr(a, name).index)
    new = d.iloc[:300].copy()
    pred = b.predict(dd.from_pandas(new, npartitions=2))
    assert isinstance(pred, dd.Series)
    np.testing.assert_allclose(pred.compute().to_numpy(), a.predict(new).to_numpy(), atol=1e-8)
    np.testing.assert_allclose(b.predict(new, re_form=None).to_numpy(), a.predict(new, re_form=None).to_numpy(),
                               atol=1e-8)


def test_threaded_scheduler_and_missing_values():
    """The default scheduler (threads, no client); rows with missing values are dropped as for pandas."""
    d = data(seed=3)
    d.loc[[5, 17, 900], "x"] = np.nan
    d.loc[[40], "g"] = None
    with pytest.warns(UserWarning, match="4 rows with missing values removed"):
        a = mmbook.lmer("y ~ x + (1 | g) + (1 | h)", d)
    with pytest.warns(UserWarning, match="4 rows with missing values removed"):
        b = mmbook.lmer("y ~ x + (1 | g) + (1 | h)", dd.from_pandas(d, npartitions=3))
    compare(a, b)


def test_empty_partitions_and_unbalanced_levels():
    """Partitions without some levels (or without rows) still give the global design."""
    d = data(seed=4).sort_values("f").reset_index(drop=True)  # the factor f changes between partitions
    ddf = dd.from_pandas(d, npartitions=6)
    ddf = ddf[ddf.x > -10]  # a filter: partitions keep their boundaries
    a = mmbook.lmer("y ~ x + f + (1 | g)", d)
    b = mmbook.lmer("y ~ x + f + (1 | g)", ddf)
    compare(a, b)
    summ = b.summary()
    assert "Number of obs: 3000, groups:  g, 200" in summ


def test_refit_ml_and_anova_quantities():
    d = data(seed=5)
    a = mmbook.lmer("y ~ x + (x | g)", d)
    b = mmbook.lmer("y ~ x + (x | g)", dd.from_pandas(d, npartitions=3))
    assert b.refit_ml().objective == pytest.approx(a.refit_ml().objective, rel=1e-10)
    assert b.aic == pytest.approx(a.aic, rel=1e-10)


def test_clear_errors():
    d = data(seed=6)
    ddf = dd.from_pandas(d, npartitions=2)
    with pytest.raises(ValueError, match="single columns"):
        mmbook.lmer("y ~ x + (1 | g:h)", ddf)
    with pytest.raises(ValueError, match="single columns"):
        mmbook.lmer("y ~ x + (1 | g/h)", ddf)
    with pytest.raises(KeyError, match="nope"):
        mmbook.lmer("y ~ nope + (1 | g)", ddf)
    b = mmbook.lmer("y ~ x + (1 | g)", ddf)
    with pytest.raises(NotImplementedError, match="rows in memory"):
        b.simulate()
    with pytest.raises(NotImplementedError, match="rows in memory"):
        b.X
    with pytest.raises(NotImplementedError, match="method='Wald'"):
        b.confint()
    a = mmbook.lmer("y ~ x + (1 | g)", d)
    pd.testing.assert_frame_equal(b.confint(method="Wald"), a.confint(method="Wald"), rtol=1e-7)
    with pytest.raises(TypeError, match="pandas DataFrame"):
        mmbook.lm("y ~ x", ddf)
    from mmbook.engine.design import model_frame
    with pytest.raises(TypeError, match="only by mmbook.lmer"):
        model_frame("y ~ x + (1 | g)", ddf)
    # a GLMM's PIRLS iterations reweight the rows again and again: no Dask path
    ddf["b"] = ddf["y"] > 1
    with pytest.raises(TypeError, match="glmer needs the data in memory"):
        mmbook.glmer("b ~ x + (1 | g)", ddf, family="binomial")


def test_factor_of_a_number_and_a_categorical_column():
    d = data(seed=7)
    d["f"] = pd.Categorical(d["f"], categories=["lo", "mid", "hi"])  # its own level order, as R's factor
    d["k"] = d["s"] % 4
    a = mmbook.lmer("y ~ x + f + factor(k) + (1 | g)", d)
    b = mmbook.lmer("y ~ x + f + factor(k) + (1 | g)", dd.from_pandas(d, npartitions=4))
    compare(a, b)
    assert "fmid" in b.fixef.index


def test_transformations_that_learn_from_all_rows_are_refused():
    ddf = dd.from_pandas(data(seed=8), npartitions=2)
    with pytest.raises(NotImplementedError, match="scale"):
        mmbook.lmer("y ~ scale(x) + (1 | g)", ddf)
    with pytest.raises(NotImplementedError, match="weights"):
        mmbook.lmer("y ~ x + (1 | g)", ddf, weights="x")


@pytest.mark.parametrize("formula", ["y ~ x + (1 | g) + (1 | h)", "y ~ 0 + (1 | g) + (1 | h)"])
def test_moment_start_from_sums_is_the_pandas_one(formula, monkeypatch):
    """The Dask path's moment start (from the summed cross-products) is the in-memory one, with and
    without fixed effects (without them the level means are those of y less its mean)."""
    from mmbook.engine.bigdata import SummedPLS
    from mmbook.engine.pls import PLS
    starts = {}
    for cls in (PLS, SummedPLS):
        def spy(self, _orig=cls.moment_start, _name=cls.__name__):
            starts[_name] = _orig(self)
            return starts[_name]
        monkeypatch.setattr(cls, "moment_start", spy)
    d = data(seed=5)
    d["y"] = d["y"] + 3.0  # a mean far from 0: the centring counts
    mmbook.lmer(formula, d)
    mmbook.lmer(formula, dd.from_pandas(d, npartitions=3))
    np.testing.assert_allclose(starts["SummedPLS"], starts["PLS"], rtol=1e-10)
