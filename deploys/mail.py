"""Mission e-mail on every mail server: Postfix, Dovecot, rspamd and ClamAV, against the directory.

Run it with `unops deploy mail` or `pyinfra -y inventory/lab.py deploys/mail.py`. The plan of each
server is computed in `unops.mail`; this file only moves it onto the host. Every configuration is
checked before it goes live (main.cf, master.cf and dovecot.conf in a staging folder first); a
service restarts or reloads only when its configuration changed, and one server at a time
(`_serial`), so that at most one server is ever out of service.
"""

from __future__ import annotations

import hashlib
from io import BytesIO, StringIO

import jinja2
from pyinfra import host
from pyinfra.api import QuoteString, StringCommand
from pyinfra.api.operation import OperationMeta
from pyinfra.facts.files import Sha1File
from pyinfra.operations import apt, files, server, systemd
from pyinfra.operations.util import any_changed

from unops import PROJECT_ROOT
from unops.estate import load_estate
from unops.lab import paths
from unops.mail import dkim, dns, plan, tls
from unops.secrets import password

TEMPLATES = PROJECT_ROOT / "deploys" / "templates"

# Deploy defaults.
# postfix_staging_dir: where main.cf and master.cf are checked before they are installed.
postfix_staging_dir = "/etc/postfix/unops-staged"
# dovecot_staging_dir: where dovecot.conf is checked before it is installed.
dovecot_staging_dir = "/etc/dovecot/unops-staged"
# postfix_packages: Postfix with its LDAP lookup tables.
postfix_packages = ["postfix", "postfix-ldap"]
# dovecot_packages: IMAP, LMTP delivery and the LDAP passdb/userdb.
dovecot_packages = ["dovecot-core", "dovecot-imapd", "dovecot-lmtpd", "dovecot-ldap"]
# rspamd_packages: the milter and ClamAV (without Recommends: no Redis, no extra scanners).
rspamd_packages = ["rspamd", "clamav-daemon", "clamav"]
# dovecot_vmail_uid: uid and gid of the one account that owns every Maildir (fixed, so that the
# configuration that names it is known before the account exists).
dovecot_vmail_uid = 5000
# rspamd_dkim_dir: where the per-domain DKIM keys live on the server (readable by rspamd only).
rspamd_dkim_dir = "/var/lib/rspamd/dkim"
# rspamd_dkim_archive: the keys as the deploy ships them, one tar archive (root only).
rspamd_dkim_archive = "/var/lib/rspamd/dkim-keys.tar"
# clamav_lab_eicar: the 68-byte EICAR test file; the lab's only signature is its MD5
# (https://www.eicar.org/download-anti-malware-testfile/).
clamav_lab_eicar = r"X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"

fleet = str(host.data.fleet)
estate = load_estate()
mail_plan = plan.plan_for(estate, host.name)
cert_file, key_file, ca_file = tls.certificate_files(fleet, mail_plan.fqdn, host.data)
common = {
    "plan": mail_plan,
    "tls_cert": plan.TLS_CERT,
    "tls_key": plan.TLS_KEY,
    "tls_ca": plan.TLS_CA,
}

if fleet == "lab":
    # The lab's resolver serves the records production would publish (SPF, DKIM, DMARC...),
    # so that the servers check each other's mail as they would on the internet.
    dns.write_lab_records(estate, paths.DNS_RECORDS_DIR)


def render(service: str, path: str, **data: object) -> str:
    """templates/<service><path>.j2 rendered here, as files.template would on the host."""
    source = (TEMPLATES / service / f"{path.lstrip('/')}.j2").read_text(encoding="utf-8")
    env = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
    return env.from_string(source).render(**common, **data)


def template(path: str, service: str, mode: str = "644", group: str = "root", **data: object):
    """Render templates/<service><path>.j2 to `path` on the host."""
    return files.template(
        name=f"Configure {path}",
        src=str(TEMPLATES / service / f"{path.lstrip('/')}.j2"),
        dest=path,
        user="root",
        group=group,
        mode=mode,
        **common,
        **data,
    )


def staged_install(
    service: str, staging_dir: str, contents: dict[str, str], check: StringCommand
) -> OperationMeta:
    """Stage `contents` (live path -> text) in `staging_dir`, run `check` there, then install.

    For files a running service may read at any moment: a bad one never replaces a good one.
    The live files are compared too, so that a check that failed on an earlier run is tried
    again on the next rather than forgotten. Returns the install operation.
    """
    stage_ops = []
    live_differs = False
    for live_path, content in contents.items():
        live = host.get_fact(Sha1File, path=live_path)
        live_differs |= live != hashlib.sha1(content.encode()).hexdigest()
        staged_path = f"{staging_dir}/{live_path.rsplit('/', 1)[1]}"
        stage_ops.append(
            files.put(
                name=f"Stage {staged_path}", src=StringIO(content), dest=staged_path, mode="644"
            )
        )
    stage_changed = any_changed(*stage_ops)

    def needed() -> bool:
        return live_differs or stage_changed()

    server.shell(
        name=f"Check the staged {service} configuration in {staging_dir}",
        commands=[check],
        _if=needed,
    )
    return server.shell(
        name=f"Install {' and '.join(contents)}",
        commands=[
            StringCommand(
                "install",
                "-m",
                "644",
                QuoteString(f"{staging_dir}/{path.rsplit('/', 1)[1]}"),
                QuoteString(path),
            )
            for path in contents
        ],
        _if=needed,
    )


# Packages: installed once; later runs find them present and change nothing.
apt.update(name="Update the apt cache", cache_time=24 * 3600)
apt.packages(
    name="Install Postfix, Dovecot, rspamd and ClamAV",
    packages=postfix_packages + dovecot_packages + rspamd_packages,
    no_recommends=True,
    # Wait for another apt run (another deploy, unattended upgrades) instead of failing.
    extra_install_args="-o DPkg::Lock::Timeout=600",
    # One host at a time: the lab's hosts share one package cache, and apt locks it; a lock
    # held by another deploy on a neighbour is waited out by retrying.
    _serial=fleet == "lab",
    _retries=5,
    _retry_delay=20,
)

# Certificates: the server's own, and the CA its peers' and the replica's certificates chain to.
files.directory(
    name=f"Create {plan.TLS_DIR}", path=plan.TLS_DIR, user="root", group="root", mode="755"
)
tls_ops = [
    files.put(name=f"Install {plan.TLS_CERT}", src=str(cert_file), dest=plan.TLS_CERT, mode="644"),
    files.put(name=f"Install {plan.TLS_KEY}", src=str(key_file), dest=plan.TLS_KEY, mode="600"),
    files.put(name=f"Install {plan.TLS_CA}", src=str(ca_file), dest=plan.TLS_CA, mode="644"),
]

# Mailboxes: one system account owns every Maildir.
server.group(name="Create the vmail group", group="vmail", system=True, gid=dovecot_vmail_uid)
server.user(
    name="Create the vmail account",
    user="vmail",
    group="vmail",
    uid=dovecot_vmail_uid,
    home=plan.VMAIL_DIR,
    shell="/usr/sbin/nologin",
    system=True,
)
files.directory(
    name=f"Create {plan.VMAIL_DIR}", path=plan.VMAIL_DIR, user="vmail", group="vmail", mode="750"
)

# --- Postfix ---------------------------------------------------------------------------------
postfix_pw = password(fleet, "ldap/postfix")
# main.cf and master.cf are read by every new Postfix process: staged and checked first.
postfix_install = staged_install(
    "Postfix",
    postfix_staging_dir,
    {
        "/etc/postfix/main.cf": render(
            "postfix", "/etc/postfix/main.cf", milter=plan.RSPAMD_MILTER
        ),
        "/etc/postfix/master.cf": render("postfix", "/etc/postfix/master.cf"),
    },
    StringCommand("postfix", "-c", QuoteString(postfix_staging_dir), "check"),
)
postfix_ops = [
    template("/etc/postfix/mission_domains", "postfix"),
    template("/etc/postfix/tls_policy", "postfix"),
    files.directory(
        name="Create /etc/postfix/ldap", path="/etc/postfix/ldap", group="postfix", mode="750"
    ),
]
for table in ("mailboxes", "transport", "senders"):
    postfix_ops.append(
        template(
            f"/etc/postfix/ldap/{table}.cf",
            "postfix",
            mode="640",
            group="postfix",
            bind_pw=postfix_pw,
        )
    )
postfix_changed = any_changed(postfix_install, *postfix_ops, *tls_ops)
# Settings such as inet_protocols take effect only on a restart; the tables, on a reload.
postfix_restart = any_changed(postfix_install, *tls_ops)
server.shell(
    name="Check the Postfix configuration", commands=["postfix check"], _if=postfix_changed
)
# postfix.service only starts the instances; postfix@-.service is the mail system itself.
systemd.service(
    name="Enable and start postfix@-.service",
    service="postfix@-.service",
    running=True,
    enabled=True,
)
restart_postfix = systemd.service(
    name="Restart postfix@-.service",
    service="postfix@-.service",
    restarted=True,
    _if=postfix_restart,
    _serial=True,
)
systemd.service(
    name="Reload postfix@-.service",
    service="postfix@-.service",
    reloaded=True,
    _if=[postfix_changed, lambda: not restart_postfix.did_change()],
    _serial=True,
)

# --- Dovecot ---------------------------------------------------------------------------------
dovecot_pw = password(fleet, "ldap/dovecot")
dovecot_install = staged_install(
    "Dovecot",
    dovecot_staging_dir,
    {
        "/etc/dovecot/dovecot.conf": render(
            "dovecot",
            "/etc/dovecot/dovecot.conf",
            vmail_uid=dovecot_vmail_uid,
            vmail_dir=plan.VMAIL_DIR,
        )
    },
    # -n prints the settings; only whether they parse matters here.
    StringCommand(
        "doveconf", "-n", "-c", QuoteString(f"{dovecot_staging_dir}/dovecot.conf"), ">", "/dev/null"
    ),
)
dovecot_ops = [
    template("/etc/dovecot/unops-ldap-local.conf.ext", "dovecot", mode="600", bind_pw=dovecot_pw),
    template(
        "/etc/dovecot/unops-ldap-proxy.conf.ext",
        "dovecot",
        mode="600",
        bind_pw=dovecot_pw,
        imaps_port=plan.IMAPS_PORT,
    ),
]
dovecot_changed = any_changed(dovecot_install, *dovecot_ops, *tls_ops)
systemd.service(
    name="Enable and start dovecot.service", service="dovecot.service", running=True, enabled=True
)
# A restart, not a reload: listeners and the auth process pick up every setting.
systemd.service(
    name="Restart dovecot.service",
    service="dovecot.service",
    restarted=True,
    _if=dovecot_changed,
    _serial=True,
)

# --- ClamAV ----------------------------------------------------------------------------------
clamav_ops = []
if fleet == "lab":
    # The lab cannot download signatures: clamd runs on one local signature, EICAR's MD5.
    eicar = clamav_lab_eicar.encode("ascii")
    signature = f"{hashlib.md5(eicar).hexdigest()}:{len(eicar)}:Unops-Lab-Eicar-Test"
    clamav_ops += [
        template("/var/lib/clamav/unops-lab.hdb", "clamav", signature=signature),
        template(
            "/etc/systemd/system/clamav-daemon.service.d/unops-local-signatures.conf", "clamav"
        ),
    ]
    systemd.service(
        name="Stop and disable clamav-freshclam.service",
        service="clamav-freshclam.service",
        running=False,
        enabled=False,
    )
else:
    systemd.service(
        name="Enable and start clamav-freshclam.service",
        service="clamav-freshclam.service",
        running=True,
        enabled=True,
    )
clamav_changed = any_changed(*clamav_ops) if clamav_ops else (lambda: False)
systemd.daemon_reload(name="Reload systemd units", _if=clamav_changed)
systemd.service(
    name="Enable and start clamav-daemon.service",
    service="clamav-daemon.service",
    running=True,
    enabled=True,
)
systemd.service(
    name="Restart clamav-daemon.service",
    service="clamav-daemon.service",
    restarted=True,
    _if=clamav_changed,
    _serial=True,
)

# --- rspamd ----------------------------------------------------------------------------------
files.directory(
    name=f"Create {rspamd_dkim_dir}",
    path=rspamd_dkim_dir,
    user="_rspamd",
    group="_rspamd",
    mode="750",
)
rspamd_ops = [
    template(f"/etc/rspamd/local.d/{name}", "rspamd")
    for name in (
        "worker-proxy.inc",
        "worker-controller.inc",
        "options.inc",
        "antivirus.conf",
        "force_actions.conf",
        "actions.conf",
        "milter_headers.conf",
        "fuzzy_check.conf",
    )
]
rspamd_ops.append(
    template(
        "/etc/rspamd/local.d/dkim_signing.conf",
        "rspamd",
        dkim_selector=dkim.SELECTOR,
        dkim_dir=rspamd_dkim_dir,
    )
)
# The DKIM keys travel as one archive (one checksum to compare), unpacked only when it changed.
keys_archive = files.put(
    name=f"Install {rspamd_dkim_archive}",
    src=BytesIO(dkim.key_bundle(fleet, mail_plan.domains)),
    dest=rspamd_dkim_archive,
    user="root",
    group="root",
    mode="600",
)
rspamd_ops.append(
    server.shell(
        name=f"Unpack the DKIM keys into {rspamd_dkim_dir}",
        commands=[
            StringCommand(
                "tar",
                "-xf",
                QuoteString(rspamd_dkim_archive),
                "-C",
                QuoteString(rspamd_dkim_dir),
                "--no-same-owner",
            ),
            StringCommand("chown", "-R", "_rspamd:_rspamd", QuoteString(rspamd_dkim_dir)),
        ],
        _if=keys_archive.did_change,
    )
)
rspamd_changed = any_changed(*rspamd_ops)
server.shell(
    name="Check the rspamd configuration", commands=["rspamadm configtest"], _if=rspamd_changed
)
systemd.service(
    name="Enable and start rspamd.service", service="rspamd.service", running=True, enabled=True
)
systemd.service(
    name="Reload rspamd.service",
    service="rspamd.service",
    reloaded=True,
    _if=rspamd_changed,
    _serial=True,
)
