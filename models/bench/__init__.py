"""Developer benchmarks of the sequence model (scoring and training throughput); run as
``python -m models.bench.scorer`` / ``python -m models.bench.train``. Not imported by the
product."""
