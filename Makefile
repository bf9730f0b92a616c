# Two entry points: `make demo` (the main job on the lab) and `make test` (everything proven).
# Each installs what it needs itself: Debian packages on this machine and a virtual environment.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Debian packages the control machine needs: the lab (debootstrap, nspawn, nftables, iproute2),
# promtool for the alert rules' tests, restic for the backup tests' own checks.
HOST_PACKAGES := debootstrap systemd-container nftables iproute2 prometheus restic openssh-client ldap-utils prometheus-blackbox-exporter prometheus-snmp-exporter libpango-1.0-0 libpangoft2-1.0-0 fonts-dejavu-core

.PHONY: help setup host-packages venv lint test test-unit test-lab demo lab-up lab-down clean

help:  ## Show the targets.
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

setup: host-packages venv  ## Install the Debian packages and the virtual environment.

host-packages:  ## Install the Debian packages the control machine needs (needs root).
	@missing=$$(for p in $(HOST_PACKAGES); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null \
	  | grep -q '^install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages: $$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	fi

$(BIN)/unops: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	@touch $@

venv: $(BIN)/unops  ## Create the virtual environment with unops and its test tools.

lint: venv  ## ruff (format and lint) and mypy.
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/mypy

test-unit: venv  ## Unit tests only: no network, no root.
	$(BIN)/pytest -m 'not lab'

test-lab: setup  ## Lab tests only: boots the rehearsal fleet (needs root).
	$(BIN)/pytest -m lab

test: setup lint  ## Everything: lint, unit tests and lab tests, on the rehearsal fleet.
	$(BIN)/pytest

lab-up: setup  ## Boot the rehearsal fleet.
	$(BIN)/unops lab up

lab-down: venv  ## Stop the rehearsal fleet and remove all it made.
	$(BIN)/unops lab down

demo: setup  ## Check the estate, boot the lab, converge it, load the 792 mailboxes.
	$(BIN)/unops estate check
	$(BIN)/unops lab up
	$(BIN)/unops deploy --inventory lab
	$(BIN)/unops directory sync inventory/estate/mailboxes.csv --fleet lab

clean:  ## Remove the virtual environment and caches (not the lab's base image).
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache *.egg-info
