"""``python -m stream.dev.settings_table``: rewrite the README's configuration table from the
settings' declarations (``stream.settings``); ``tests/unit/test_settings.py`` fails until the
README and the declarations agree."""

from __future__ import annotations

import sys
from pathlib import Path

from stream.envvars import markdown_table
from stream.settings import REPO_ROOT, Settings

BEGIN = "<!-- settings-table: python -m stream.dev.settings_table -->\n"
END = "<!-- /settings-table -->\n"


def readme_table(readme: str) -> str:
    """The table between the README's settings-table markers."""
    start = readme.index(BEGIN) + len(BEGIN)
    return readme[start : readme.index(END, start)]


def with_table(readme: str, table: str) -> str:
    """``readme`` with ``table`` between its settings-table markers."""
    start = readme.index(BEGIN) + len(BEGIN)
    return readme[:start] + table + readme[readme.index(END, start) :]


def main(readme: Path = REPO_ROOT / "README.md") -> int:
    text = readme.read_text(encoding="utf-8")
    readme.write_text(with_table(text, markdown_table(Settings)), encoding="utf-8")
    print(f"wrote the settings table of {readme}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
