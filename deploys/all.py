"""Converge every service in the order `unops deploy` uses: `pyinfra INVENTORY deploys/all.py`.

The order is defined once, in unops/services.py; services without a deploy file are skipped.
"""

from pyinfra import local

from unops.services import deploy_files

for _deploy in deploy_files():
    local.include(str(_deploy))
