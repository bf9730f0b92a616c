"""Monitoring: Prometheus, Alertmanager and the unops exporter on the monitoring host, and on the
other hosts what the exporter needs to read them.

Run it with `unops deploy monitoring` or `pyinfra -y inventory/lab.py deploys/monitoring.py`.
- monitoring host: prometheus and prometheus-alertmanager (Debian), their configuration generated
  from the estate and checked (`promtool check config`, `amtool check-config`) before a reload;
  the exporter installed from this checkout (a wheel and its pinned dependencies, no index) into
  a venv, run as its own user under systemd.
- access points: snmpd with one SNMPv3 user, authPriv with SHA-256 and AES; no community.
- backed-up hosts and mail servers: the forced command that answers the exporter's restricted
  SSH key (backup records, Postfix queue sizes) and that key for the unprivileged unops-monitor.
What is computed (configuration, keys, credentials) lives in unops.exporter.deployment.
"""

from __future__ import annotations

import hashlib
import shlex
import subprocess
import tempfile
from io import StringIO
from pathlib import Path

from pyinfra import host
from pyinfra.api import FactBase
from pyinfra.facts.files import File, Sha256File
from pyinfra.operations import apt, files, server, systemd
from pyinfra.operations.util import any_changed

from unops import PROJECT_ROOT
from unops.errors import DeployError
from unops.estate import load_estate
from unops.exporter import deployment
from unops.exporter.config import READER_USER, config_from_estate, probe_secret
from unops.inventory import PRODUCTION_KNOWN_HOSTS
from unops.lab import paths
from unops.secrets import secret_path

TEMPLATES = PROJECT_ROOT / "deploys" / "templates"
MONITORS = PROJECT_ROOT / "monitors"

# Deploy defaults.
# prometheus_packages: the server with promtool, and Alertmanager with amtool (Debian 12).
prometheus_packages = ["prometheus", "prometheus-alertmanager"]
# prometheus_scrape_interval / _timeout: how often the exporter is scraped, and how long a scrape
# may take; the exporter fits every probe inside the timeout Prometheus sends.
prometheus_scrape_interval = "15s"
prometheus_scrape_timeout = "10s"
# prometheus_retention: how long samples are kept on the monitoring host.
prometheus_retention = "30d"
# alertmanager_deadman_url: the dead-man's switch that expects the Watchdog alert every minute
# (production sets the real one; the lab's goes nowhere, which Alertmanager logs and survives).
alertmanager_deadman_url = "http://127.0.0.1:9095/watchdog"
# exporter_venv: where the exporter and its dependencies are installed on the monitoring host.
exporter_venv = "/opt/unops/venv"
exporter_wheels = "/opt/unops/wheels"
# exporter_etc: its configuration (targets), CA, pinned host keys and TLS files.
exporter_etc = "/etc/unops-exporter"
# exporter_tls: serve /metrics over HTTPS (the scrape verifies it against the CA).
exporter_tls = True
# snmpd_packages: the agent on the access points.
snmpd_packages = ["snmpd"]
# A stop and start in quick succession can fail in an nspawn container with status 219/CGROUP
# ("Failed to kill control group ... Input/output error") while the old cgroup is still being
# removed; seen in the lab. The restart is tried up to five times, a second apart.
SNMPD_RESTART = (
    "for try in 1 2 3 4 5; do systemctl restart snmpd.service && break; sleep 1; done; "
    "systemctl is-active --quiet snmpd.service"
)
MONITOR_READ = "/usr/local/lib/unops/monitor-read"
SNMP_MARKER = "/var/lib/unops/monitoring/snmp-user"
# What the exporter imports on the monitoring host: a change here rebuilds its wheel.
EXPORTER_SOURCES = (
    "unops/__init__.py",
    "unops/exporter",
    "unops/chain.py",
    "unops/errors.py",
    "unops/secrets.py",
    "unops/lab/__init__.py",
    "unops/lab/paths.py",
)
# A fixed build time keeps the wheel byte-identical while its sources do not change, so that
# a second deploy finds nothing to do.
WHEEL_EPOCH = "1764547200"

fleet = str(host.data.fleet)
estate = load_estate()
roles = set(host.data.roles)
monitoring_hosts = [h for h in estate.hosts_with_role("monitoring")]
if not monitoring_hosts:
    raise DeployError("no host has the role 'monitoring' in inventory/estate/hosts.toml")
monitor = monitoring_hosts[0]
monitor_address = str(monitor.lab_address if fleet == "lab" else monitor.address)
known_hosts_file = paths.KNOWN_HOSTS if fleet == "lab" else PRODUCTION_KNOWN_HOSTS


class TextFile(FactBase):
    """The first line of a file, or '' if it is missing."""

    def command(self, path: str) -> str:
        return f"cat {shlex.quote(path)} 2>/dev/null | head -n 1 || true"

    def process(self, output: list[str]) -> str:
        return output[0].strip() if output else ""


def template(dest: str, service: str, mode: str = "644", **data: object):
    """Render templates/<service><dest>.j2 to `dest` on the host."""
    return files.template(
        name=f"Configure {dest}",
        src=str(TEMPLATES / service / f"{dest.lstrip('/')}.j2"),
        dest=dest,
        user="root",
        group="root",
        mode=mode,
        **data,
    )


def keep_running(unit: str, restart_if: object = None, reload_if: object = None) -> None:
    """Restart `unit` when `restart_if` says so, reload it when `reload_if` does, and keep it
    enabled and running; each `_if` is what pyinfra takes (a callable asked at run time)."""
    if restart_if is not None:
        systemd.service(name=f"Restart {unit}", service=unit, restarted=True, _if=restart_if)
    if reload_if is not None:
        systemd.service(name=f"Reload {unit}", service=unit, reloaded=True, _if=reload_if)
    systemd.service(name=f"Enable and start {unit}", service=unit, running=True, enabled=True)


# --- Every host the exporter reads over SSH: an unprivileged account with the restricted key --
if roles & {"mail", "directory", "cms"}:
    _, public_key = deployment.records_key(fleet)
    # The exporter runs on the monitoring host; in the lab `unops exporter probe` also runs on
    # the control machine, behind the lab bridge.
    sources = [monitor_address]
    if fleet == "lab":
        sources.append(str(estate.site.lab.bridge_address))
    reader_home = f"/var/lib/{READER_USER}"
    files.directory(name="Create /usr/local/lib/unops", path="/usr/local/lib/unops", mode="755")
    files.put(
        name=f"Install {MONITOR_READ}",
        src=str(TEMPLATES / "unops-exporter" / MONITOR_READ.lstrip("/")),
        dest=MONITOR_READ,
        user="root",
        group="root",
        mode="755",
    )
    # Its group reads the backup records (deploys/backup.py); a shell runs the forced command.
    server.group(name=f"Create the group {READER_USER}", group=READER_USER, system=True)
    server.user(
        name=f"Create the user {READER_USER}",
        user=READER_USER,
        group=READER_USER,
        home=reader_home,
        shell="/bin/sh",
        system=True,
        ensure_home=False,
    )
    files.directory(
        name=f"Create {reader_home}", path=reader_home, user="root", group=READER_USER, mode="750"
    )
    files.directory(
        name=f"Create {reader_home}/.ssh",
        path=f"{reader_home}/.ssh",
        user=READER_USER,
        group=READER_USER,
        mode="700",
    )
    files.put(
        name=f"Authorize the exporter's restricted key for {READER_USER}",
        src=StringIO(deployment.authorized_key_line(public_key, sources) + "\n"),
        dest=f"{reader_home}/.ssh/authorized_keys",
        user=READER_USER,
        group=READER_USER,
        mode="600",
    )
    # Earlier versions gave root this key: it is taken away again.
    files.line(
        name="Remove the exporter's key from /root/.ssh/authorized_keys",
        path="/root/.ssh/authorized_keys",
        line=r".* unops-exporter$",
        present=False,
    )

# --- The directory provider: a probe mailbox homed on each mail server ------------------------
# The exporter logs in to them over IMAP and sends mail between them (unops.exporter.mailflow).
# They live in the office zone, carry no mission and so are never touched by `directory sync`.
directory_hosts = estate.hosts_with_role("directory")
if directory_hosts and host.name == directory_hosts[0].name:
    probes_dir = "/etc/ldap/unops/probes"
    ensure = "/usr/local/sbin/unops-ldap-ensure"
    if not host.get_fact(File, path=ensure):
        raise DeployError(
            f"{ensure} is missing on {host.name}: deploy the directory first "
            f"(`unops deploy directory --inventory {fleet}`)"
        )
    entries = deployment.probe_entries(config_from_estate(estate, fleet))
    files.directory(name=f"Create {probes_dir}", path=probes_dir, mode="700")
    commands = []
    for entry in entries:
        add, modify = (
            f"{probes_dir}/{entry.name}.add.ldif",
            f"{probes_dir}/{entry.name}.modify.ldif",
        )
        files.put(name=f"Configure {add}", src=StringIO(entry.add), dest=add, mode="600")
        files.put(
            name=f"Configure {modify}", src=StringIO(entry.modify or ""), dest=modify, mode="600"
        )
        commands.append(shlex.join([ensure, add, modify]))
    # What was last applied is kept: the entries are written only when what is wanted differs.
    wanted_text = "\n".join(entry.add for entry in entries)
    wanted_ldif, applied_ldif = f"{probes_dir}/wanted.ldif", f"{probes_dir}/applied.ldif"
    files.put(
        name=f"Configure {wanted_ldif}", src=StringIO(wanted_text), dest=wanted_ldif, mode="600"
    )
    if (
        host.get_fact(Sha256File, path=applied_ldif)
        != hashlib.sha256(wanted_text.encode()).hexdigest()
    ):
        server.shell(
            name=f"Add or update the {len(entries)} probe mailboxes in the directory",
            commands=[*commands, shlex.join(["cp", wanted_ldif, applied_ldif])],
        )

# --- Access points: snmpd with one SNMPv3 authPriv user ---------------------------------------
if "access_point" in roles:
    user, auth, priv = deployment.snmp_credentials(fleet)
    marker = deployment.snmp_user_marker(user, auth, priv)
    ap = next(a for a in estate.access_points if a.name == host.name)
    apt.update(name="Update the apt cache", cache_time=24 * 3600)
    apt.packages(name="Install snmpd", packages=snmpd_packages, no_recommends=True)
    config = template(
        "/etc/snmp/snmpd.conf",
        "snmpd",
        mode="600",
        address=host.data.address,
        snmp_user=user,
        sysname=host.name,
        location=f"building {ap.building}, floor {ap.floor}",
        contact=estate.site.office.service_desk,
        clients_oid=estate.wifi.clients_oid.get(ap.model),
        simulated_clients=deployment.LAB_SIMULATED_CLIENTS
        if fleet == "lab" and ap.model in estate.wifi.clients_oid
        else (),
    )
    if host.get_fact(TextFile, path=SNMP_MARKER) != marker:
        # snmpd turns createUser into a localized usmUser when it starts, and rewrites the file
        # when it stops: so it is written while snmpd is stopped (LAB.md, SNMPv3 recipe). The
        # passphrases travel in a 0600 file, never on a command line.
        files.directory(name="Create /var/lib/unops/monitoring", path="/var/lib/unops/monitoring")
        files.put(
            name="Stage the SNMPv3 user of the exporter",
            src=StringIO(deployment.snmp_create_user_line(user, auth, priv) + "\n"),
            dest="/var/lib/unops/monitoring/snmp-create-user",
            mode="600",
        )
        server.shell(
            name=f"Create the SNMPv3 user {user} (SHA-256, AES) in /var/lib/snmp/snmpd.conf",
            commands=[
                "systemctl stop snmpd.service",
                "touch /var/lib/snmp/snmpd.conf",
                "sed -i '/^usmUser /d; /^createUser /d' /var/lib/snmp/snmpd.conf",
                "cat /var/lib/unops/monitoring/snmp-create-user >> /var/lib/snmp/snmpd.conf",
                "rm -f /var/lib/unops/monitoring/snmp-create-user",
                f"echo {marker} > {SNMP_MARKER}",
                SNMPD_RESTART,
            ],
        )
    server.shell(name="Restart snmpd.service", commands=[SNMPD_RESTART], _if=config.did_change)
    systemd.service(
        name="Enable and start snmpd.service", service="snmpd.service", running=True, enabled=True
    )


# --- The monitoring host: Prometheus, Alertmanager, the exporter --------------------------------
def build_wheels() -> tuple[Path, list[Path]]:
    """The unops wheel of the committed sources and its pinned dependencies, on this machine."""
    cache = paths.CACHE_DIR / "exporter-wheels"
    cache.mkdir(parents=True, exist_ok=True)
    deps_dir = cache / "deps"
    pins = deployment.requirements()
    stamp = cache / "deps.pins"
    if not stamp.exists() or stamp.read_text() != "\n".join(pins):
        subprocess.run(
            [str(PROJECT_ROOT / ".venv/bin/pip"), "download", "-q", "-d", str(deps_dir), *pins],
            check=True,
        )
        stamp.write_text("\n".join(pins))
    # The committed tree, not the working tree: others' unfinished edits never reach a host.
    # The wheel is rebuilt when what the exporter runs changes, not on every commit elsewhere
    # in the package, so that a second deploy finds it unchanged.
    ids = subprocess.run(
        ["git", "-C", str(PROJECT_ROOT), "rev-parse", *(f"HEAD:{p}" for p in EXPORTER_SOURCES)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    tree = hashlib.sha256(ids.encode()).hexdigest()[:16]
    wheel_dir = cache / f"unops-{tree}"
    if not wheel_dir.exists():
        with tempfile.TemporaryDirectory() as scratch:
            archive = subprocess.run(
                [
                    "git",
                    "-C",
                    str(PROJECT_ROOT),
                    "archive",
                    "HEAD",
                    "pyproject.toml",
                    "README.md",
                    "unops",
                ],
                check=True,
                capture_output=True,
            ).stdout
            subprocess.run(["tar", "-x", "-C", scratch], input=archive, check=True)
            subprocess.run(
                [
                    str(PROJECT_ROOT / ".venv/bin/pip"),
                    "wheel",
                    "-q",
                    "--no-deps",
                    "-w",
                    str(wheel_dir),
                    scratch,
                ],
                check=True,
                env={"SOURCE_DATE_EPOCH": WHEEL_EPOCH, "PATH": "/usr/bin:/bin"},
            )
    wheel = next(wheel_dir.glob("unops-*.whl"))
    return wheel, sorted(deps_dir.glob("*.whl"))


def tls_files() -> tuple[Path, Path]:
    fqdn = estate.fqdn(monitor.name)
    if fleet == "lab":
        from unops.lab.ca import host_certificate

        return host_certificate(fqdn, [monitor_address])
    cert, key = secret_path(fleet, f"tls/{fqdn}.crt"), secret_path(fleet, f"tls/{fqdn}.key")
    if not (cert.exists() and key.exists()):
        raise DeployError(
            f"exporter_tls is on but {cert} and {key} are missing; put the monitoring host's "
            "certificate and key there, or set exporter_tls = False"
        )
    return cert, key


if "monitoring" in roles:
    fqdn = estate.fqdn(host.name)
    exporter_listen = f"{monitor_address}:{deployment.EXPORTER_PORT}"
    apt.update(name="Update the apt cache", cache_time=24 * 3600)
    apt.packages(
        name="Install Prometheus and Alertmanager",
        packages=[*prometheus_packages, "python3-venv"],
        no_recommends=True,
    )

    # The exporter: its user, a venv with the wheels (no index), its files and its unit.
    server.group(name="Create the group unops-exporter", group="unops-exporter", system=True)
    server.user(
        name="Create the user unops-exporter",
        user="unops-exporter",
        group="unops-exporter",
        home="/nonexistent",
        shell="/usr/sbin/nologin",
        system=True,
        ensure_home=False,
    )
    wheel, deps = build_wheels()
    files.directory(name=f"Create {exporter_wheels}", path=exporter_wheels, mode="755")
    dep_ops = [
        files.put(name=f"Upload {dep.name}", src=str(dep), dest=f"{exporter_wheels}/{dep.name}")
        for dep in deps
    ]
    wheel_op = files.put(
        name=f"Upload {wheel.name}", src=str(wheel), dest=f"{exporter_wheels}/{wheel.name}"
    )
    # bin/python is a symlink, which the File fact does not count: pyvenv.cfg marks a venv.
    venv_python = host.get_fact(File, path=f"{exporter_venv}/pyvenv.cfg")
    pip = f"{exporter_venv}/bin/pip install -q --no-index --find-links {exporter_wheels}"
    if not venv_python:
        server.shell(
            name=f"Create the venv {exporter_venv}",
            commands=[f"python3 -m venv {exporter_venv}"],
        )
    server.shell(
        name=f"Install the exporter's dependencies into {exporter_venv}",
        commands=[f"{pip} {' '.join(deployment.requirements())}"],
        _if=lambda: not venv_python or any(op.did_change() for op in dep_ops),
    )
    install = server.shell(
        name=f"Install {wheel.name} into {exporter_venv}",
        commands=[f"{pip} --no-deps --force-reinstall {exporter_wheels}/{wheel.name}"],
        _if=lambda: not venv_python or wheel_op.did_change(),
    )

    config = config_from_estate(
        estate,
        fleet,
        ca_file=f"{exporter_etc}/ca.crt" if fleet == "lab" else None,
        known_hosts=f"{exporter_etc}/known_hosts",
    )
    secrets_root = f"{exporter_etc}/secrets"
    exporter_files = [
        files.directory(
            name=f"Create {exporter_etc}",
            path=exporter_etc,
            user="root",
            group="unops-exporter",
            mode="750",
        ),
        files.put(
            name=f"Install {exporter_etc}/config.json",
            src=StringIO(config.to_json()),
            dest=f"{exporter_etc}/config.json",
            group="unops-exporter",
            mode="640",
        ),
        files.put(
            name=f"Install {exporter_etc}/known_hosts",
            src=str(known_hosts_file),
            dest=f"{exporter_etc}/known_hosts",
            mode="644",
        ),
    ]
    if fleet == "lab":
        exporter_files.append(
            files.put(
                name=f"Install {exporter_etc}/ca.crt",
                src=str(paths.CA_CERT),
                dest=f"{exporter_etc}/ca.crt",
                mode="644",
            )
        )
    # The secrets the exporter reads, laid out as unops.secrets expects (UNOPS_SECRETS_DIR).
    private_key, _ = deployment.records_key(fleet)
    user, auth, priv = deployment.snmp_credentials(fleet)
    from unops.exporter.config import (
        LDAP_SECRET,
        RECORDS_KEY_SECRET,
        SNMP_AUTH_SECRET,
        SNMP_PRIV_SECRET,
    )
    from unops.secrets import password

    wanted = {
        RECORDS_KEY_SECRET: private_key,
        SNMP_AUTH_SECRET: auth + "\n",
        SNMP_PRIV_SECRET: priv + "\n",
        # The directory deploy makes the bind account's password; the same call reads it.
        LDAP_SECRET: password(fleet, LDAP_SECRET) + "\n",
    }
    for server_host in config.mail_servers:
        # The same call makes the password for the probe mailbox on the directory (below).
        name = probe_secret(server_host.target)
        wanted[name] = password(fleet, name) + "\n"
    folders = sorted({str(Path(name).parent) for name in wanted} | {"."})
    for folder in folders:
        path = f"{secrets_root}/{fleet}/{folder}".rstrip("/.")
        exporter_files.append(
            files.directory(
                name=f"Create {path}",
                path=path,
                user="unops-exporter",
                group="unops-exporter",
                mode="700",
            )
        )
    for name, value in sorted(wanted.items()):
        exporter_files.append(
            files.put(
                name=f"Install the exporter's secret {name}",
                src=StringIO(value),
                dest=f"{secrets_root}/{fleet}/{name}",
                user="unops-exporter",
                group="unops-exporter",
                mode="600",
            )
        )

    tls_args = ""
    if exporter_tls:
        cert, key = tls_files()
        exporter_files += [
            files.put(
                name=f"Install {exporter_etc}/tls.crt",
                src=str(cert),
                dest=f"{exporter_etc}/tls.crt",
                mode="644",
            ),
            files.put(
                name=f"Install {exporter_etc}/tls.key",
                src=str(key),
                dest=f"{exporter_etc}/tls.key",
                user="unops-exporter",
                group="unops-exporter",
                mode="600",
            ),
        ]
        tls_args = f" --tls-cert {exporter_etc}/tls.crt --tls-key {exporter_etc}/tls.key"
    unit = template(
        "/etc/systemd/system/unops-exporter.service",
        "unops-exporter",
        secrets_dir=secrets_root,
        venv=exporter_venv,
        listen=exporter_listen,
        config_file=f"{exporter_etc}/config.json",
        tls_args=tls_args,
    )
    systemd.daemon_reload(name="Reload systemd units", _if=unit.did_change)
    keep_running("unops-exporter.service", restart_if=any_changed(unit, install, *exporter_files))

    # Prometheus: rules from monitors/rules, configuration from the estate, checked, reloaded.
    prom_ops = [
        files.directory(name="Create /etc/prometheus/rules", path="/etc/prometheus/rules"),
    ]
    if exporter_tls and fleet == "lab":
        prom_ops.append(
            files.put(
                name="Install /etc/prometheus/unops-ca.crt",
                src=str(paths.CA_CERT),
                dest="/etc/prometheus/unops-ca.crt",
                mode="644",
            )
        )
    prom_ops += [
        files.put(
            name=f"Install /etc/prometheus/rules/{rules.name}",
            src=str(rules),
            dest=f"/etc/prometheus/rules/{rules.name}",
            mode="644",
        )
        for rules in sorted((MONITORS / "rules").glob("*.yml"))
    ]
    prom_ops.append(
        files.put(
            name="Configure /etc/prometheus/prometheus.yml",
            src=StringIO(
                deployment.prometheus_config(
                    fleet=fleet,
                    address=monitor_address,
                    scrape_interval=prometheus_scrape_interval,
                    scrape_timeout=prometheus_scrape_timeout,
                    exporter_tls=exporter_tls,
                    ca_file="/etc/prometheus/unops-ca.crt" if fleet == "lab" else None,
                    server_name=fqdn,
                )
            ),
            dest="/etc/prometheus/prometheus.yml",
            mode="644",
        )
    )
    prom_changed = any_changed(*prom_ops)
    server.shell(
        name="Check /etc/prometheus/prometheus.yml with promtool",
        commands=["promtool check config /etc/prometheus/prometheus.yml"],
        _if=prom_changed,
    )
    prom_default = template(
        "/etc/default/prometheus",
        "prometheus",
        listen=f"{monitor_address}:{deployment.PROMETHEUS_PORT}",
        retention=prometheus_retention,
    )
    keep_running("prometheus.service", restart_if=prom_default.did_change, reload_if=prom_changed)

    # Alertmanager: routing by urgency (monitors/alertmanager.yml.j2), checked, reloaded.
    # Its mail leaves through a Postfix null client here, which falls back from one mail server
    # to the next and queues while none answers: a page about mail1 must not need mail1.
    relays = sorted(estate.fqdn(h.name) for h in estate.hosts_with_role("mail"))
    if not relays:
        raise DeployError("Alertmanager mails its pages: hosts.toml has no host with role 'mail'")
    apt.packages(name="Install Postfix (null client)", packages=["postfix"], no_recommends=True)
    relay_config = template("/etc/postfix/main.cf", "alertmanager", fqdn=fqdn, relays=relays)
    server.shell(
        name="Check the Postfix null client with postfix check",
        commands=["postfix check"],
        _if=relay_config.did_change,
    )
    keep_running("postfix.service", restart_if=relay_config.did_change)
    smarthost = "127.0.0.1:25"
    am_config = files.template(
        name="Configure /etc/prometheus/alertmanager.yml",
        src=str(MONITORS / "alertmanager.yml.j2"),
        dest="/etc/prometheus/alertmanager.yml",
        mode="644",
        smarthost=smarthost,
        require_tls="false",
        sender=f"alertmanager@{estate.zone}",
        on_call=estate.site.office.on_call,
        service_desk=estate.site.office.service_desk,
        deadman_url=alertmanager_deadman_url,
        timezone=str(host.data.get("timezone", "UTC")),
    )
    server.shell(
        name="Check /etc/prometheus/alertmanager.yml with amtool",
        commands=["amtool check-config /etc/prometheus/alertmanager.yml"],
        _if=am_config.did_change,
    )
    am_default = template(
        "/etc/default/prometheus-alertmanager",
        "alertmanager",
        listen=f"{monitor_address}:{deployment.ALERTMANAGER_PORT}",
    )
    keep_running(
        "prometheus-alertmanager.service",
        restart_if=am_default.did_change,
        reload_if=am_config.did_change,
    )
