"""Tests of pipeline.plan: what is stale and why, and which stages a command acts on."""
