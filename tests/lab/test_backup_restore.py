"""Restores from the lab's backups: a mailbox comes back byte for byte; drills compare, record."""

from __future__ import annotations

import hashlib
import os
import shlex
import stat
from collections.abc import Iterator

import pytest
from backup_support import deploy_backup

from unops.backup import client, plan
from unops.remote import connect, run

pytestmark = pytest.mark.lab

MAILBOX = "/var/vmail/backup-test.invalid/ana"
RESTORE_TO = "/var/tmp/unops-test-restore"


def _messages() -> dict[str, bytes]:
    """A Maildir's messages: CRLF text, 8-bit headers, NUL bytes and a 3 MB binary attachment."""
    attachment = os.urandom(3 * 1024 * 1024)
    return {
        "Maildir/cur/1764720000.M1P100.mail1:2,S": (
            b"From: Ana <ana@backup-test.invalid>\r\nSubject: =?UTF-8?Q?R=C3=A9union?=\r\n\r\n"
            b"Caf\xc3\xa9 \xe2\x82\xac 10\r\n"
        ),
        "Maildir/cur/1764720001.M2P100.mail1:2,RS": b"Subject: nul\r\n\r\n\x00\x01\xff\xfe\r\n",
        "Maildir/new/1764720002.M3P100.mail1": b"Subject: big\r\n\r\n" + attachment,
        "Maildir/.Sent/cur/1764720003.M4P100.mail1:2,S": b"Subject: sent\n\nlf only\n",
    }


@pytest.fixture(scope="module")
def mailbox(lab: object) -> Iterator[dict[str, bytes]]:
    """A mailbox on mail1 with known bytes, backed up once; removed again at the end."""
    deploy_backup(["backup1", "mail1"])
    messages = _messages()
    ssh = connect("mail1")
    try:
        sftp = ssh.open_sftp()
        run("mail1", ["rm", "-rf", "--", MAILBOX, RESTORE_TO], check=True)
        for relative, data in messages.items():
            path = f"{MAILBOX}/{relative}"
            run("mail1", ["mkdir", "-p", os.path.dirname(path)], check=True)
            with sftp.open(path, "wb") as handle:
                handle.write(data)
        sftp.close()
    finally:
        ssh.close()
    record = client.run_now("mail1", "backup")
    assert record.ok, record.detail
    yield messages
    run("mail1", ["rm", "-rf", "--", MAILBOX, RESTORE_TO])


def _read_tree(host: str, root: str) -> dict[str, bytes]:
    """Every regular file under `root` on `host`, by path relative to `root`, read over SFTP."""
    ssh = connect(host)
    found: dict[str, bytes] = {}
    try:
        sftp = ssh.open_sftp()

        def walk(folder: str) -> None:
            for entry in sftp.listdir_attr(folder):
                path = f"{folder}/{entry.filename}"
                if stat.S_ISDIR(entry.st_mode or 0):
                    walk(path)
                elif stat.S_ISREG(entry.st_mode or 0):
                    with sftp.open(path, "rb") as handle:
                        found[path[len(root) + 1 :]] = handle.read()

        walk(root)
        sftp.close()
    finally:
        ssh.close()
    return found


def test_restored_mailbox_is_byte_identical(mailbox: dict[str, bytes]) -> None:
    """`unops backup restore` brings back every message of a mailbox with exactly its bytes."""
    record = client.restore("mail1", MAILBOX, RESTORE_TO)
    assert record.ok, record.detail
    assert record.kind == "restore" and record.snapshot
    restored = _read_tree("mail1", RESTORE_TO + MAILBOX)
    assert sorted(restored) == sorted(mailbox)
    for relative, data in mailbox.items():
        assert hashlib.sha256(restored[relative]).hexdigest() == hashlib.sha256(data).hexdigest()
    assert record.files == len(mailbox)
    assert record.bytes == sum(len(data) for data in mailbox.values())


def test_restore_over_live_data_is_refused(mailbox: dict[str, bytes]) -> None:
    """A restore whose target is the live mailbox is refused, recorded, and changes nothing."""
    before = _read_tree("mail1", MAILBOX)
    record = client.restore("mail1", MAILBOX, "/var/vmail")
    assert (record.result, record.exit_code) == ("failed", 2)
    assert "overlaps the live data" in record.detail
    assert _read_tree("mail1", MAILBOX) == before


def test_drill_finds_the_same_messages_and_records_it(mailbox: dict[str, bytes]) -> None:
    """A drill restores the latest snapshot, finds every message identical, and says so."""
    record = client.drill("mail1")
    assert record.ok, record.detail
    count, _, where = record.detail.partition(" messages identical in ")
    assert where == plan.MAIL_DIR, record.detail
    assert int(count) >= len(mailbox)
    last = client.fetch_records("mail1").records[-1]
    assert (last.kind, last.result, last.snapshot) == ("drill", "ok", record.snapshot)
    leftovers = run("mail1", ["find", plan.SCRATCH_DIR, "-mindepth", "1"], check=True)
    assert leftovers.stdout == "", "the drill left its scratch copy behind"


def test_drill_reports_a_message_that_differs(mailbox: dict[str, bytes]) -> None:
    """A message whose bytes no longer match the snapshot makes the drill fail and name it;
    with the bytes put back, the next drill passes."""
    name = "Maildir/cur/1764720001.M2P100.mail1:2,RS"
    path = f"{MAILBOX}/{name}"
    run("mail1", f"printf 'X' | dd of={shlex.quote(path)} bs=1 seek=5 conv=notrunc", check=True)
    try:
        record = client.drill("mail1")
    finally:
        original = shlex.quote(mailbox[name][5:6].decode("ascii"))
        run(
            "mail1",
            f"printf {original} | dd of={shlex.quote(path)} bs=1 seek=5 conv=notrunc",
            check=True,
        )
    assert (record.result, record.exit_code) == ("failed", 1)
    assert "1764720001.M2P100.mail1" in record.detail and "differs" in record.detail
    repaired = client.drill("mail1")
    assert repaired.ok, repaired.detail


def test_directory_drill_finds_the_same_entries(lab: object) -> None:
    """dir1's backup holds a slapcat dump whose entries match the running directory's."""
    deploy_backup(["backup1", "dir1"])
    backup = client.run_now("dir1", "backup")
    assert backup.ok, backup.detail
    record = client.drill("dir1")
    assert record.ok, record.detail
    assert "directory entries identical" in record.detail
    count = int(record.detail.split(" directory entries")[0].split("; ")[-1])
    assert count > 0
