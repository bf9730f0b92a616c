"""Data every host gets, whatever its role. Deploy defaults live in each deploy, not here."""

# Time zone of the office: timers (daily backups) and logs read in local time.
timezone = "America/New_York"
