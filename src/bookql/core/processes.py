"""Whether a process still runs: how work left behind by a dead process is recognised."""

from __future__ import annotations

import os
from pathlib import Path


def process_alive(pid: int) -> bool:
    """True while ``pid`` runs on this host (signal 0 checks without signalling).

    A zombie (exited, not yet reaped by a parent that may itself be gone) does not run.
    """
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, and belongs to someone else
    return not _zombie(pid)


def _zombie(pid: int) -> bool:
    """Linux says so in ``/proc/PID/stat`` (the state follows the parenthesised name)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False  # no procfs here: trust the signal
    fields = stat.rpartition(")")[2].split()
    return bool(fields) and fields[0] == "Z"
