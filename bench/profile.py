"""Profile one mmbook fit of a benchmark case with cProfile.

``python -m bench.profile CASE [CASE ...] [--top N]`` fits each case once
(after an untimed warm-up fit of sleepstudy), and prints the functions with
the most own time and the most cumulative time; the report is also written to
``bench/results/profile_<case>.txt``. Not part of ``make bench``.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import time
from pathlib import Path

from bench.datasets import CASES

RESULTS = Path(__file__).resolve().parent / "results"


def profile(name: str, top: int) -> str:
    import mmbook

    case = CASES[name]
    warm = CASES["sleepstudy"]
    mmbook.lmer(warm.formula, warm.make())
    df = case.make()
    prof = cProfile.Profile()
    t0 = time.perf_counter()
    prof.enable()
    mmbook.lmer(case.formula, df)
    prof.disable()
    wall = time.perf_counter() - t0
    buf = io.StringIO()
    from bench.run import mmbook_commit

    buf.write(f"# {name}: {case.formula}, {case.rows:,} rows; one fit, {wall:.3f} s under cProfile; "
              f"mmbook at {mmbook_commit()}\n")
    for key in ("tottime", "cumulative"):
        buf.write(f"\n## sorted by {key}\n")
        stats = pstats.Stats(prof, stream=buf)
        stats.strip_dirs().sort_stats(key).print_stats(top)
    return buf.getvalue()


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__.splitlines()[0])
    p.add_argument("cases", nargs="+", choices=list(CASES))
    p.add_argument("--top", type=int, default=25)
    args = p.parse_args(argv)
    from threadpoolctl import threadpool_limits

    # One BLAS thread, as under `make bench` (numpy is already loaded: limit it at run time).
    threads = int(os.environ.get("OPENBLAS_NUM_THREADS", "1"))
    RESULTS.mkdir(exist_ok=True)
    for name in args.cases:
        with threadpool_limits(limits=threads):
            report = profile(name, args.top)
        (RESULTS / f"profile_{name}.txt").write_text(report)
        print(report)


if __name__ == "__main__":
    main()
