"""Running the control machine's tools (ip, nft, mount, debootstrap) with clear failures."""

from __future__ import annotations

import logging
import subprocess
from collections.abc import Sequence

from unops.errors import LabError

log = logging.getLogger(__name__)


def run(
    command: Sequence[str],
    *,
    check: bool = True,
    input_text: str | None = None,
    timeout: float | None = 600,
) -> subprocess.CompletedProcess[str]:
    """Run `command` (a list, never a shell line); on failure raise LabError with its output."""
    log.debug("running %s", " ".join(command))
    try:
        result = subprocess.run(
            list(command),
            input=input_text,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except FileNotFoundError as exc:
        raise LabError(
            f"{command[0]} is not installed on this machine; run `make host-packages`"
        ) from exc
    except subprocess.TimeoutExpired as exc:
        raise LabError(f"`{' '.join(command)}` did not finish within {timeout} s") from exc
    if check and result.returncode != 0:
        detail = (result.stderr or result.stdout).strip()
        raise LabError(f"`{' '.join(command)}` failed with status {result.returncode}: {detail}")
    return result
