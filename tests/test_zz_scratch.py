import os, json, subprocess, sys
from pathlib import Path
import pytest
from conftest import Project, ran, cli_env
from test_runs_experiments import setup, run, three_stages, PARAMS_TEXT, leftovers, snapshot
from pipeline import api

@pytest.fixture
def three(project):
    return setup(project)

def test_abs_param(three, tmp_path):
    before = three.read("params.yaml")
    exp = run(three, params=(f"{three.root}/params.yaml:train.lr=0.5",))
    print([ (p.error, p.succeeded) for p in exp.points])
    print("after:", three.read("params.yaml"))
    print(three.git("status", "--porcelain"))
    assert three.read("params.yaml") == before

def test_outside_param(three, tmp_path):
    (three.root.parent / "outside.yaml").write_text("x: 1\n")
    try:
        exp = run(three, params=("../outside.yaml:x=5",))
        print([ (p.error, p.succeeded) for p in exp.points])
    except Exception as e:
        print("EXC", type(e), e)
    print((three.root.parent / "outside.yaml").read_text())
