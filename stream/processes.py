"""What every helper process of a worker (snapshot builders, the scorer) runs first."""

from __future__ import annotations

import os
import threading
import time

PARENT_CHECK_S = 1.0


def exit_with_parent(parent: int) -> None:
    """End this process within ``PARENT_CHECK_S`` of the death of ``parent`` (the worker's
    pid, passed in: it may die before this runs), a ``kill -9`` included: a pool's queues
    never report it to the process reading them."""
    if os.getppid() != parent:
        os._exit(0)

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(PARENT_CHECK_S)
        os._exit(0)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()
