"""Tests of pipeline.experiments: `run`, `--param`/`--sweep`, workspaces, `checkout RUN`."""
