"""Offline evaluation: the replay protocol (``evaluate``), the item-level protocol
(``item_eval``), the baselines and the metrics they report."""
