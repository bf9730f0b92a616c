"""The lab's smoke deploy: one folder, one file and one package, to prove a deploy converges.

    .venv/bin/pyinfra -y inventory/lab.py deploys/lab_smoke.py --limit img1

Run twice, the second run must change nothing (tests/lab/test_lab.py does exactly that).
"""

from io import StringIO

from pyinfra.operations import apt, files

# Where the smoke deploy leaves its mark on the host.
smoke_dir = "/srv/unops-smoke"
# A small package with no dependencies beyond libc, so the run stays short.
smoke_package = "tree"

files.directory(
    name=f"Create {smoke_dir}",
    path=smoke_dir,
    mode="755",
)

files.put(
    name=f"Write {smoke_dir}/README",
    src=StringIO("Written by deploys/lab_smoke.py: the lab's proof that a deploy converges.\n"),
    dest=f"{smoke_dir}/README",
    mode="644",
)

apt.packages(
    name=f"Install {smoke_package}",
    packages=[smoke_package],
    update=True,
    # Refresh the package lists at most once an hour: a fresh cache is no change.
    cache_time=3600,
    no_recommends=True,
)
