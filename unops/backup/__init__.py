"""Backups: the records every run leaves on its host, and the clients that read and act on them."""
