"""The change log's revert (revert) and the access log (access_log)."""
