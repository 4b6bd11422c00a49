"""Tests of pipeline.store: objects, the run-cache, restores and link strategies."""
