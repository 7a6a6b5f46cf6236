"""Fit one benchmark case with mmbook (run as a subprocess).

``python -m bench.mm_fit CASE RUNS`` regenerates the case's data, fits it
``RUNS`` times with ``mmbook.lmer(formula, df)`` (``mmbook.glmer(formula, df, family)`` for the
GLMM cases; its criterion is the Laplace deviance) and prints one JSON object.

Timing: wall clock (``time.perf_counter``; CPU time, ``time.process_time``,
is kept too) around ``mmbook.lmer`` only, from
the DataFrame with string labels to the finished fit (formula parsing, model
frame, factorising the labels, design, optimisation, the fit object). One
untimed fit of sleepstudy first, so imports are not timed.

Peak memory: the first timed fit is also the memory measurement. After the
data frame is built and garbage is collected, the kernel's resident-set
high-water mark is reset (``echo 5 > /proc/self/clear_refs``, Linux >= 4.0),
the current resident set is taken as the baseline, and the peak is
``resource.getrusage(RUSAGE_SELF).ru_maxrss`` after the fit minus that
baseline: the most extra memory the fit held at any moment, whatever
allocated it (numpy, pandas, BLAS, Python objects). Without the reset, the
temporaries of the data generator would set the high-water mark; where the
reset is not available this is reported (``memory_method``).
"""

from __future__ import annotations

import gc
import json
import resource
import sys
import time
import warnings

KIB = 1024


def rss_bytes() -> int:
    """Current resident set size of this process (``VmRSS``)."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * KIB
    raise RuntimeError("VmRSS not found in /proc/self/status")


def reset_peak() -> bool:
    """Reset the resident-set high-water mark; False if the kernel refuses."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def peak_bytes() -> int:
    """Resident-set high-water mark (``ru_maxrss`` is in KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * KIB


def summary(fit) -> dict:
    """The numbers compared across tools."""
    fixef = fit.fixef
    return {
        "criterion": float(fit.objective),
        "fixef": {str(k): float(v) for k, v in dict(fixef).items()},
        "theta": [float(t) for t in list(fit.theta)],
        "sigma": float(fit.sigma),
    }


def main(argv=None):
    import mmbook

    from bench.datasets import CASES

    argv = sys.argv[1:] if argv is None else argv
    name, runs = argv[0], int(argv[1])
    case = CASES[name]

    warm = CASES["sleepstudy"]
    mmbook.lmer(warm.formula, warm.make())  # imports and first-call costs, untimed
    if case.family != "gaussian":
        mmbook.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)", mmbook.load_cbpp(),
                     family="binomial")

    rss_before = rss_bytes()
    df = case.make()
    gc.collect()
    df_rss = rss_bytes() - rss_before
    df_deep = int(df.memory_usage(deep=True).sum())

    times, cpu, notes = [], [], set()
    for run in range(runs):
        gc.collect()
        if run == 0:
            was_reset = reset_peak()
            baseline = rss_bytes()
            peak_before = peak_bytes()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            c0, t0 = time.process_time(), time.perf_counter()
            fit = (mmbook.lmer(case.formula, df) if case.family == "gaussian"
                   else mmbook.glmer(case.formula, df, family=case.family))
            times.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
        if run == 0:
            peak_after = peak_bytes()
            result = summary(fit)
        notes.update(f"{w.category.__name__}: {str(w.message).splitlines()[0]}" for w in caught)
        del fit

    out = {
        "times": times,
        "cpu_times": cpu,
        **result,
        "warnings": sorted(notes),
        "df_deep_bytes": df_deep,
        "df_rss_bytes": df_rss,
        "baseline_rss_bytes": baseline,
        "peak_rss_bytes": peak_after,
        # RSS counters are synchronised lazily (in steps of a few hundred KiB),
        # so a fit that allocates almost nothing can read slightly negative.
        "fit_peak_bytes": max(0, peak_after - baseline),
        "memory_method": (
            "ru_maxrss after the fit minus VmRSS before it, high-water mark reset "
            "via /proc/self/clear_refs after the data frame was built"
            if was_reset else
            "ru_maxrss after the fit minus VmRSS before it (high-water mark NOT reset: "
            f"it was {peak_before} bytes before the fit, so small peaks are hidden)"
        ),
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
