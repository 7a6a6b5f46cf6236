"""Benchmark: the Satterthwaite coefficient table on a large random-slope model.

``python -m bench.ddf`` (``make bench`` runs it after ``bench.run``). On the
``slopes_100k`` data of :mod:`bench.datasets` (100,000 rows, 2,000 groups,
``y ~ x + (x | g)``):

- mmbook: ``mmbook.inference.coef_table(fit, ddf="Satterthwaite")`` on a
  fitted model, timed from the fit object to the table (the numerical
  Hessian of the deviance and Jacobian of ``vcov(beta)``, then the t tests);
  each run on a fresh copy of the fit, so nothing is cached between runs;
- lmerTest (if R and lmerTest are installed): ``as_lmerModLmerTest(fit)``
  followed by ``summary(m)$coefficients`` on lme4's fit of the same data,
  timed the same way (``bench/lmertest_ddf.R``).

The fits themselves are not timed (``bench.run`` times them). Both run in
subprocesses with one BLAS thread, one after the other. Result:
``bench/results/ddf.json`` (times, the two tables, machine load).
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from bench.run import RESULTS, ROOT, last_json, loadavg, mmbook_commit, run_child, write_for_r

CASE = "slopes_100k"
RUNS = 5


def child(runs: int) -> None:
    """In the subprocess: fit once, then time the Satterthwaite table ``runs`` times."""
    import mmbook
    from mmbook.inference import coef_table

    from bench.datasets import CASES

    case = CASES[CASE]
    df = case.make()
    fit = mmbook.lmer(case.formula, df)
    coef_table(mmbook.lmer("Reaction ~ Days + (Days | Subject)", mmbook.load_sleepstudy()))  # warm-up
    times, cpu = [], []
    for _ in range(runs):
        fresh = replace(fit)  # a new fit object: no cached derivatives
        c0, t0 = time.process_time(), time.perf_counter()
        tab = coef_table(fresh, ddf="Satterthwaite")
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    print(json.dumps({"times": times, "cpu_times": cpu, "table": tab.to_dict(orient="index"),
                      "theta": [float(t) for t in fit.theta], "criterion": float(fit.objective)}))


def run_lmertest(timeout: float) -> dict:
    from bench.datasets import CASES

    case = CASES[CASE]
    with tempfile.TemporaryDirectory(prefix="mmbook-bench-ddf-") as tmp:
        write_for_r(case.make(), Path(tmp))
        rc, out, err, peak, wall = run_child(["Rscript", str(ROOT / "bench" / "lmertest_ddf.R"), tmp,
                                              case.formula, str(RUNS)], timeout)
    if rc != 0:
        return {"status": f"failed (exit {rc}): {err.strip()[-300:]}"}
    res = last_json(out)
    res.update(status="ok", time=statistics.median(res["times"]))
    return res


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(int(sys.argv[2]))
        return
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS"):
        os.environ.setdefault(var, "1")
    load0 = loadavg()
    rc, out, err, peak, wall = run_child([sys.executable, "-m", "bench.ddf", "--child", str(RUNS)], 3600)
    if rc != 0:
        mm = {"status": f"failed (exit {rc}): {err.strip()[-300:]}"}
    else:
        mm = last_json(out)
        mm.update(status="ok", time=statistics.median(mm["times"]))
    r = run_lmertest(3600)
    load1 = loadavg()
    print(f"Satterthwaite table, {CASE} (100,000 rows, 2,000 groups, y ~ x + (x | g)), median of {RUNS}:")
    for name, res in (("mmbook coef_table", mm), ("lmerTest as_lmerModLmerTest + summary", r)):
        if res.get("status") == "ok":
            print(f"  {name}: {res['time']:.2f} s (CPU {statistics.median(res['cpu_times']):.2f} s)")
        else:
            print(f"  {name}: {res.get('status')}")
    if mm.get("status") == "ok" and r.get("status") == "ok":
        print(f"  lmerTest / mmbook: {r['time'] / mm['time']:.1f}")
        for term, row in mm["table"].items():
            print(f"  df of {term}: mmbook {row['df']:.3f}, lmerTest {r['df'][term]:.3f}")
    if max(load0, load1) > 1.5:
        print(f"  note: load average up to {max(load0, load1):.1f}: times may be inflated")
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / "ddf.json"
    path.write_text(json.dumps({"case": CASE, "mmbook_commit": mmbook_commit(), "loadavg": [load0, load1],
                                "mmbook": mm, "lmerTest": r}, indent=1) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
