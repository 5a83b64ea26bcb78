"""Developer tools, not imported by the worker or the CLI: the live demo, the benchmarks, the
failover and soak runs, and the helpers that start a local broker and worker processes."""
