"""Property-based tests (hypothesis): random lme4 formulas over random data frames (issue 9, section 5).

Every input either fits, and the fit satisfies the model's invariants, or raises one of mmbook's
documented errors (ValueError, TypeError, KeyError) from mmbook's own code, with a message. A
traceback that ends inside numpy, scipy, pandas or formulaic fails the test, and so does any
warning that is not one of mmbook's.

The invariants, each an identity of the model (Bates et al. 2015), not a stored number:

* the criterion is finite and no higher than at either start (the moment start, lme4's T = I);
* fitted + residuals == y;
* coef == fixef + ranef (lme4's ``coef``);
* vcov(beta) is symmetric and positive semi-definite;
* the response scaled by c moves the criterion by 2 d log(c) exactly (d = n - p for REML, n for
  ML), for a converged fit;
* a fit that did not converge says so: a ConvergenceWarning, ``fit.opt.converged`` False with its
  messages, and the optimizer's line in the printed summary (and a converged fit warns of nothing).

The data frames mix the awkward cases of real data: missing values, constant and all-missing
columns, one-level factors, duplicated and collinear columns, huge (1e8) and tiny (1e-8) scales, a
covariate far from zero (1e6 + N(0, 1)), infinite values, strings, booleans, categoricals and empty
frames. The run is reproducible (``derandomize=True``) and short (``max_examples``), so it is part
of ``pytest tests``.
"""

import math
import traceback
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import mmbook
from mmbook.engine.control import ConvergenceWarning, PredictorScaleWarning, SingularFitWarning

MMBOOK = str(Path(mmbook.__file__).resolve().parent)

# (choice, weight): the common cases most of the time, every awkward one now and then
NUMERIC_KINDS = [("normal", 12), ("int", 2), ("constant", 1), ("huge", 2), ("tiny", 2), ("far", 2), ("some_na", 2),
                 ("all_na", 1), ("inf", 1), ("bool", 1), ("string", 1), ("duplicate", 1), ("double", 1)]
RESPONSE_KINDS = [("normal", 16), ("constant", 1), ("huge", 2), ("tiny", 2), ("far", 2), ("some_na", 2), ("int", 1),
                  ("string", 1), ("bool", 1), ("inf", 1), ("positive", 2)]
GROUP_KINDS = [("strings", 12), ("ints", 3), ("floats", 2), ("one_level", 1), ("some_na", 2), ("bool", 1),
               ("categorical", 2), ("unique", 1)]
FIXED = [("x", 6), ("1", 2), ("z", 2), ("x + z", 4), ("x * f", 2), ("f", 1), ("0 + f", 1), ("x + I(x^2)", 1),
         ("xb", 1), ("s", 1), ("x + x2", 1), ("log(x)", 1), ("0 + x", 1), ("-1 + x + z", 1), ("x + f + xb", 2),
         ("x + missing", 1)]
RANDOM = [("(1 | g)", 6), ("(x | g)", 5), ("(1 | g) + (1 | h)", 3), ("(x || g)", 2), ("(1 | g/h)", 2),
          ("(0 + x | g)", 1), ("(f | g)", 1), ("(1 | g:h)", 1), ("(z | h)", 1), ("(1 + x + z | g)", 1),
          ("(1 | f)", 1), ("(x | g) + (1 | h)", 2), ("(1 | missing)", 1)]
RESPONSES = [("y", 12), ("log(y)", 1), ("missing", 1)]
MALFORMED = ["y ~ x + (1 | g", "y ~ x + (1 || )", "~ x + (1 | g)", "y ~ x + (| g)", "y ~ x +", "y ~ ((1 | g)",
             "y ~ x + (1 | g) + (x |)", "y ~ x + (1 | g) (1 | h)", "y ~ x + (1 | g + h)", ""]


def _pick(rng, options):
    names, weights = zip(*options)
    return names[rng.choice(len(names), p=np.array(weights) / sum(weights))]


def _numeric(kind, n, rng, base=None):
    x = rng.normal(size=n)
    if kind == "int":
        return rng.integers(-3, 4, size=n)
    if kind == "constant":
        return np.full(n, 2.5)
    if kind == "huge":
        return x * 1e8
    if kind == "tiny":
        return x * 1e-8
    if kind == "far":
        return 1e6 + x
    if kind == "some_na":
        x[rng.random(n) < 0.2] = np.nan
        return x
    if kind == "all_na":
        return np.full(n, np.nan)
    if kind == "inf":
        if n:
            x[rng.integers(n)] = np.inf
        return x
    if kind == "bool":
        return rng.random(n) < 0.5
    if kind == "string":
        return np.array([f"v{int(v)}" for v in rng.integers(0, 3, size=n)], dtype=object)
    if kind == "duplicate" and base is not None:
        return np.array(base, copy=True)
    if kind == "double" and base is not None and np.asarray(base).dtype.kind == "f":
        return 2.0 * np.asarray(base)
    return x


def _groups(kind, n, k, rng):
    codes = rng.integers(0, k, size=n)
    if kind == "ints":
        return codes * 7 + 3
    if kind == "floats":
        return codes + 0.5
    if kind == "one_level":
        return np.array(["only"] * n, dtype=object)
    if kind == "some_na":
        out = np.array([f"l{c}" for c in codes], dtype=object)
        out[rng.random(n) < 0.15] = None
        return out
    if kind == "bool":
        return codes % 2 == 0
    if kind == "categorical":
        return pd.Categorical([f"c{c}" for c in codes], categories=[f"c{c}" for c in range(k + 1)])
    if kind == "unique":
        return np.arange(n)
    return np.array([f"l{c}" for c in codes], dtype=object)


@st.composite
def cases(draw):
    """(data, formula, REML, check the scale invariance): every choice made by a seeded generator."""
    rng = np.random.default_rng(draw(st.integers(0, 2 ** 32 - 1)))
    n = int(rng.choice([0, 1, 3, 8, 20, 40, 60], p=[0.04, 0.03, 0.05, 0.1, 0.23, 0.3, 0.25]))
    kx, kz, ky = _pick(rng, NUMERIC_KINDS), _pick(rng, NUMERIC_KINDS), _pick(rng, RESPONSE_KINDS)
    x = _numeric(kx, n, rng)
    z = _numeric(kz, n, rng, base=x)
    g = _groups(_pick(rng, GROUP_KINDS), n, int(rng.integers(2, 9)), rng)
    h = _groups(_pick(rng, GROUP_KINDS), n, int(rng.integers(2, 6)), rng)
    f = np.array([f"f{c}" for c in rng.integers(0, rng.integers(1, 4), size=n)], dtype=object)
    # y depends on x and the groups where it can, so that most fits have something to estimate
    xs = np.nan_to_num(np.asarray(x, dtype=float), nan=0.0, posinf=0.0) if np.asarray(x).dtype.kind in "fiub" \
        else np.zeros(n)
    gi = pd.factorize(np.asarray(g).astype(str))[0] if n else np.zeros(0, int)
    xs = (xs - xs.mean()) / (xs.std() + 1.0) if n else xs
    y = 1.0 + 0.5 * xs + rng.normal(size=gi.max() + 1 if n else 1)[gi] + rng.normal(size=n)
    if ky == "positive":
        y = np.exp(y)
    elif ky != "normal":
        y = _numeric(ky, n, rng) if ky not in ("huge", "tiny", "far", "some_na") else {
            "huge": y * 1e8, "tiny": y * 1e-8, "far": y + 1e6, "some_na": np.where(rng.random(n) < 0.2, np.nan, y),
        }[ky]
    x2 = 2.0 * np.asarray(x, dtype=float) if np.asarray(x).dtype.kind in "fiu" else 2.0 * xs  # collinear with x
    data = pd.DataFrame({"y": y, "x": x, "z": z, "x2": x2, "g": g, "h": h, "f": f,
                         "xb": rng.random(n) < 0.5,
                         "s": np.array([f"s{c}" for c in rng.integers(0, 2, size=n)], dtype=object)})
    if rng.random() < 0.06:
        formula = str(rng.choice(MALFORMED))
    else:
        formula = f"{_pick(rng, RESPONSES)} ~ {_pick(rng, FIXED)} + {_pick(rng, RANDOM)}"
    return data, formula, bool(rng.random() < 0.5), bool(rng.random() < 0.3)


def _raised_by_mmbook(exc) -> bool:
    frames = traceback.extract_tb(exc.__traceback__)
    return bool(frames) and str(Path(frames[-1].filename).resolve()).startswith(MMBOOK)


MMBOOK_WARNINGS = (SingularFitWarning, ConvergenceWarning, PredictorScaleWarning)


def _check_invariants(fit, scale_check):
    y = fit.y
    big = max(1.0, float(np.max(np.abs(y)))) if len(y) else 1.0
    crit = fit.objective
    assert np.isfinite(crit)
    tol = 1e-9 * max(1.0, abs(crit))
    pls = fit.pls
    for start in (pls.moment_start(), pls.theta0):
        assert crit <= pls.objective(start) + tol
    np.testing.assert_allclose(fit.fitted.to_numpy() + fit.residuals.to_numpy(), y, rtol=1e-9, atol=1e-9 * big)
    fixef = fit.fixef
    for grp, re in fit.ranef.items():
        coef = fit.coef[grp]
        assert set(coef.columns) == set(fixef.index) | {c for r in fit.ranef.values() for c in r.columns}
        for c in coef.columns:
            beta = fixef.get(c, 0.0)  # lme4's coef: 0 for a random effect without a fixed effect
            expected = beta + (re[c].to_numpy() if c in re.columns else 0.0)
            np.testing.assert_allclose(coef[c].to_numpy(), expected, rtol=1e-12, atol=1e-12 * max(1.0, abs(beta)))
    V = fit.vcov.to_numpy()
    if V.size:
        assert np.all(np.isfinite(V))
        np.testing.assert_allclose(V, V.T, rtol=1e-10, atol=1e-14 * np.max(np.abs(V)))
        ev = np.linalg.eigvalsh((V + V.T) / 2)
        assert ev.min() >= -1e-9 * max(ev.max(), 0.0)
    if scale_check and fit.opt.converged:
        c = 1e3
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", MMBOOK_WARNINGS)
            scaled = mmbook.refit(fit, y * c)
        if scaled.opt.converged:
            dof = fit.nobs - fit.mf.p if fit.REML else fit.nobs
            assert scaled.objective - 2 * dof * math.log(c) == pytest.approx(crit, abs=1e-6 * max(1.0, abs(crit)))


@settings(max_examples=500, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(cases())
def test_fit_or_documented_error(case):
    data, formula, REML, scale_check = case
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            fit = mmbook.lmer(formula, data, REML=REML)
        except (ValueError, TypeError, KeyError) as exc:
            assert _raised_by_mmbook(exc), f"{type(exc).__name__} from outside mmbook: {exc!r}\n" + "".join(
                traceback.format_tb(exc.__traceback__)[-3:])
            assert str(exc).strip(), "an error without a message"
            fit = None
    foreign = [w for w in caught if not (issubclass(w.category, MMBOOK_WARNINGS) or w.category is UserWarning)]
    assert not foreign, [f"{w.category.__name__}: {w.message}" for w in foreign]
    if fit is not None:
        _check_invariants(fit, scale_check)
        # a fit never reports convergence it did not reach: a warning, fit.opt and the summary say so
        text = str(fit)
        if not fit.opt.converged:
            assert any(issubclass(w.category, ConvergenceWarning) for w in caught) and fit.opt.messages
            assert f"optimizer ({fit.opt.optimizer}) convergence code" in text
        else:  # only lme4's identifiability warnings (codes 2 and 3) may come with a converged fit
            assert all(str(w.message).startswith("Model is nearly unidentifiable") for w in caught
                       if issubclass(w.category, ConvergenceWarning))
