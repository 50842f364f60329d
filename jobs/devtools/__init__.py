"""Dev tooling, not the pipeline: the synthetic landing data generator (`generate/`) and the benchmark
(`bench.py`). The pipeline never imports it (pyproject.toml [tool.importlinter], contract dev-tooling-apart); the
crash drill's fault points stay in jobs/faults.py because the pipeline calls them."""
