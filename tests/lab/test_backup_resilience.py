"""Backups that are interrupted or whose storage is damaged: the repository and the records hold."""

from __future__ import annotations

import shlex
import textwrap
from collections.abc import Iterator

import pytest
from backup_support import deploy_backup

from unops.backup import client, plan
from unops.remote import run

pytestmark = pytest.mark.lab

HOST = "mail2"
DATA = "/var/vmail/backup-kill.invalid"
# Fresh random data for each interrupted run: deduplication cannot make the backup instant.
DATA_FILES, FILE_MB = 16, 12

# Runs the backup on the host, finds restic's backup process (a child of the runner this script
# started, by its pid), waits until restic has read SHARE percent of the data, and kills it.
_KILL_SCRIPT = textwrap.dedent(
    """\
    set -u
    total=$(du -sb {data} | cut -f1)
    {runner} backup > /var/tmp/unops-kill.out 2>&1 &
    runner=$!
    child=""
    for _ in $(seq 1 2000); do
        for pid in $(cat /proc/$runner/task/*/children 2>/dev/null); do
            if tr '\\0' ' ' < /proc/$pid/cmdline 2>/dev/null | grep -q ' backup '; then
                child=$pid
            fi
        done
        [ -n "$child" ] && break
        sleep 0.01
    done
    [ -n "$child" ] || {{ echo "restic backup never started"; exit 90; }}
    while kill -0 "$child" 2>/dev/null; do
        read_bytes=$(awk '/^rchar/ {{print $2}}' /proc/$child/io 2>/dev/null || echo 0)
        if [ "${{read_bytes:-0}}" -ge $((total * {share} / 100)) ]; then
            kill -9 "$child"
            echo "killed restic at $read_bytes of $total bytes"
            break
        fi
        sleep 0.005
    done
    wait $runner
    echo "runner exit $?"
    """
)


@pytest.fixture(scope="module")
def host(lab: object) -> Iterator[str]:
    """mail2, with its backup deployed; the test data is removed at the end."""
    deploy_backup(["backup1", HOST])
    yield HOST
    run(HOST, ["rm", "-rf", "--", DATA, "/var/tmp/unops-kill.out"])


def _fresh_data() -> None:
    run(HOST, ["rm", "-rf", "--", DATA], check=True)
    run(HOST, ["mkdir", "-p", DATA], check=True)
    run(
        HOST,
        f"for n in $(seq 1 {DATA_FILES}); do head -c {FILE_MB}M /dev/urandom "
        f"> {DATA}/blob-$n; done",
        check=True,
    )


@pytest.mark.parametrize("share", [3, 50, 95], ids=["early", "midway", "late"])
def test_backup_killed_leaves_a_sound_repository(host: str, share: int) -> None:
    """restic SIGKILLed early, midway or late: the run is recorded as failed, `restic check`
    reading all data passes, and the next backup succeeds."""
    _fresh_data()
    script = _KILL_SCRIPT.format(data=DATA, runner=plan.RUNNER, share=share)
    done = run(host, f"bash -c {shlex.quote(script)}", timeout=600)
    assert "killed restic at" in done.stdout, done.stdout + done.stderr

    killed = client.fetch_records(host).records[-1]
    assert (killed.kind, killed.result, killed.exit_code) == ("backup", "failed", -9)

    check = client.check(host, "1/1")
    assert check.ok, check.detail

    after = client.run_now(host, "backup")
    assert after.ok, after.detail
    assert after.snapshot
    chain = client.fetch_records(host)
    assert chain.intact, chain.problems


# Flips one byte in the middle of the largest pack of HOST's repository on the backup host, and
# prints the pack's path; run again with the same path, it flips the byte back.
_FLIP = textwrap.dedent(
    """\
    import os, sys
    path = sys.argv[1] if len(sys.argv) > 1 else max(
        (os.path.join(d, f) for d, _, fs in os.walk("{repo}/data") for f in fs),
        key=os.path.getsize,
    )
    with open(path, "r+b") as pack:
        pack.seek(os.path.getsize(path) // 2)
        byte = pack.read(1)
        pack.seek(-1, 1)
        pack.write(bytes([byte[0] ^ 0xFF]))
    print(path)
    """
)


def test_flipped_byte_in_a_pack_is_found_and_recorded(host: str) -> None:
    """One byte flipped in a stored pack: the verification fails naming the pack, the failure
    is recorded, exactly one of the seven daily shares finds it, and the repair is confirmed."""
    _fresh_data()
    assert client.run_now(host, "backup").ok
    flip = _FLIP.format(repo=f"{plan.CHROOTS_DIR}/{HOST}/repo")
    pack = run("backup1", ["python3", "-c", flip], check=True).stdout.strip()
    try:
        full = client.check(host, "1/1")
        shares = [client.check(host, f"{n}/7") for n in range(1, 8)]
    finally:
        run("backup1", ["python3", "-c", flip, pack], check=True)
    assert (full.kind, full.result) == ("check", "failed")
    assert full.exit_code != 0
    pack_id = pack.rsplit("/", 1)[-1]
    assert pack_id[:8] in full.detail, full.detail
    recorded = client.fetch_records(host).records
    assert recorded[-8] == full
    assert [s.result for s in shares].count("failed") == 1, [s.detail for s in shares]
    assert client.check(host, "1/1").ok
