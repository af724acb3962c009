"""MarketPulse core engine: pure Python, no Streamlit, no concrete store backend.

Packages in dependency order: each may import the ones above it, never one below
(tests/unit/test_layers.py checks it):

    (base)       errors, config, schema, access, audit, claims, settings_docs, clock (the one
                 "now"), catalog (every stored key: owner, state/derived/secret)
    ingest/      file bytes → canonical frame + validation report
    rules/       condition model, exclusion rules, presets
    runs/        ranking, pipeline (atomic publish), run records, published colors, exports
    reads/       search, security page, dashboard, history, saved searches, compaction
    identity/    users, passwords, login sessions, cookie key, column profiles
    alerts/      email, templates, in-app bell, webhooks, watchlists
    intake/      upload buffer, inbox folders, SQL source
    manual/      Manual Color sessions and their actions
    automation/  jobs, schedules and their slots, job runs, scheduler sidecar, leases, upkeep
                 (dead-run sweep, workbooks, compaction)
    compliance/  revert, access log, audit trail, store copy, backups and restore
    cli/         `python -m core ...` subcommands, demo data

`python -m core` (core/__main__.py) and `python -m core.scheduler` (core/scheduler.py) are the
composition roots of the CLI and the scheduler; the app's is pages/_ui/services.py. Inside a
package modules may share helpers; across packages only public names are imported.

Below core, storage: the Store (documents, tables, blobs) and the run-table port
(storage/run_tables.py), through which core appends, reads and removes runs' rows in domain terms
(runs, CUSIPs, message ids, columns); the layout behind it is the backend's."""

__version__ = "0.1.0"  # = pyproject.toml's version; written into every backup's manifest
