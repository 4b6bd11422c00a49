"""Tests of pipeline.core: hashes, the stat memo, the lock file, settings, YAML."""
