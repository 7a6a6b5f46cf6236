"""Make the book's kernel quiet: log kernel-level messages from ERROR up only.

ipykernel 7 warns at every start that it runs over local TCP without
encryption; building the book starts a kernel per chapter, and the warning
buried the build's own output. Python warnings (``warnings.warn``) and
errors are not affected: they reach the notebook as before.

Usage: ``python tools/quiet_kernel.py .venv/share/jupyter/kernels/python3/kernel.json``
"""

import json
import sys
from pathlib import Path

FLAG = "--IPKernelApp.log_level=ERROR"

if __name__ == "__main__":
    path = Path(sys.argv[1])
    spec = json.loads(path.read_text())
    if FLAG not in spec["argv"]:
        spec["argv"].append(FLAG)
        path.write_text(json.dumps(spec, indent=1) + "\n")
