"""The Grafana dashboards: committed as generated, and every query valid PromQL on real metrics."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from unops.exporter import dashboards

# Every metric name the exporter's collectors can export (read from their sources).
EXPORTER_SOURCES = Path(dashboards.__file__).parent


def exported_names() -> set[str]:
    names: set[str] = set()
    for source in EXPORTER_SOURCES.glob("*.py"):
        names |= set(re.findall(r'"(unops_[a-z_]+)"', source.read_text()))
    return names


@pytest.mark.parametrize("uid", sorted(dashboards.DASHBOARDS))
def test_committed_dashboard_is_what_the_generator_makes(uid: str) -> None:
    """monitors/dashboards/<uid>.json equals the generated JSON (regenerate with the module)."""
    path = dashboards.DASHBOARDS_DIR / f"{uid}.json"
    assert path.is_file(), f"run: python -m unops.exporter.dashboards ({path} is missing)"
    assert path.read_text() == dashboards.render(uid), (
        f"{path} is stale; run: python -m unops.exporter.dashboards"
    )


@pytest.mark.parametrize("uid", sorted(dashboards.DASHBOARDS))
def test_every_panel_queries_a_metric_the_exporter_exports(uid: str) -> None:
    """No panel reads a metric name that no collector exports (a typo would show no data)."""
    known = exported_names()
    for panel in json.loads(dashboards.render(uid))["panels"]:
        used = set(re.findall(r"unops_[a-z_]+", panel["targets"][0]["expr"]))
        assert used and used <= known, (panel["title"], used - known)


def test_every_query_parses_as_promql(tmp_path: Path) -> None:
    """promtool accepts every panel's query (checked as a recording rule)."""
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool is missing: install Debian's prometheus package (make host-packages)")
    rules = [
        {"record": f"dashboard:panel_{n}", "expr": panel.expr}
        for n, panel in enumerate(
            panel for _, panels in dashboards.DASHBOARDS.values() for panel in panels
        )
    ]
    path = tmp_path / "panels.yml"
    # JSON is valid YAML, which promtool reads.
    path.write_text(json.dumps({"groups": [{"name": "panels", "rules": rules}]}))
    result = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
