"""`python -m core.scheduler`: the command that starts the scheduler sidecar
(core.automation.scheduler), kept short and stable for deployments and `make run`. As the
composition root it adds the steps of packages below automation: scheduled backups and the
scheduled compliance report."""

from __future__ import annotations

import sys

from core.automation.scheduler import main
from core.compliance.backup_schedule import scheduled_backup
from core.compliance.report_schedule import scheduled_report

if __name__ == "__main__":
    sys.exit(main(upkeep=[scheduled_backup, scheduled_report]))
