"""Tests of pipeline.env: specs, interpreters, digests, building, locking, managing envs."""
