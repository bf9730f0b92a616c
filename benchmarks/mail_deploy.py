"""Time the mail deploy on the lab's four mail servers: cold, then with nothing to change.

    .venv/bin/python benchmarks/mail_deploy.py            # nothing to change (run it twice)
    .venv/bin/python benchmarks/mail_deploy.py --cold     # purge the mail packages first

"Cold" purges Postfix, Dovecot, rspamd and ClamAV and their configuration on every mail server,
so the deploy installs and configures everything again; the lab's shared package cache stays
warm, so no .deb is downloaded again (a first run on a new lab downloads them too). The directory
replica on each server is left alone. Prints one line per run: seconds, changes, failures.
"""

from __future__ import annotations

import argparse
import json
import time

from unops import PROJECT_ROOT
from unops.deploying import run_deploy
from unops.remote import run

SERVERS = ["mail1", "mail2", "mail3", "mail4"]
PACKAGES = (
    "postfix postfix-ldap dovecot-core dovecot-imapd dovecot-lmtpd dovecot-ldap "
    "rspamd clamav-daemon clamav clamav-freshclam clamav-base"
)
PURGE = (
    f"DEBIAN_FRONTEND=noninteractive apt-get purge -y -qq {PACKAGES} >/dev/null && "
    "rm -rf /etc/postfix /etc/dovecot /etc/rspamd /var/lib/rspamd /etc/ssl/unops-mail "
    "/etc/systemd/system/clamav-daemon.service.d /var/lib/clamav/unops-lab.hdb"
)


def timed_deploy(label: str) -> dict[str, object]:
    start = time.monotonic()
    result = run_deploy("lab", [PROJECT_ROOT / "deploys" / "mail.py"], limit=["mail"])
    seconds = round(time.monotonic() - start, 1)
    figures = {
        "run": label,
        "seconds": seconds,
        "hosts": len(result.hosts),
        "changed": result.changed,
        "failed_hosts": result.failed_hosts,
    }
    print(json.dumps(figures))
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--cold", action="store_true", help="Purge the mail packages first (keeps the .deb cache)."
    )
    args = parser.parse_args()
    if args.cold:
        for server in SERVERS:
            run(server, PURGE, fleet="lab", check=True, timeout=600)
        timed_deploy("cold")
    timed_deploy("nothing to change")


if __name__ == "__main__":
    main()
