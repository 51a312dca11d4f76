"""`python -m services.registry`: see services/registry/process.py."""

from __future__ import annotations

import os
import shutil
import tempfile


def main() -> None:
    # The HTTP processes must count metrics in one shared folder, and prometheus_client reads
    # PROMETHEUS_MULTIPROC_DIR when it is imported: set it before the registry is imported.
    own_folder = None
    if "PROMETHEUS_MULTIPROC_DIR" not in os.environ:
        own_folder = tempfile.mkdtemp(prefix="quayside-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = own_folder
    try:
        from services.registry import process

        process.main()
    finally:
        if own_folder:
            shutil.rmtree(own_folder, ignore_errors=True)


if __name__ == "__main__":
    main()
