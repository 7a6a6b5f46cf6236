"""Shared test helpers."""

import json
from pathlib import Path

import pytest

DATA = Path(__file__).parent / "data"


def reference_path(name: str) -> Path:
    """A reference file from mmbook/reference (R's results the book prints), tests/data, or ../shared/reference."""
    for folder in (Path(__file__).parents[1] / "mmbook" / "reference", DATA,
                   Path(__file__).parents[2] / "shared" / "reference"):
        if (folder / name).exists():
            return folder / name
    pytest.fail(f"reference file {name} not found in mmbook/reference, tests/data or ../shared/reference")


@pytest.fixture(scope="module")
def seed_sims():
    """R 4.2.2's run of the reference document's simulations (seed_sims.json)."""
    return json.loads(reference_path("seed_sims.json").read_text())
