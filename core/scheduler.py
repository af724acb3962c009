"""`python -m core.scheduler`: the command that starts the scheduler sidecar
(core.automation.scheduler), kept short and stable for deployments and `make run`."""

from __future__ import annotations

import sys

from core.automation.scheduler import main

if __name__ == "__main__":
    sys.exit(main())
