"""`python -m pipeline` runs the command line."""

from pipeline.cli.main import run

run()
