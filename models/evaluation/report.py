"""What the evaluation reports share: writing themselves as a JSON file."""

from __future__ import annotations

import json
from pathlib import Path


class JsonReport:
    """``write_json(path)`` for a report dataclass that has ``to_json() -> dict``."""

    def write_json(self, path: str | Path) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_json(), indent=2) + "\n")  # type: ignore[attr-defined]
