"""`python -m unops.exporter serve ...`: the exporter's commands without the rest of the CLI.

The monitoring host installs only what the exporter needs, not the deploy tooling that the full
`unops` command imports.
"""

import logging

from unops.exporter.cli import command

logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
# paramiko logs every connection at INFO; the exporter makes several each scrape.
logging.getLogger("paramiko").setLevel(logging.WARNING)
command(prog_name="python -m unops.exporter")
