"""Converge every service in the order `unops deploy` uses: `pyinfra INVENTORY deploys/all.py`.

The order and each service's groups are defined once, in unops/services.py; services without a
deploy file are skipped, and a service is included only on the hosts of its groups.
"""

from pyinfra import host, local

from unops.services import deploy_files, targets

for _deploy in deploy_files():
    _groups = targets(_deploy)
    if _groups is None or set(host.groups) & set(_groups):
        local.include(str(_deploy))
