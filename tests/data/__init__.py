"""Tests of pipeline.data: `add`, `checkout`, `gc` and the managed .gitignore block."""
