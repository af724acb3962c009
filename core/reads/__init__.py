"""What analysts read: search (search, search_sql, identifiers), the security page, the dashboard,
history, saved searches, and the compacted copy that keeps lookups fast (compaction)."""
