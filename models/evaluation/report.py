"""What the evaluation reports share: writing themselves as a JSON file."""

from __future__ import annotations

import json
from pathlib import Path


class JsonReport:
    """``write_json(path)`` for a report dataclass that has ``to_json() -> dict``.

    Examples
    --------
    >>> import tempfile
    >>> from models.evaluation.item_eval import evaluate_items
    >>> evs = [{"user_id": u, "item_id": i} for u in "xy" for i in "ab"]
    >>> path = Path(tempfile.mkdtemp()) / "new" / "items.json"
    >>> evaluate_items(evs, "toy").write_json(path)  # its folder is made too
    >>> [r["name"] for r in json.loads(path.read_text())["rows"]]
    ['popularity', 'transition']
    """

    def write_json(self, path: str | Path) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_json(), indent=2) + "\n")  # type: ignore[attr-defined]
