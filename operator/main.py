"""Operator image entry: run mimical's kopf operator for one namespace.

    python operator/main.py        # settings from MIMICAL_* env (see operator/README.md)

A script, not a package: a package named `operator` would shadow the standard library.
"""

import logging
import sys

from mimical.config import Settings
from mimical.errors import MimicalError
from mimical.kube.operator import run_operator

if __name__ == "__main__":
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        run_operator(Settings.from_env())
    except MimicalError as error:
        print(f"mimical operator: error: {error}", file=sys.stderr)
        sys.exit(2)
