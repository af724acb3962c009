"""One run from batch to published: ranking, the pipeline (atomic publish), run records, liveness of
running runs, colors already published (duplicates), the published-colors view readers and the
pipeline share (published), and exports (xlsx/csv/parquet)."""
