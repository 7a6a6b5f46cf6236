"""The optimum whatever the units: closed-form invariances of the criterion (issue 9, section 2).

Reference values are not stored numbers but the fit in the original units and these identities,
which follow from the profiled criteria (Bates et al. 2015, eqs. 34 and 41):

* a covariate in both X and Z multiplied by ``c``: ``X_c = X D``, ``Z_c Lambda_c = Z Lambda`` with
  ``T_c = D^{-1} T``, so ``log|L|^2`` and ``pwrss`` are unchanged and ``log|R_X|^2`` gains
  ``2 log|c|``: the REML criterion moves by ``2 log|c|`` per scaled column of X, the ML deviance
  not at all; ``beta_c = D^{-1} beta``, ``theta`` scales by ``1/c`` in the covariate's row of T.
* ``y`` multiplied by ``c``: ``pwrss`` by ``c^2``, so the criterion moves by ``2 d log|c|``
  (``d = n - p`` for REML, ``n`` for ML); ``theta`` is unchanged, ``beta`` and ``b`` scale by ``c``.
* a covariate shifted by ``s`` (``x + s``, with an intercept): the same model, ``X_s = X A`` with
  ``det A = 1``: the criteria are unchanged; the intercept becomes ``beta_0 - s beta_x`` and the
  random-effects covariance ``Psi_s = A Psi A'``.

The first failing inputs (issue 9): sleepstudy with Days times 1e6 stopped at a REML criterion of
2269.588 instead of 1771.259; a 200-row ``y ~ x + (x | g)`` with x near 1e6 stayed at
theta = (1, 0, 1).
"""

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import mmbook
from mmbook.engine.control import PredictorScaleWarning, SingularFitWarning

DATA = Path(__file__).parent / "data"
DESIGNS = json.loads((DATA / "lme4_designs.json").read_text())["fits"]
SCALES = [1e-6, 1e-3, 1e3, 1e6]
SLEEP = "Reaction ~ Days + (Days | Subject)"


def _fit(formula, data, REML=True, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PredictorScaleWarning)
        warnings.simplefilter("ignore", SingularFitWarning)
        return mmbook.lmer(formula, data, REML=REML, **kw)


def _T_rows_scaled(fit, k, col, c):
    """theta of term k after its column ``col`` is multiplied by c: T's row ``col`` divided by c."""
    T = fit.T(k).copy()
    T[col] /= c
    rows, cols = np.tril_indices(len(T))
    order = np.lexsort((rows, cols))  # column-major
    return T[rows[order], cols[order]]


@pytest.fixture(scope="module")
def sleep():
    return mmbook.load_sleepstudy()


@pytest.fixture(scope="module")
def base(sleep):
    return {REML: _fit(SLEEP, sleep, REML) for REML in (True, False)}


@pytest.mark.parametrize("REML", [True, False])
@pytest.mark.parametrize("c", SCALES)
def test_covariate_scale_sleepstudy(sleep, base, c, REML):
    d = sleep.copy()
    d["Days"] = d["Days"] * c
    fit = _fit(SLEEP, d, REML)
    ref = base[REML]
    shift = 2 * np.log(abs(c)) if REML else 0.0
    assert fit.objective - shift == pytest.approx(ref.objective, abs=1e-8 * abs(ref.objective))
    np.testing.assert_allclose(fit.fixef, ref.fixef / np.array([1.0, c]), rtol=1e-7)
    np.testing.assert_allclose(fit.theta, _T_rows_scaled(ref, 0, 1, c), rtol=1e-6)
    assert fit.sigma == pytest.approx(ref.sigma, rel=1e-8)
    assert fit.is_singular == ref.is_singular
    assert fit.opt.converged and fit.convergence.code == 0


@pytest.mark.parametrize("REML", [True, False])
@pytest.mark.parametrize("c", SCALES)
def test_response_scale_sleepstudy(sleep, base, c, REML):
    d = sleep.copy()
    d["Reaction"] = d["Reaction"] * c
    fit = _fit(SLEEP, d, REML)
    ref = base[REML]
    dof = fit.nobs - fit.mf.p if REML else fit.nobs
    assert fit.objective - 2 * dof * np.log(c) == pytest.approx(ref.objective, abs=1e-8 * abs(ref.objective))
    np.testing.assert_allclose(fit.theta, ref.theta, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(fit.fixef, ref.fixef * c, rtol=1e-7)
    np.testing.assert_allclose(fit.ranef["Subject"], ref.ranef["Subject"] * c, rtol=1e-5, atol=1e-6 * c)


@pytest.mark.parametrize("name", ["three_terms", "crossed_corr_slope", "uncorr_nested", "slope_ML"])
@pytest.mark.parametrize("c", [1e-6, 1e6])
def test_covariate_scale_several_terms(name, c):
    """x is in X and in one or two random-effects terms (crossed, nested, uncorrelated)."""
    r = DESIGNS[name]
    data = pd.read_csv(DATA / r["data"])
    ref = _fit(r["formula"], data, r["REML"])
    d = data.copy()
    d["x"] = d["x"] * c
    fit = _fit(r["formula"], d, r["REML"])
    shift = 2 * np.log(c) if r["REML"] else 0.0
    assert fit.objective - shift == pytest.approx(ref.objective, abs=1e-8 * abs(ref.objective))
    assert ref.objective <= r["criterion"] + 1e-6 * abs(r["criterion"])  # lme4's, or lower
    scale = np.where(np.array(ref.fixef.index) == "x", c, 1.0)
    np.testing.assert_allclose(fit.fixef, ref.fixef / scale, rtol=1e-6)
    for k, t in enumerate(ref.terms):
        cols = [j for j, n in enumerate(t.cnames) if n == "x"]
        theta_k = ref.theta[ref.pls.theta_offsets[k]:ref.pls.theta_offsets[k + 1]]
        expected = _T_rows_scaled(ref, k, cols[0], c) if cols else theta_k
        got = fit.theta[fit.pls.theta_offsets[k]:fit.pls.theta_offsets[k + 1]]
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-7 * np.max(np.abs(expected)))
    assert fit.is_singular == ref.is_singular


def _far_from_zero(shift, seed=1):
    rng = np.random.default_rng(seed)
    n, m = 200, 20
    g = rng.integers(0, m, n)
    xc = rng.normal(size=n)
    b0, b1 = rng.normal(size=m), 0.5 * rng.normal(size=m)
    y = 1 + 2 * xc + b0[g] + b1[g] * xc + rng.normal(size=n)
    return pd.DataFrame({"y": y, "x": xc + shift, "xc": xc, "g": g})


@pytest.mark.parametrize("REML", [True, False])
@pytest.mark.parametrize("shift", [1e3, 1e6])
def test_covariate_far_from_zero(shift, REML):
    """x = 1e6 + N(0, 1): the same model as the centred one, only parameterised differently."""
    d = _far_from_zero(shift)
    cen = _fit("y ~ xc + (xc | g)", d, REML)
    fit = _fit("y ~ x + (x | g)", d, REML)
    assert fit.objective == pytest.approx(cen.objective, abs=1e-8 * abs(cen.objective))
    b0, b1 = cen.fixef
    np.testing.assert_allclose(fit.fixef.to_numpy(), [b0 - shift * b1, b1], rtol=1e-6)
    A = np.array([[1.0, -shift], [0.0, 1.0]])  # b = A b_centred: the intercept at x = 0
    np.testing.assert_allclose(fit.psi(0), A @ cen.psi(0) @ A.T, rtol=1e-6,
                               atol=1e-9 * np.abs(A @ cen.psi(0) @ A.T).max())
    assert fit.sigma == pytest.approx(cen.sigma, rel=1e-8)
    # singular or not, whatever the origin of x (lme4 tests theta in the data's units: here
    # theta[2] is ~1e-6 and its isSingular says TRUE)
    assert fit.is_singular == cen.is_singular is False
    np.testing.assert_allclose(fit.fitted, cen.fitted, rtol=1e-7, atol=1e-8 * np.abs(d.y).max())
    np.testing.assert_allclose(fit.predict(d.head()), cen.predict(d.head()), rtol=1e-7)


def test_scale_message_is_information_only(sleep):
    d = sleep.copy()
    d["Days"] = d["Days"] * 1e6
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        fit = mmbook.lmer(SLEEP, d)
    msgs = [x for x in w if issubclass(x.category, PredictorScaleWarning)]
    assert len(msgs) == 1 and str(msgs[0].message).startswith(
        "Some predictor variables are on very different scales: consider rescaling")
    assert issubclass(PredictorScaleWarning, UserWarning) and not issubclass(PredictorScaleWarning, RuntimeWarning)
    assert fit.opt.converged and not fit.opt.messages
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        mmbook.lmer(SLEEP, sleep)
    assert not [x for x in w if issubclass(x.category, PredictorScaleWarning)]
    quiet = mmbook.lmer(SLEEP, d, control=mmbook.LmerControl(check_scaleX="ignore"))
    assert all(c is not PredictorScaleWarning for c, _ in quiet.messages)


def test_conditioned_solution_matches_raw_where_raw_is_accurate(sleep, base):
    """ConditionedPLS returns what the plain PLS computes, in the original units."""
    from mmbook.engine.pls import PLS

    fit = base[True]
    raw = PLS(fit.mf, REML=True)
    theta = fit.theta * 1.1
    a, b = fit.pls.solve(theta), raw.solve(theta)
    assert fit.pls.objective(theta) == pytest.approx(raw.objective(theta), rel=1e-12)
    np.testing.assert_allclose(a.beta, b.beta, rtol=1e-10)
    for x, y in zip(a.u + a.gamma, b.u + b.gamma):
        np.testing.assert_allclose(x, y, rtol=1e-8, atol=1e-10)
    assert a.pwrss == pytest.approx(b.pwrss, rel=1e-10)
    np.testing.assert_allclose(a.RX @ a.RX.T, b.RX @ b.RX.T, rtol=1e-10)
    assert a.logdet_RX == pytest.approx(b.logdet_RX, rel=1e-12)
    for x, y in zip(fit.pls.condvar(theta), raw.condvar(theta)):
        np.testing.assert_allclose(x, y, rtol=1e-9)
    np.testing.assert_allclose(fit.pls.theta_of(fit.pls.par_of(theta)), theta, rtol=1e-12)


@pytest.mark.parametrize("REML", [True, False])
def test_interaction_of_a_far_covariate_with_a_factor(REML):
    """x:f with x = 1e6 + N(0, 1): after centring, x:f is still nearly collinear with f (found by
    the fuzz tests: the criterion was noisy at 1e-4 and the fit reported no convergence). The same
    model as xc * f (X = X_c A with det A = 1), so the criteria are equal."""
    d = _far_from_zero(1e6, seed=3)
    d["f"] = np.where(np.arange(len(d)) % 3 == 0, "a", "b")
    cen = _fit("y ~ xc * f + (xc | g)", d, REML)
    fit = _fit("y ~ x * f + (x | g)", d, REML)
    assert fit.opt.converged and fit.convergence.code == 0
    assert fit.objective == pytest.approx(cen.objective, abs=1e-8 * abs(cen.objective))
    np.testing.assert_allclose(fit.fixef["x:fb"], cen.fixef["xc:fb"], rtol=1e-6)
    np.testing.assert_allclose(fit.fitted, cen.fitted, rtol=1e-7, atol=1e-8 * np.abs(d.y).max())
