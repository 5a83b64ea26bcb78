"""JSON Schemas (draft 2020-12) of the wire formats, shipped with the package.

``event`` is what producers send, ``snapshot`` what the worker publishes (a user's snapshot or
a partition's population distribution), ``dlq`` a dead letter. They describe the data model:
msgpack and JSON messages decode to the same maps (a DLQ record's ``original`` bytes appear
base64-encoded in a JSON view). Byte limits are given as character limits (exact for ASCII).

>>> sorted(SCHEMAS)
['dlq', 'event', 'snapshot']
>>> load_schema("event")["required"]
['user_id', 'item_id', 'event_type', 'ts']
"""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

SCHEMAS = {
    "event": "event.schema.json",
    "snapshot": "snapshot.schema.json",
    "dlq": "dlq.schema.json",
}


def load_schema(name: str) -> dict[str, Any]:
    """The schema ``name`` (one of ``SCHEMAS``) as a dict."""
    if name not in SCHEMAS:
        raise ValueError(f"no schema {name!r}: one of {', '.join(sorted(SCHEMAS))}")
    return json.loads(resources.files(__name__).joinpath(SCHEMAS[name]).read_text("utf-8"))
