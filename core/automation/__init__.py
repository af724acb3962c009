"""Jobs, their schedules, triggers and runs (jobs, schedules, job_runs), the scheduler
sidecar and its lease (scheduler, leases), and sweeping runs whose process died (sweep)."""
