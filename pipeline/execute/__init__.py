"""Step ③, execute: walk a plan, run or restore each stage, and record the run.

`orchestrate.py` is the entry (one recorded execution); `scheduler.py` runs ready stages in
parallel; `command.py` runs one command in its own process group; `outputs.py` stores a stage's
outputs and restores remembered runs; `projectlock.py` keeps one `repro` per project.
"""
