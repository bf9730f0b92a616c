"""Backup and restore throughput of a mail server: restic (the deployed setup) next to tar.

    .venv/bin/python benchmarks/backup_throughput.py [--host mail1] [--megabytes 256]

On the host, in one run over the same data: a Maildir of generated messages (mostly small
text messages, some with base64 attachments, as mail is), then
  - restic backup of it to the backup host (SFTP, encrypted: what the daily timer does),
  - restic restore of that snapshot to a scratch folder on the host,
  - tar -c of the same folder to a local file, and tar -x of it to scratch.
tar is the floor: no encryption, no network, no deduplication. Both read the data from the page
cache (the host was just written); the figures say how fast each path is, not the disks.
Prints one line per step and a JSON summary; the test data and copies are removed at the end.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import textwrap

from unops.backup import plan
from unops.remote import run

BENCH_DIR = "/var/vmail/bench.invalid"
SCRATCH = f"{plan.SCRATCH_DIR}/bench"
TAR_FILE = f"{plan.SCRATCH_DIR}/bench.tar"

# Runs on the host (Python 3, standard library): makes the data, times each step, prints JSON.
_ON_HOST = textwrap.dedent(
    """\
    import base64, json, os, random, shutil, subprocess, sys, time
    bench, scratch, tar_file, megabytes = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    config = json.load(open("{config}"))
    rng = random.Random(20261203)
    words = [w.encode() for w in "the mission office meeting report budget visa agenda".split()]

    def message(n):
        head = f"From: a{{n}}@bench.invalid\\r\\nSubject: message {{n}}\\r\\n\\r\\n".encode()
        if n % 20 == 0:  # one in twenty carries an attachment of 0.5 to 3 MB
            raw = os.urandom(rng.randint(512 * 1024, 3 * 1024 * 1024))
            return head + base64.encodebytes(raw).replace(b"\\n", b"\\r\\n")
        body = b" ".join(rng.choice(words) for _ in range(rng.randint(200, 6000)))
        return head + body + b"\\r\\n"

    shutil.rmtree(bench, ignore_errors=True)
    folder = os.path.join(bench, "user", "Maildir", "cur")
    os.makedirs(folder)
    total = n = 0
    while total < megabytes * 1024 * 1024:
        data = message(n)
        with open(os.path.join(folder, f"{{1764720000 + n}}.M{{n}}P1.bench:2,S"), "wb") as f:
            f.write(data)
        total += len(data)
        n += 1
    os.sync()

    env = dict(os.environ, RESTIC_REPOSITORY=config["repository"],
               RESTIC_PASSWORD_FILE=config["password_file"], RESTIC_CACHE_DIR=config["cache_dir"])
    restic = ["restic", *config["restic_options"]]

    def timed(command, **kw):
        start = time.monotonic()
        done = subprocess.run(command, capture_output=True, text=True, env=env, **kw)
        if done.returncode != 0:
            sys.exit(f"{{command[0]}} failed: {{done.stderr.strip()[-300:]}}")
        return time.monotonic() - start, done.stdout

    results = {{"bytes": total, "messages": n}}
    seconds, out = timed([*restic, "backup", "--json", "--host", config["host"], bench])
    summary = [json.loads(l) for l in out.splitlines() if '"summary"' in l][-1]
    snapshot = summary["snapshot_id"]
    results["restic_backup"] = seconds
    results["restic_data_added"] = summary["data_added"]
    shutil.rmtree(scratch, ignore_errors=True)
    results["restic_restore"], _ = timed([*restic, "restore", snapshot, "--target", scratch])
    shutil.rmtree(scratch, ignore_errors=True)
    results["tar_create"], _ = timed(["tar", "-cf", tar_file, "-C", bench, "."])
    os.makedirs(scratch)
    results["tar_extract"], _ = timed(["tar", "-xf", tar_file, "-C", scratch])
    timed([*restic, "forget", snapshot])
    for path in (bench, scratch):
        shutil.rmtree(path, ignore_errors=True)
    os.remove(tar_file)
    print(json.dumps(results))
    """
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="mail1", help="a lab mail server with backups deployed")
    parser.add_argument("--megabytes", type=int, default=256, help="size of the test Maildir")
    args = parser.parse_args()

    program = _ON_HOST.format(config=plan.CONFIG_FILE)
    command = shlex.join(
        ["python3", "-c", program, BENCH_DIR, SCRATCH, TAR_FILE, str(args.megabytes)]
    )
    done = run(args.host, command, timeout=3600)
    if not done.ok:
        print(f"benchmark failed on {args.host}: {done.stderr.strip()}", file=sys.stderr)
        return 1
    result = json.loads(done.stdout.strip().splitlines()[-1])
    mib = result["bytes"] / 2**20
    print(f"{args.host}: {result['messages']} messages, {mib:.1f} MiB in one Maildir")
    for step in ("restic_backup", "restic_restore", "tar_create", "tar_extract"):
        seconds = result[step]
        print(f"  {step:<15} {seconds:7.2f} s  {mib / seconds:8.1f} MiB/s")
    print(f"  restic added {result['restic_data_added'] / 2**20:.1f} MiB to the repository")
    print(json.dumps({"host": args.host, **result}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
