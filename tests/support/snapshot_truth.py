"""The bundled catalogue read straight from the snapshot file: the tests' independent truth."""

from __future__ import annotations

import gzip
import json
from functools import cache
from pathlib import Path
from typing import Any

SNAPSHOT = Path(__file__).parents[2] / "src" / "bookql" / "catalog" / "data" / "catalogue.jsonl.gz"


@cache
def snapshot_books() -> tuple[dict[str, Any], ...]:
    with gzip.open(SNAPSHOT, "rt", encoding="utf-8") as lines:
        return tuple(json.loads(line) for line in lines if line.strip())
