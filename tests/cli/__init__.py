"""Tests of pipeline.cli: the command line in a subprocess, by command group."""
