"""Figures of mmbook.plots: they build with the Agg backend, and what they plot is the fit's numbers.

Reference values are computed independently here: residuals from ``y - X beta - Z b``
with the fit's matrices, normal plotting positions by statsmodels' ``plotting_pos``,
and each level's conditional covariance from its own small system
``(Z_c'Z_c / sigma^2 + psi^{-1})^{-1}`` (the covariance of ``gamma_c`` given
``y`` and ``beta``, which is what lme4's ``condVar`` reports).
"""

import io

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib.collections import PathCollection  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from scipy import stats  # noqa: E402
from statsmodels.graphics.gofplots import plotting_pos  # noqa: E402

import mmbook  # noqa: E402
from mmbook.plots import caterpillar, normal_quantiles, qq_ranef, qq_residuals, resid_fitted  # noqa: E402


@pytest.fixture(scope="module")
def sleep():
    return mmbook.load_sleepstudy()


@pytest.fixture(scope="module")
def fit_rs(sleep):
    return mmbook.lmer("Reaction ~ Days + (Days | Subject)", sleep)


@pytest.fixture(scope="module")
def fit_crossed():
    """Two grouping factors, one of them with two terms (a random intercept and a slope, uncorrelated)."""
    rng = np.random.default_rng(11)
    n = 240
    g = rng.integers(0, 12, n)
    h = rng.integers(0, 8, n)
    x = rng.normal(size=n)
    y = 1 + 0.5 * x + rng.normal(0, 0.8, 12)[g] + rng.normal(0, 0.3, 12)[g] * x \
        + rng.normal(0, 0.6, 8)[h] + rng.normal(size=n)
    import pandas as pd
    data = pd.DataFrame({"y": y, "x": x, "g": [f"g{k:02d}" for k in g], "h": [f"h{k}" for k in h]})
    return mmbook.lmer("y ~ x + (x || g) + (1 | h)", data)


def _render(fig: Figure) -> None:
    fig.savefig(io.BytesIO(), format="png", dpi=40)


def _scatter(ax) -> np.ndarray:
    cols = [c for c in ax.collections if isinstance(c, PathCollection)]
    assert len(cols) == 1
    return np.asarray(cols[0].get_offsets())


def _residuals(fit) -> np.ndarray:
    """y - X beta - Z b, from the fit's matrices (not from fit.residuals)."""
    return fit.y - fit.X @ fit.beta - fit.Z @ fit.b


# ---------------------------------------------------------------- normal quantiles
@pytest.mark.parametrize("n", [1, 5, 10, 11, 18, 180])
def test_normal_quantiles_are_r_ppoints(n):
    a = 3.0 / 8.0 if n <= 10 else 0.5          # R's ppoints: a = 3/8 for n <= 10, else 1/2
    expected = stats.norm.ppf(plotting_pos(n, a))  # statsmodels' plotting positions
    np.testing.assert_allclose(normal_quantiles(n), expected, rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("bad", [0, -3, 2.5, True, "5"])
def test_normal_quantiles_reject_bad_n(bad):
    with pytest.raises(ValueError, match="positive integer"):
        normal_quantiles(bad)


# ------------------------------------------------------------- residuals vs fitted
def test_resid_fitted_plots_the_fits_residuals(fit_rs):
    fig = resid_fitted(fit_rs, label=3, label_by="Subject")
    _render(fig)
    ax = fig.axes[0]
    xy = _scatter(ax)
    np.testing.assert_allclose(xy[:, 0], fit_rs.X @ fit_rs.beta + fit_rs.Z @ fit_rs.b, rtol=1e-12)
    np.testing.assert_allclose(xy[:, 1], _residuals(fit_rs), rtol=1e-10, atol=1e-10)
    texts = [t.get_text() for t in ax.texts]
    biggest = np.argsort(-np.abs(_residuals(fit_rs)))[:3]
    assert texts == [str(fit_rs.data["Subject"].iloc[i]) for i in biggest]
    assert ax.get_ylabel() == "residual"


def test_resid_fitted_scaled_divides_by_sigma(fit_rs):
    xy = _scatter(resid_fitted(fit_rs, scaled=True).axes[0])
    np.testing.assert_allclose(xy[:, 1], _residuals(fit_rs) / fit_rs.sigma, rtol=1e-10, atol=1e-12)


def test_resid_fitted_draws_into_given_axes(fit_rs):
    fig = Figure()
    ax = fig.subplots()
    assert resid_fitted(fit_rs, ax=ax) is fig
    assert len(fig.axes) == 1


def test_resid_fitted_bad_arguments(fit_rs):
    with pytest.raises(KeyError, match="not a column"):
        resid_fitted(fit_rs, label=1, label_by="nope")
    with pytest.raises(ValueError, match="label"):
        resid_fitted(fit_rs, label=-1)
    with pytest.raises(TypeError, match="LmerFit"):
        resid_fitted(mmbook.lm("Reaction ~ Days", mmbook.load_sleepstudy()))


# -------------------------------------------------------------------- QQ plots
def test_qq_residuals_plots_sorted_scaled_residuals(fit_rs):
    fig = qq_residuals(fit_rs)
    _render(fig)
    ax = fig.axes[0]
    xy = _scatter(ax)
    r = np.sort(_residuals(fit_rs) / fit_rs.sigma)
    np.testing.assert_allclose(xy[:, 1], r, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(xy[:, 0], stats.norm.ppf(plotting_pos(len(r), 0.5)), rtol=1e-13)
    # the reference line passes through the quartiles of the data at the normal quartiles
    (line,) = ax.lines
    lx, ly = line.get_data()
    slope = (ly[1] - ly[0]) / (lx[1] - lx[0])
    q1, q3 = np.percentile(r, [25, 75])
    z1, z3 = stats.norm.ppf([0.25, 0.75])
    assert ly[0] + slope * (z1 - lx[0]) == pytest.approx(q1, rel=1e-12)
    assert ly[0] + slope * (z3 - lx[0]) == pytest.approx(q3, rel=1e-12)


def test_qq_ranef_one_panel_per_random_effect(fit_rs):
    fig = qq_ranef(fit_rs)
    _render(fig)
    assert len(fig.axes) == 2
    re = fit_rs.ranef["Subject"]
    for ax, name in zip(fig.axes, ["(Intercept)", "Days"]):
        xy = _scatter(ax)
        np.testing.assert_allclose(xy[:, 1], np.sort(re[name].to_numpy()), rtol=1e-12)
        np.testing.assert_allclose(xy[:, 0], stats.norm.ppf(plotting_pos(18, 0.5)), rtol=1e-13)
        assert name in ax.get_title()


def test_qq_ranef_group_choice(fit_crossed):
    assert len(qq_ranef(fit_crossed, "g").axes) == 2      # (x || g): intercept and slope
    assert len(qq_ranef(fit_crossed, "h").axes) == 1
    with pytest.raises(KeyError, match="grouping factor"):
        qq_ranef(fit_crossed, "Subject")
    with pytest.raises(ValueError, match="one per random effect"):
        qq_ranef(fit_crossed, "g", axes=Figure().subplots(1, 3))


# --------------------------------------------------------------- caterpillar
def _condvar_by_hand(fit, group_rows, zcols, psi):
    """Var(gamma_c | y, beta) = (Z_c'Z_c / sigma^2 + psi^{-1})^{-1} for each level c (no shared factors)."""
    out = []
    for rows in group_rows:
        Zc = zcols[rows]
        out.append(np.linalg.inv(Zc.T @ Zc / fit.sigma**2 + np.linalg.inv(psi)))
    return np.array(out)


def test_caterpillar_intervals_are_conditional_variances(fit_rs, sleep):
    fig = caterpillar(fit_rs, level=0.95)
    _render(fig)
    re = fit_rs.ranef["Subject"]
    order = np.argsort(re["(Intercept)"].to_numpy(), kind="stable")
    levels = list(re.index)
    rows = [np.flatnonzero(sleep["Subject"].astype(str).to_numpy() == lev) for lev in levels]
    Zc = np.column_stack([np.ones(len(sleep)), sleep["Days"].to_numpy(float)])
    V = _condvar_by_hand(fit_rs, rows, Zc, fit_rs.psi(0))
    z = stats.norm.ppf(0.975)
    for k, (ax, name) in enumerate(zip(fig.axes, ["(Intercept)", "Days"])):
        points, bars = ax.containers[0].lines[0], ax.containers[0].lines[2][0]
        px, py = points.get_data()
        np.testing.assert_allclose(px, re[name].to_numpy()[order], rtol=1e-12)
        np.testing.assert_array_equal(py, np.arange(18))
        segs = np.array(bars.get_segments())              # (18, 2, 2): ends of each bar
        half = (segs[:, 1, 0] - segs[:, 0, 0]) / 2
        np.testing.assert_allclose(half, z * np.sqrt(V[order, k, k]), rtol=1e-8)
    labels = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert labels == [levels[i] for i in order]


def test_caterpillar_order_and_level(fit_rs):
    re = fit_rs.ranef["Subject"]
    fig = caterpillar(fit_rs, order="Days", level=0.5)
    px, _ = fig.axes[1].containers[0].lines[0].get_data()
    np.testing.assert_allclose(px, np.sort(re["Days"].to_numpy()), rtol=1e-12)
    sd = np.sqrt(fit_rs.ranef_condvar["Subject"][:, 1, 1])
    segs = np.array(fig.axes[1].containers[0].lines[2][0].get_segments())
    order = np.argsort(re["Days"].to_numpy(), kind="stable")
    np.testing.assert_allclose((segs[:, 1, 0] - segs[:, 0, 0]) / 2,
                               stats.norm.ppf(0.75) * sd[order], rtol=1e-12)


def test_caterpillar_factor_with_two_terms(fit_crossed):
    """(x || g) is two terms on one factor: ranef_condvar holds a list; both panels get intervals."""
    fig = caterpillar(fit_crossed, "g")
    _render(fig)
    assert isinstance(fit_crossed.ranef_condvar["g"], list)
    re = fit_crossed.ranef["g"]
    order = np.argsort(re.iloc[:, 0].to_numpy(), kind="stable")
    for k, ax in enumerate(fig.axes):
        sd = np.sqrt(fit_crossed.ranef_condvar["g"][k][:, 0, 0])
        segs = np.array(ax.containers[0].lines[2][0].get_segments())
        np.testing.assert_allclose((segs[:, 1, 0] - segs[:, 0, 0]) / 2,
                                   stats.norm.ppf(0.975) * sd[order], rtol=1e-12)


def test_caterpillar_bad_arguments(fit_rs):
    for bad in (0, 1, 1.5, "high"):
        with pytest.raises(ValueError, match="level"):
            caterpillar(fit_rs, level=bad)
    with pytest.raises(KeyError, match="order"):
        caterpillar(fit_rs, order="x")
