"""Telling people: email over SMTP (email) with templates, the in-app bell, webhooks, watchlists and
their emails."""
