"""Manual Color sessions: one persisted working copy per user (sessions) and what a user does to it
(actions)."""
