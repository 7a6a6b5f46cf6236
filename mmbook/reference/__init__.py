"""R's results that the book compares with, shipped inside the package.

The chapters print mmbook's numbers next to the numbers R computed for the
same models and simulations; those are kept here (not in ``tests/``) so that
a chapter downloaded from the book finds them wherever mmbook is installed.
Each file was written by an R script in ``tests/data/`` of the repository:

* ``seed_sims.json`` - the reference document's two simulations run in
  R 4.2.2 (lme4 1.1-31, MASS 7.3-58.2): first rows of the data, draws, fits;
* ``sim_ri.csv``, ``sim_ris.csv`` - the two simulated data sets as R made them;
* ``lme4_applied.json`` - lme4 1.1-31 on sleepstudy for the applied example
  (``make_lme4_applied.R``);
* ``lme4_cbpp.json`` - lme4 1.1-31's glmer fits of cbpp for the GLMM chapter
  (``make_lme4_glmer.R``);
* ``document_y5.json`` - R's ``MASS::mvrnorm`` draw of the document's fifth
  response (``make_document_y5.R``);
* ``mgcv_smooths.json``, ``gam1.csv`` - mgcv 1.8-41's cubic regression spline
  basis and its ``gam``/``gamm`` REML and ML fits of smooths, on mgcv's
  ``gamSim(1)`` example and sleepstudy (``make_mgcv.R``);
* ``nlme_corr.json``, ``corr_*.csv`` - nlme 3.1-162's ``lme`` and ``gls`` with
  AR(1) and compound-symmetry residual correlation on sleepstudy and
  simulated series (``make_nlme_corr.R``).
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

__all__ = ["folder", "path", "load_json"]


def folder() -> Path:
    """The folder holding the reference files."""
    return Path(str(resources.files(__name__)))


def path(name: str) -> Path:
    """The path of one reference file.

    Raises
    ------
    FileNotFoundError
        No such file; the message lists the files there are.
    """
    p = folder() / name
    if not p.is_file():
        have = sorted(f.name for f in folder().iterdir() if f.suffix in (".json", ".csv"))
        raise FileNotFoundError(f"no reference file {name!r}; there are: {', '.join(have)}")
    return p


def load_json(name: str) -> dict:
    """A JSON reference file, parsed."""
    return json.loads(path(name).read_text())
