"""The directory: OpenLDAP slapd, the provider on the directory host, a replica on each mail server.

Run it with `unops deploy directory` or `pyinfra -y inventory/lab.py deploys/directory.py`.
slapd's whole cn=config is generated (templates/slapd/etc/ldap/unops/config.ldif.j2, values from
`unops.directory.slapd`) and loaded into a fresh /etc/ldap/slapd.d, checked with slaptest, only
when it differs from the configuration last applied: a second run changes nothing. The layout
and the bind accounts are docs/directory.md.
"""

from __future__ import annotations

import hashlib
import importlib
import shlex
from io import StringIO
from pathlib import Path

import jinja2
from pyinfra import host
from pyinfra.facts.files import Sha256File
from pyinfra.operations import apt, files, server, systemd
from pyinfra.operations.util import any_changed

from unops import PROJECT_ROOT
from unops.directory import ADMIN_ACCOUNT, SERVICE_ACCOUNTS, base_dn, secret_name
from unops.directory.office import office_entries
from unops.directory.slapd import (
    TlsFiles,
    admin_peers,
    apply_config_script,
    config_values,
    tree_entries,
    wait_for_slapd,
)
from unops.errors import DeployError
from unops.estate import load_estate
from unops.lab import paths
from unops.secrets import password

TEMPLATES = PROJECT_ROOT / "deploys" / "templates" / "slapd"

# Deploy defaults.
# slapd_packages: the server and the command-line tools the deploy drives it with.
slapd_packages = ["slapd", "ldap-utils"]
# slapd_services: where slapd listens (StartTLS on 389, LDAPS on 636, the local socket).
slapd_services = "ldap:/// ldaps:/// ldapi:///"
# slapd_tls_dir: the CA, the host's certificate and its key (the key readable by slapd only).
slapd_tls_dir = "/etc/ldap/tls"
# slapd_unops_dir: the generated configuration and entries, and what was last applied (0700).
slapd_unops_dir = "/etc/ldap/unops"
# slapd_apt_lock_wait_s: seconds apt waits for dpkg's lock held by another deploy on the host.
slapd_apt_lock_wait_s = 300
# slapd_ldapi: the local socket the deploy manages slapd through, as root (SASL EXTERNAL).
slapd_ldapi = "ldapi:///"

fleet = str(host.data.fleet)
roles = list(host.data.get("roles", []))
estate = load_estate()
base = base_dn(estate.zone)
fqdn = str(host.data.fqdn)
is_provider = "directory" in roles
is_replica = "mail" in roles and not is_provider

_jinja = jinja2.Environment(
    loader=jinja2.FileSystemLoader(str(TEMPLATES)),
    undefined=jinja2.StrictUndefined,
    keep_trailing_newline=True,
    autoescape=False,
)


def render(path: str, **values: object) -> str:
    """templates/slapd/<path>.j2, rendered here so that the deploy knows its digest."""
    return _jinja.get_template(f"{path.lstrip('/')}.j2").render(**values)


def tls_sources() -> tuple[Path, Path, Path]:
    """(certificate, key, CA) on the control machine for this host."""
    if fleet == "lab":
        # Imported late: the lab CA exists only on a lab control machine. The names match those
        # the mail deploy asks for, so that both reuse one certificate.
        ca = importlib.import_module("unops.lab.ca")
        cert, key = ca.host_certificate(fqdn, [fqdn])
        return Path(cert), Path(key), paths.CA_CERT
    folder = paths.SECRETS_DIR / "production" / "tls"
    chosen = (folder / f"{fqdn}.crt", folder / f"{fqdn}.key", folder / "ca.crt")
    for path in chosen:
        if not path.is_file():
            raise DeployError(
                f"{host.name}: TLS file {path} is missing; production certificates are kept as "
                f"{folder}/<fqdn>.crt, <fqdn>.key and ca.crt"
            )
    return chosen


if is_provider or is_replica:
    # --- Packages: slapd told beforehand to leave its configuration to us ----------------------
    files.directory(name="Create /var/lib/unops", path="/var/lib/unops", mode="700")
    preseed = files.put(
        name="Install /var/lib/unops/slapd.debconf",
        src=StringIO(render("/var/lib/unops/slapd.debconf")),
        dest="/var/lib/unops/slapd.debconf",
        mode="600",
    )
    server.shell(
        name="Load the slapd debconf answers",
        commands=["debconf-set-selections /var/lib/unops/slapd.debconf"],
        _if=preseed.did_change,
    )
    apt.packages(
        name="Install slapd and ldap-utils",
        packages=slapd_packages,
        no_recommends=True,
        update=True,
        cache_time=24 * 3600,
        # Another deploy on the same host may hold dpkg's lock for a while: wait for it.
        extra_install_args=f"-o DPkg::Lock::Timeout={slapd_apt_lock_wait_s}",
    )

    # --- TLS: the host's certificate, its key (slapd only) and the CA -------------------------
    cert_src, key_src, ca_src = tls_sources()
    tls = TlsFiles(
        ca=f"{slapd_tls_dir}/ca.crt",
        cert=f"{slapd_tls_dir}/{fqdn}.crt",
        key=f"{slapd_tls_dir}/{fqdn}.key",
    )
    files.directory(name=f"Create {slapd_tls_dir}", path=slapd_tls_dir, mode="755")
    tls_ops = [
        files.put(name=f"Install {tls.ca}", src=str(ca_src), dest=tls.ca, mode="644"),
        files.put(name=f"Install {tls.cert}", src=str(cert_src), dest=tls.cert, mode="644"),
        files.put(
            name=f"Install {tls.key}",
            src=str(key_src),
            dest=tls.key,
            user="root",
            group="openldap",
            mode="640",
        ),
    ]

    # --- Files around slapd --------------------------------------------------------------------
    defaults = files.put(
        name="Configure /etc/default/slapd",
        src=StringIO(render("/etc/default/slapd", services=slapd_services)),
        dest="/etc/default/slapd",
        mode="644",
    )
    files.put(
        name="Configure /etc/ldap/ldap.conf",
        src=StringIO(
            render("/etc/ldap/ldap.conf", base=base, uri=f"ldap://{fqdn}", ca_file=tls.ca)
        ),
        dest="/etc/ldap/ldap.conf",
        mode="644",
    )
    files.put(
        name="Install /usr/local/sbin/unops-ldap-ensure",
        src=StringIO(render("/usr/local/sbin/unops-ldap-ensure", uri=shlex.quote(slapd_ldapi))),
        dest="/usr/local/sbin/unops-ldap-ensure",
        mode="755",
    )
    files.directory(name=f"Create {slapd_unops_dir}", path=slapd_unops_dir, mode="700")

    # --- cn=config: generated, applied only when it differs from what was applied -------------
    # The admin writes only from the control machine: the lab's bridge, or production's
    # management network.
    control = (
        estate.site.lab.bridge_address
        if fleet == "lab"
        else estate.site.production.management_network
    )
    peers = admin_peers([control])
    if is_provider:
        values = config_values(base=base, tls=tls, peers=peers)
    else:
        provider = estate.hosts_with_role("directory")[0]
        values = config_values(
            base=base,
            tls=tls,
            peers=peers,
            provider_url=f"ldap://{estate.fqdn(provider.name)}",
            replicator_password=password(fleet, secret_name("replicator")),
        )
    config_text = render("/etc/ldap/unops/config.ldif", **values)
    config_ldif = f"{slapd_unops_dir}/config.ldif"
    config_applied = f"{slapd_unops_dir}/config.applied.ldif"
    files.put(
        name=f"Configure {config_ldif}",
        src=StringIO(config_text),
        dest=config_ldif,
        mode="600",
    )
    applied_digest = host.get_fact(Sha256File, path=config_applied)
    config_pending = applied_digest != hashlib.sha256(config_text.encode()).hexdigest()
    if config_pending:
        # The apply restarts slapd itself, so the restart below is not needed as well.
        server.shell(
            name="Load /etc/ldap/slapd.d from config.ldif (slaptest before the restart)",
            commands=[apply_config_script(config_ldif, config_applied)],
        )
    else:
        systemd.service(
            name="Restart slapd.service",
            service="slapd.service",
            restarted=True,
            _if=any_changed(defaults, *tls_ops),
        )
    # NB: slapd.service is generated from /etc/init.d/slapd, which the package enables itself;
    # `systemctl is-enabled` answers "generated" for it, so enabled=True would change every run.
    systemd.service(name="Start slapd.service", service="slapd.service", running=True)

    # --- The tree, the bind accounts, the office mailboxes (provider only; replicas copy them)
    if is_provider:
        entries = tree_entries(
            base,
            {name: password(fleet, secret_name(name)) for name in SERVICE_ACCOUNTS},
            admin_password=password(fleet, secret_name(ADMIN_ACCOUNT)),
        )
        # The service desk's and on-call's mailboxes (unops.directory.office).
        entries += office_entries(estate, fleet)
        entries_dir = f"{slapd_unops_dir}/entries"
        files.directory(name=f"Create {entries_dir}", path=entries_dir, mode="700")
        commands = [wait_for_slapd(slapd_ldapi)]
        for entry in entries:
            add = f"{entries_dir}/{entry.name}.add.ldif"
            files.put(name=f"Configure {add}", src=StringIO(entry.add), dest=add, mode="600")
            args = [add]
            if entry.modify is not None:
                modify = f"{entries_dir}/{entry.name}.modify.ldif"
                files.put(
                    name=f"Configure {modify}", src=StringIO(entry.modify), dest=modify, mode="600"
                )
                args.append(modify)
            commands.append(shlex.join(["/usr/local/sbin/unops-ldap-ensure", *args]))
        all_text = "\n".join(entry.add for entry in entries)
        all_ldif = f"{slapd_unops_dir}/entries.ldif"
        entries_applied = f"{slapd_unops_dir}/entries.applied.ldif"
        files.put(name=f"Configure {all_ldif}", src=StringIO(all_text), dest=all_ldif, mode="600")
        commands.append(shlex.join(["cp", all_ldif, entries_applied]))
        if (
            host.get_fact(Sha256File, path=entries_applied)
            != hashlib.sha256(all_text.encode()).hexdigest()
        ):
            server.shell(
                name=f"Add or update the base entries, bind accounts, office mailboxes of {base}",
                commands=commands,
            )
