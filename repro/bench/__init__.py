"""Benchmarks that print figures (docs/benchmarks.md): ``cpu`` (``python -m repro.bench``, ``make
bench``: hashing, no-op rerun, tiny wall time, generation, merge, jobs), ``merge``, and the GPU
ones ``train_gpu`` and ``eval_gpu`` (``make bench-gpu``). Targets are checked here, never by
timed tests."""
