"""Tests of pipeline.runs: the run store, recording, compare, diffs and lineage."""
