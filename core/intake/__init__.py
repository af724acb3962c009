"""Where an automated run's files come from: the upload buffer, inbox folders and the SQL source."""
