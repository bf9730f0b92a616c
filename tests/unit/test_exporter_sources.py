"""What the exporter makes of its sources' data: the estate, backup record chains, the directory."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

from prometheus_client.metrics_core import Metric

from unops import chain
from unops.estate import load_estate
from unops.exporter.backups import BackupReading, backup_families, parse_chain
from unops.exporter.config import ExporterConfig, config_from_estate
from unops.exporter.directory import DirectoryReading, csn_timestamp, directory_families


def by_name(families: list[Metric]) -> dict[str, dict[tuple[str, ...], float]]:
    return {f.name: {tuple(s.labels.values()): s.value for s in f.samples} for f in families}


def test_lab_config_probes_every_mail_port_replica_and_access_point_of_the_lab() -> None:
    """The lab's targets come from the estate: five ports per mail server, dir1 as provider."""
    estate = load_estate()
    cfg = config_from_estate(estate, "lab")
    mail = [h.name for h in estate.hosts_with_role("mail")]
    assert sorted({e.target for e in cfg.endpoints}) == sorted(mail)
    assert sorted({e.port for e in cfg.endpoints}) == [25, 143, 465, 587, 993]
    assert cfg.ldap[0].target == "dir1" and cfg.ldap[0].provider
    assert sorted(t.target for t in cfg.ldap[1:]) == sorted(mail)
    assert [ap.target for ap in cfg.access_points] == ["ap-ga1-01", "ap-ga1-02"]
    # cms2 has no lab address, so only cms1's sites are probed in the lab.
    cms1 = sorted(s.site for s in estate.sites if s.host == "cms1")
    assert [s.site for s in cfg.sites] == cms1
    assert all(e.address.startswith("198.18.0.") for e in cfg.endpoints)


def test_config_survives_its_json_form() -> None:
    """What the deploy writes for the monitoring host reads back as the same configuration."""
    cfg = config_from_estate(load_estate(), "production", ca_file="/etc/ssl/ca.pem")
    assert ExporterConfig.from_json(cfg.to_json()) == cfg


def _records(tmp_path: Path) -> Path:
    path = tmp_path / "records.jsonl"
    base = {"host": "mail1", "exit_code": 0, "files": 10, "snapshot": "abc", "detail": ""}
    chain.append(
        path,
        {
            **base,
            "kind": "backup",
            "result": "ok",
            "time": "2026-12-01T01:30:00Z",
            "bytes": 1000,
            "duration_seconds": 12.5,
        },
    )
    chain.append(
        path,
        {
            **base,
            "kind": "check",
            "result": "ok",
            "time": "2026-12-01T02:00:00Z",
            "bytes": None,
            "duration_seconds": 3.0,
            "detail": "1/7",
        },
    )
    chain.append(
        path,
        {
            **base,
            "kind": "backup",
            "result": "failed",
            "time": "2026-12-02T01:30:00Z",
            "bytes": None,
            "duration_seconds": 1.0,
            "exit_code": 1,
        },
    )
    return path


def test_backup_metrics_say_last_success_even_after_a_failed_run(tmp_path: Path) -> None:
    """The last success is the last ok backup; the last run is the failed one after it."""
    text = _records(tmp_path).read_text()
    metrics = by_name(backup_families([parse_chain("mail1", text, 0.1)]))
    assert (
        metrics["unops_backup_last_success_timestamp_seconds"][("mail1",)]
        == dt.datetime(2026, 12, 1, 1, 30, tzinfo=dt.UTC).timestamp()
    )
    assert metrics["unops_backup_last_run_success"][("mail1",)] == 0.0
    assert metrics["unops_backup_size_bytes"][("mail1",)] == 1000.0
    assert metrics["unops_backup_last_check_success"][("mail1",)] == 1.0
    assert metrics["unops_backup_last_drill_timestamp_seconds"][("mail1",)] == 0.0
    assert metrics["unops_backup_chain_intact"][("mail1",)] == 1.0


def test_edited_record_reads_as_a_broken_chain(tmp_path: Path) -> None:
    """Changing a past record's result breaks the chain, and the metric says so."""
    lines = _records(tmp_path).read_text().splitlines()
    record = json.loads(lines[1])
    record["result"] = "failed"
    lines[1] = chain.canonical(record)
    metrics = by_name(backup_families([parse_chain("mail1", "\n".join(lines) + "\n", 0.1)]))
    assert metrics["unops_backup_chain_intact"][("mail1",)] == 0.0


def test_unreadable_host_has_no_backup_values_only_a_failed_probe() -> None:
    """A host whose records cannot be read exports probe success 0, not stale or zero values."""
    metrics = by_name(backup_families([BackupReading("mail2", False, 1.0, error="timed out")]))
    assert metrics["unops_probe_success"] == {("backup_records", "mail2"): 0.0}
    assert metrics["unops_backup_chain_intact"] == {}


def test_replica_lag_is_the_provider_csn_minus_the_replica_csn() -> None:
    """A replica whose last change is 90 s older than the provider's is 90 s behind."""
    provider = csn_timestamp("20261203203000.000000Z#000000#000#000000")
    readings = [
        DirectoryReading("dir1", True, True, 0.1, csn_time=provider),
        DirectoryReading("mail1", False, True, 0.1, csn_time=provider - 90),
        DirectoryReading("mail2", False, False, 0.1),
    ]
    readings[0].mailboxes[("mail1", "active")] = 3
    readings[0].mailboxes[("mail1", "disabled")] = 1
    metrics = by_name(directory_families(readings))
    assert metrics["unops_ldap_replica_lag_seconds"] == {("mail1",): 90.0}
    assert metrics["unops_probe_success"][("ldap", "mail2")] == 0.0
    assert metrics["unops_directory_mailboxes"] == {
        ("mail1", "active"): 3.0,
        ("mail1", "disabled"): 1.0,
    }


def test_queue_counts_are_read_from_the_forced_commands_answer() -> None:
    """`<queue> <count>` lines become counts; anything else in the answer is ignored."""
    from unops.exporter.queue import parse_queues

    text = "active 2\ndeferred 31\nhold 0\nincoming 1\nbogus 9\ndeferred: nope\n"
    assert parse_queues(text) == {"active": 2, "deferred": 31, "hold": 0, "incoming": 1}


def test_directory_certificate_expiry_is_exported_where_starttls_showed_one() -> None:
    """The notAfter of the certificate StartTLS was shown is exported with kind="ldap"; a
    server that could not be reached has none (not a zero)."""
    readings = [
        DirectoryReading("dir1", True, True, 0.1, cert_expiry=1_900_000_000.0),
        DirectoryReading("mail2", False, False, 0.1),
    ]
    metrics = by_name(directory_families(readings))
    assert metrics["unops_probe_ssl_earliest_cert_expiry"] == {("ldap", "dir1"): 1_900_000_000.0}
