"""`unops exporter`: the commands live with the exporter, which runs on hosts without the CLI."""

from unops.exporter.cli import command

__all__ = ["command"]
