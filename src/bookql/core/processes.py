"""Whether a process still runs: how work left behind by a dead process is recognised."""

from __future__ import annotations

import os


def process_alive(pid: int) -> bool:
    """True while ``pid`` exists on this host (signal 0 checks without signalling)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, and belongs to someone else
    return True
