"""The dashboard page's files (``static/``: plain HTML, CSS and hand-written SVG, no CDN),
shipped in the wheel and served under ``/static/``."""

from pathlib import Path

STATIC_DIR = Path(__file__).resolve().parent / "static"


def page_weight() -> dict[str, int]:
    """Bytes of each file of the dashboard page."""
    return {p.name: p.stat().st_size for p in sorted(STATIC_DIR.iterdir()) if p.is_file()}
