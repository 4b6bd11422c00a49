"""Tests of pipeline.execute: commands, the scheduler, one repro per project."""
