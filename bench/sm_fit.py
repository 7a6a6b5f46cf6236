"""Fit one benchmark case with statsmodels MixedLM (run as a subprocess).

``python -m bench.sm_fit CASE RUNS`` regenerates the case's data, fits it
``RUNS`` times with ``MixedLM.fit(reml=case.REML)`` and prints one JSON object.
The runner starts it with a timeout, so a fit that would take too long is
killed rather than waited for.

How the models are written for statsmodels:

- one grouping factor, ``y ~ x + (x|g)``:
  ``mixedlm("y ~ x", df, groups="g", re_formula="~x")``;
- crossed designs, ``(1|a) + (1|b)``: statsmodels has no crossed random
  effects, so the standard trick is used: a single group holding every row
  (``groups`` all ones, no random effect of its own, ``re_formula="0"``) and
  one variance component per factor, ``vc_formula={"a": "0 + C(a)", ...}``,
  with sparse variance-component design matrices (``use_sparse=True``).

The criterion reported is ``-2 * llf``: statsmodels' REML log-likelihood
carries the same constants as lme4's REML criterion (checked on sleepstudy:
both give 1743.628).
"""

from __future__ import annotations

import json
import sys
import time
import warnings

import numpy as np


def build(case, df):
    """The statsmodels model for ``case`` on ``df``."""
    import statsmodels.formula.api as smf

    lhs, rhs = case.formula.split("~", 1)
    terms = [t.strip() for t in rhs.split("+")]
    fixed = " + ".join(t for t in terms if "|" not in t)
    bars = [t.strip("() ") for t in terms if "|" in t]
    if case.sm == "groups":
        (bar,) = bars
        re_part, group = (s.strip() for s in bar.split("|"))
        return smf.mixedlm(f"{lhs.strip()} ~ {fixed}", df, groups=group,
                           re_formula=f"~{re_part}")
    if case.sm == "vc":
        df = df.assign(one_group=1)
        vc = {}
        for bar in bars:
            re_part, group = (s.strip() for s in bar.split("|"))
            if re_part != "1":
                raise ValueError(f"vc trick written for random intercepts only, got {bar!r}")
            vc[group] = f"0 + C({group})"
        return smf.mixedlm(f"{lhs.strip()} ~ {fixed}", df, groups="one_group",
                           re_formula="0", vc_formula=vc, use_sparse=True)
    raise ValueError(f"case {case.name}: statsmodels is not run ({case.sm})")


def main(argv=None):
    from bench.datasets import CASES

    argv = sys.argv[1:] if argv is None else argv
    name, runs = argv[0], int(argv[1])
    case = CASES[name]
    df = case.make()
    warm = CASES["sleepstudy"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        build(warm, warm.make()).fit(reml=True)  # imports and first-call costs, untimed
    times, cpu, notes = [], [], set()
    for _ in range(runs):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            c0, t0 = time.process_time(), time.perf_counter()
            model = build(case, df)
            res = model.fit(reml=case.REML)
            times.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
        notes.update(f"{w.category.__name__}: {str(w.message).splitlines()[0]}" for w in caught)
    out = {
        "times": times,
        "cpu_times": cpu,
        "criterion": float(-2.0 * res.llf),
        "fixef": {k: float(v) for k, v in res.fe_params.items()},
        "sigma": float(np.sqrt(res.scale)),
        "converged": bool(res.converged),
        "warnings": sorted(notes),
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
