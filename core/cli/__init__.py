"""`python -m core ...` subcommands (core/__main__.py dispatches here) and the demo data."""
