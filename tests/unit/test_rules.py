"""The alert rules: promtool accepts them, their unit tests pass, and each is fit for on-call."""

from __future__ import annotations

import shutil
import subprocess
from typing import Any

import jinja2
import pytest
import yaml

from unops import PROJECT_ROOT

MONITORS = PROJECT_ROOT / "monitors"
RULE_FILES = sorted((MONITORS / "rules").glob("*.yml"))
TEST_FILES = sorted((MONITORS / "tests").glob("*.yml"))
RUNBOOK_BASE = "https://git.ict.example/ict/unops/-/blob/main/monitors/runbooks/"
URGENCIES = {"page", "office_hours", "deadman"}


def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.fail("promtool is missing: install Debian's prometheus package (make host-packages)")
    return path


def rules() -> list[dict[str, Any]]:
    found = []
    for path in RULE_FILES:
        for group in yaml.safe_load(path.read_text())["groups"]:
            found += [rule for rule in group["rules"] if "alert" in rule]
    return found


def test_rule_files_exist_for_every_issue_area() -> None:
    """Services, mail, directory, Wi-Fi and backups each have a rule file and a test file."""
    names = {p.stem for p in RULE_FILES}
    assert names == {"services", "mail", "directory", "wifi", "backups"}
    assert {p.stem for p in TEST_FILES} == names


def test_promtool_check_rules_accepts_every_file() -> None:
    """promtool check rules finds no error in any rule file."""
    result = subprocess.run(
        [promtool(), "check", "rules", *map(str, RULE_FILES)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_unit_tests_pass() -> None:
    """Every promtool rule test (firing and not firing) passes."""
    result = subprocess.run(
        [promtool(), "test", "rules", *map(str, TEST_FILES)],
        capture_output=True,
        text=True,
        cwd=MONITORS / "tests",
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("rule", rules(), ids=lambda rule: rule["alert"])
def test_rule_has_runbook_severity_urgency_and_summary(rule: dict[str, Any]) -> None:
    """Each alert names its runbook (an existing file), how bad it is, who acts, and a summary."""
    name = rule["alert"]
    annotations = rule.get("annotations", {})
    assert annotations.get("runbook_url") == f"{RUNBOOK_BASE}{name}.md"
    runbook = MONITORS / "runbooks" / f"{name}.md"
    assert runbook.is_file(), f"{runbook} is missing"
    assert runbook.read_text().startswith(f"# {name}\n")
    assert rule["labels"]["severity"] in {"critical", "warning", "none"}
    assert rule["labels"]["urgency"] in URGENCIES
    assert annotations.get("summary")


def test_every_alert_is_tested_firing_and_not_firing() -> None:
    """Each alert has a promtool case in which it fires and one in which it does not."""
    firing: set[str] = set()
    quiet: set[str] = set()
    for path in TEST_FILES:
        for test in yaml.safe_load(path.read_text())["tests"]:
            for case in test.get("alert_rule_test", []):
                (firing if case.get("exp_alerts") else quiet).add(case["alertname"])
    names = {rule["alert"] for rule in rules()}
    # The watchdog fires always, by design: it has no quiet case.
    assert names - firing == set()
    assert names - {"Watchdog"} - quiet == set()


def test_no_runbook_without_an_alert() -> None:
    """Every runbook belongs to an existing alert, so none is left behind after a rename."""
    names = {rule["alert"] for rule in rules()}
    assert {p.stem for p in (MONITORS / "runbooks").glob("*.md")} == names


def render_alertmanager() -> dict[str, Any]:
    template = jinja2.Template((MONITORS / "alertmanager.yml.j2").read_text())
    text = template.render(
        smarthost="127.0.0.1:25",
        require_tls="false",
        sender="alertmanager@ict.example",
        on_call="oncall@ict.example",
        service_desk="servicedesk@ict.example",
        deadman_url="http://127.0.0.1:9999/",
        timezone="America/New_York",
    )
    loaded: dict[str, Any] = yaml.safe_load(text)
    return loaded


def test_pages_go_to_on_call_and_the_rest_to_the_service_desk_in_office_hours() -> None:
    """Routing by urgency: page to on-call at any hour, office_hours muted outside office hours."""
    config = render_alertmanager()
    routes = {tuple(r["matchers"]): r for r in config["route"]["routes"]}
    page = routes[('urgency="page"',)]
    assert page["receiver"] == "on-call" and "active_time_intervals" not in page
    office = routes[('urgency="office_hours"',)]
    assert office["receiver"] == "service-desk"
    assert office["active_time_intervals"] == ["office-hours"]
    assert routes[('urgency="deadman"',)]["receiver"] == "deadmans-switch"
    receivers = {r["name"]: r for r in config["receivers"]}
    assert receivers["on-call"]["email_configs"][0]["to"] == "oncall@ict.example"
    used = {label for rule in rules() for label in [rule["labels"]["urgency"]]}
    assert used <= {m.split('"')[1] for (m,) in routes}


def test_alertmanager_mails_through_the_local_null_client_which_falls_back() -> None:
    """Alertmanager hands mail to Postfix on loopback; that Postfix relays to mail1 and falls
    back to mail2..4 over verified TLS, so a page about one mail server still leaves."""
    assert render_alertmanager()["global"]["smtp_smarthost"] == "127.0.0.1:25"
    source = PROJECT_ROOT / "deploys/templates/alertmanager/etc/postfix/main.cf.j2"
    relays = [f"mail{n}.ict.example" for n in (1, 2, 3, 4)]
    text = jinja2.Template(source.read_text()).render(fqdn="mon1.ict.example", relays=relays)
    settings = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.partition("=")
            settings[name.strip()] = value.strip()
    assert settings["relayhost"] == "[mail1.ict.example]:25"
    assert settings["smtp_fallback_relay"].split() == [f"[{r}]:25" for r in relays[1:]]
    assert settings["smtp_tls_security_level"] == "secure"
    assert settings["inet_interfaces"] == "loopback-only"
    assert settings["mydestination"] == ""
