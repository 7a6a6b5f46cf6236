"""Write the configuration of the published book: _config.yml plus the repository and launch buttons.

The repository's address is not known inside the repository; the deploy
workflow knows it (``GITHUB_REPOSITORY``) and passes it as
``MMBOOK_REPOSITORY=owner/name``. Without it the book is built from
``_config.yml`` alone, with no buttons.

Usage: ``python tools/book_config.py owner/name > _config.deploy.yml``
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def deploy_config(repository: str, branch: str = "notebooks") -> dict:
    """_config.yml plus the repository and launch buttons.

    Launch buttons open the chapters from ``branch``: the deploy workflow
    publishes there the chapters whose install cell names this repository.
    """
    if not re.fullmatch(r"[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+", repository):
        raise SystemExit(f"MMBOOK_REPOSITORY must look like owner/name, got {repository!r}")
    cfg = yaml.safe_load((ROOT / "_config.yml").read_text())
    cfg["repository"] = {"url": f"https://github.com/{repository}", "path_to_book": "", "branch": branch}
    cfg["launch_buttons"] = {"notebook_interface": "classic", "binderhub_url": "https://mybinder.org",
                             "colab_url": "https://colab.research.google.com", "thebe": False}
    cfg.setdefault("html", {}).update({"use_repository_button": True, "use_issues_button": True,
                                       "use_edit_page_button": False})
    return cfg


if __name__ == "__main__":
    if len(sys.argv) not in (2, 3):
        raise SystemExit(__doc__)
    sys.stdout.write(yaml.safe_dump(deploy_config(*sys.argv[1:]), sort_keys=False))
