"""The production estate as a pyinfra inventory: `pyinfra inventory/production.py deploys/X.py`."""

from unops.inventory import groups as _groups

_fleet = _groups("production")

directory = _fleet["directory"]
mail = _fleet["mail"]
backup = _fleet["backup"]
monitoring = _fleet["monitoring"]
cms = _fleet["cms"]
access_point = _fleet["access_point"]
image_builder = _fleet["image_builder"]
