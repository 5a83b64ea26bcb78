"""``interest-tracker <command>``: worker, produce, subscribe, forget, evaluate, train, plot,
catalog, prior; one module a sub-command, the shared error policy in :mod:`stream.cli.common`.

Every command documents itself with ``--help`` and exits non-zero with a one-line reason on
bad arguments (2) or a failed run, such as an unreachable broker (1). The entry point is
:func:`stream.cli.entry.main`.
"""
