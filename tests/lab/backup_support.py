"""What the backup lab tests share: running the backup deploy on chosen lab hosts."""

from __future__ import annotations

from unops import PROJECT_ROOT
from unops.deploying import DeployResult, run_deploy

BACKUP_DEPLOY = PROJECT_ROOT / "deploys" / "backup.py"


def deploy_backup(hosts: list[str]) -> DeployResult:
    """Run the backup deploy on `hosts`; a failure names each failed operation and its error."""
    result = run_deploy("lab", [BACKUP_DEPLOY], limit=hosts)
    failed = {
        name: host.error or [f"{op.name}: {op.error}" for op in host.operations if not op.success]
        for name, host in result.hosts.items()
        if not host.ok
    }
    assert not failed, f"the backup deploy failed: {failed}"
    return result
