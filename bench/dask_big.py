"""Past one machine's memory: ``mmbook.lmer`` on a Dask DataFrame read from Parquet.

``python -m bench.dask_big [--rows 10M,30M,100M] [--dir /path] [--keep] [--check-pandas 10M]``

For each size, in a fresh subprocess:

1. writes the data set in chunks of 5 million rows (one Parquet file each) to a temporary
   directory: ``y ~ x + (x | g)`` with one grouping factor of 1,000,000 levels (integer ids,
   drawn at random for every row, so each partition touches almost every level), random
   intercepts and slopes (SDs 1.0 and 0.7, correlation 0.3), residual SD 1.0, ``x ~ N(1, 1)``;
2. fits ``mmbook.lmer("y ~ x + (x | g)", dask.dataframe.read_parquet(dir))`` with Dask's default
   (threaded) scheduler, timing the whole call (both passes over the files and the fit);
3. reports the wall time, the process's peak resident memory (``ru_maxrss`` of the child, which
   holds Dask's worker threads too), the criterion and the estimates;

and deletes the files (``--keep`` keeps them). With ``--check-pandas SIZE`` the same rows are
also read into pandas and fitted in memory (in another subprocess, so the peak memory of each is
its own), and the two criteria are compared. Results go to
``bench/results/dask_big.json``. Not part of ``make bench`` (it needs ~2 GB of disk per 100M rows
and several minutes).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from bench.run import run_child

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
N_GROUPS = 1_000_000
CHUNK = 5_000_000
FORMULA = "y ~ x + (x | g)"


def write_data(directory: Path, n_rows: int, seed: int = 17) -> float:
    """Write ``n_rows`` rows as Parquet files of ``CHUNK`` rows; returns the bytes written."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(seed)
    sd = np.array([1.0, 0.7])
    psi = np.array([[1.0, 0.3], [0.3, 1.0]]) * np.outer(sd, sd)
    gamma = rng.multivariate_normal(np.zeros(2), psi, size=N_GROUPS)
    directory.mkdir(parents=True, exist_ok=True)
    done, part = 0, 0
    while done < n_rows:
        m = min(CHUNK, n_rows - done)
        g = rng.integers(0, N_GROUPS, m).astype(np.int32)
        if done == 0:  # every level occurs
            g[:N_GROUPS] = np.arange(N_GROUPS, dtype=np.int32)
        x = rng.normal(1.0, 1.0, m)
        y = 10.0 + 2.0 * x + gamma[g, 0] + gamma[g, 1] * x + rng.normal(0.0, 1.0, m)
        pq.write_table(pa.table({"y": y, "x": x, "g": g}), directory / f"part-{part:04d}.parquet")
        done += m
        part += 1
    return float(sum(f.stat().st_size for f in directory.glob("*.parquet")))


def fit_child(directory: str, pandas: bool) -> None:
    """Run in a subprocess: fit from Parquet with Dask (or, with ``pandas``, read it all into pandas and
    fit in memory) and print one JSON line."""
    import warnings

    import dask
    import dask.dataframe as dd

    import mmbook

    warnings.simplefilter("ignore")
    mmbook.lmer("Reaction ~ Days + (Days | Subject)", mmbook.load_sleepstudy())  # imports, untimed
    t0 = time.perf_counter()
    c0 = time.process_time()
    if pandas:
        import pandas as pd

        data = pd.read_parquet(directory)
        nparts = 1
    else:
        data = dd.read_parquet(directory)
        nparts = int(data.npartitions)
    fit = mmbook.lmer(FORMULA, data)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    out = {"wall_s": wall, "cpu_s": cpu, "criterion": float(fit.objective), "nobs": int(fit.nobs),
           "npartitions": nparts, "theta": [float(t) for t in fit.theta],
           "fixef": [float(b) for b in fit.fixef], "sigma": float(fit.sigma), "nfev": int(fit.opt.nfev),
           "scheduler": "pandas (in memory)" if pandas else str(dask.config.get("scheduler", "default (threads)")),
           "messages": [m for _, m in fit.messages], "timings": getattr(fit, "timings", {})}
    print(json.dumps(out))


def parse_size(s: str) -> int:
    s = s.strip().upper()
    mult = {"K": 1_000, "M": 1_000_000, "G": 1_000_000_000}.get(s[-1], 1)
    return int(float(s[:-1] if s[-1] in "KMG" else s) * mult)


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m bench.dask_big", description=__doc__.splitlines()[0])
    p.add_argument("--rows", default="10M,30M,100M")
    p.add_argument("--dir", default=None, help="where to write the Parquet files (default: a temporary directory)")
    p.add_argument("--keep", action="store_true")
    p.add_argument("--check-pandas", default="10M", help="sizes (comma-separated) also fitted with pandas")
    args = p.parse_args(argv)
    sizes = [parse_size(s) for s in args.rows.split(",")]
    check = {parse_size(s) for s in args.check_pandas.split(",") if s.strip()}
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / "dask_big.json"
    results = json.loads(path.read_text()) if path.exists() else {}
    for n in sizes:
        base = Path(args.dir) if args.dir else Path(tempfile.mkdtemp(prefix="mmbook-dask-"))
        directory = base / f"rows_{n}"
        t0 = time.perf_counter()
        nbytes = write_data(directory, n)
        gen = time.perf_counter() - t0
        load0 = os.getloadavg()[0]
        rc, out, err, peak, wall = run_child([sys.executable, "-m", "bench.dask_big", "--child", str(directory), "0"],
                                             4 * 3600)
        ref = None
        if n in check and rc == 0:
            rc2, out2, err2, peak2, _ = run_child([sys.executable, "-m", "bench.dask_big", "--child", str(directory),
                                                  "1"], 4 * 3600)
            if rc2 == 0:
                ref = json.loads([line for line in out2.splitlines() if line.startswith("{")][-1])
                ref["peak_rss_bytes"] = peak2
        load1 = os.getloadavg()[0]
        if not args.keep:
            shutil.rmtree(directory, ignore_errors=True)
            if not args.dir:
                shutil.rmtree(base, ignore_errors=True)
        if rc != 0:
            res = {"status": f"failed (exit {rc}): {err[-600:]}"}
        else:
            res = json.loads([line for line in out.splitlines() if line.startswith("{")][-1])
            res.update(status="ok", peak_rss_bytes=peak, parquet_bytes=nbytes, generate_s=gen,
                       loadavg=[load0, load1], rows=n)
            if ref is not None:
                res.update(pandas=ref, criterion_rel_diff=abs(ref["criterion"] - res["criterion"]) / abs(ref["criterion"]),
                           fixef_max_abs_diff=max(abs(a - b) for a, b in zip(ref["fixef"], res["fixef"])))
        results[str(n)] = res
        path.write_text(json.dumps(results, indent=1))
        print(f"{n:,} rows: " + (f"{res['wall_s']:.1f} s, peak {res['peak_rss_bytes'] / 2**30:.2f} GiB, "
                                 f"criterion {res['criterion']:.4f}" if res["status"] == "ok" else res["status"]),
              flush=True)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        fit_child(sys.argv[2], sys.argv[3] == "1")
    else:
        main()
