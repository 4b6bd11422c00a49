"""`pipeline.track` end to end: real `pipeline repro` subprocesses logging into their runs.

Stages run `/usr/bin/python3`, a bare interpreter with none of the tool's dependencies: the
API must work there through the PYTHONPATH shim alone. A Go logger is not tested: `go` is not
installed here; the bash test covers "any language appending JSON lines".
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from tests.conftest import Project, cli_env, wait_gone

PY = "/usr/bin/python3" if Path("/usr/bin/python3").exists() else sys.executable

TRAIN = """\
from pipeline import track
track.log_params({"lr": 0.1, "layers": 3})
for step in range(100):
    track.log_metrics({f"m{k}": step + k / 100 for k in range(100)}, step=step)
track.set_tag("kind", "demo")
open("model.txt", "w").write("m")
track.log_artifact("model.txt")
"""


def _json(project: Project, *args: str) -> Any:
    done = project.cli(*args, "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def _stages(project: Project, text: str) -> None:
    project.write("dvc.yaml", text)
    project.commit("dvc.yaml")


def test_ten_thousand_points_latest_values_and_history(p: Project) -> None:
    p.write("train.py", TRAIN)
    _stages(
        p,
        f"stages:\n  train:\n    cmd: {PY} train.py\n    deps: [train.py]\n    outs: [model.txt]\n",
    )
    done = p.cli("repro")
    assert done.returncode == 0, done.stderr
    shown = _json(p, "runs", "show", "latest")
    assert shown["metrics"]["m5"] == 99.05  # the latest step's value
    assert shown["logged"]["params"] == {"layers": 3, "lr": 0.1}
    assert sum(shown["logged"]["metric_points"].values()) == 10_000
    assert shown["logged"]["tags"] == {"train": {"kind": "demo"}}
    assert shown["logged"]["artifacts"][0]["path"] == "model.txt"
    assert shown["logged"]["artifacts"][0]["hash"]
    compared = _json(p, "compare", "-a")
    assert compared[0]["metrics"]["m99"] == 99.99
    history = _json(p, "runs", "metrics", "latest", "m7")["metrics"]
    assert [pt[0] for pt in history[0]["points"]] == list(range(100))
    assert history[0]["points"][3][2] == 3.07
    assert not (p.root / ".pipeline" / "tmp" / "track" / shown["id"]).exists()  # ingested


def test_killed_run_keeps_its_points_and_is_interrupted(p: Project) -> None:
    p.write(
        "train.py",
        "import os, time\nfrom pipeline import track\n"
        "for i in range(50):\n    track.log_metric('loss', 1 / (i + 1), step=i)\n"
        "open('../stage.pid', 'w').write(str(os.getpid()))\n"
        "os.replace('../stage.pid', '../ready')\n"
        "time.sleep(600)\n",
    )
    _stages(p, f"stages:\n  train:\n    cmd: {PY} train.py\n    deps: [train.py]\n")
    tool = subprocess.Popen(
        [sys.executable, "-m", "pipeline", "-C", str(p.root), "repro"],
        cwd=p.root,
        env=cli_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    ready = p.root.parent / "ready"
    try:
        while not ready.exists():  # the stage logged its 50 points, then said so
            assert tool.poll() is None, "pipeline repro ended before the stage was ready"
            time.sleep(0.02)
        os.killpg(tool.pid, signal.SIGKILL)
        tool.wait()
        shown = _json(p, "runs", "show", "latest")
        assert shown["status"] == "interrupted"
        assert shown["logged"]["metric_points"] == {"loss": 50}
        assert shown["metrics"]["loss"] == 1 / 50
    finally:
        stage = int(ready.read_text()) if ready.exists() else None
        if stage is not None and not wait_gone(stage, 10):  # the watchdog stops it; else we do
            os.kill(stage, signal.SIGKILL)


def test_bash_writing_json_lines_is_ingested_the_same_way(p: Project) -> None:
    p.write(
        "log.sh",
        "for i in 0 1 2; do\n"
        '  echo "{\\"type\\":\\"metric\\",\\"key\\":\\"acc\\",\\"value\\":0.$i,\\"step\\":$i}"'
        ' >> "$PIPELINE_TRACK_FILE"\n'
        "done\n"
        'echo \'{"type":"param","key":"optimizer","value":"sgd"}\' >> "$PIPELINE_TRACK_FILE"\n'
        "echo 'not json at all' >> \"$PIPELINE_TRACK_FILE\"\n"
        'echo "$PIPELINE_RUN_ID $PIPELINE_STAGE" > ids.txt\n',
    )
    _stages(p, "stages:\n  sh:\n    cmd: bash log.sh\n    deps: [log.sh]\n    outs: [ids.txt]\n")
    assert p.cli("repro").returncode == 0
    shown = _json(p, "runs", "show", "latest")
    assert shown["metrics"]["acc"] == 0.2
    assert shown["logged"]["params"] == {"optimizer": "sgd"}
    assert shown["logged"]["errors"][0]["message"].startswith("1 unreadable line")
    assert p.read("ids.txt").split() == [shown["id"], "sh"]


def test_a_conflicting_param_is_an_error_of_the_stage(p: Project) -> None:
    line = 'echo \'{{"type":"param","key":"lr","value":{v}}}\' >> "$PIPELINE_TRACK_FILE"'
    _stages(
        p,
        "stages:\n"
        f"  a:\n    cmd: {line.format(v=0.1)} && touch a.txt\n    outs: [a.txt]\n"
        f"  b:\n    cmd: {line.format(v=0.2)} && touch b.txt\n"
        "    deps: [a.txt]\n    outs: [b.txt]\n",
    )
    done = p.cli("repro")
    assert done.returncode == 0, done.stderr
    assert "param 'lr' logged as 0.2, but it is 0.1 in this run" in done.stderr
    shown = _json(p, "runs", "show", "latest")
    assert shown["logged"]["params"] == {"lr": 0.1}  # written once: the first value stays
    errors = {s["stage"]: s["error"] for s in shown["stages"]}
    assert "param 'lr'" in errors["b"] and errors["a"] is None


def test_logging_never_changes_the_fingerprint(p: Project) -> None:
    p.write("t.py", "import time\nfrom pipeline import track\ntrack.log_metric('t', time.time())\n")
    _stages(p, f"stages:\n  t:\n    cmd: {PY} t.py\n    deps: [t.py]\n")
    assert p.cli("repro").returncode == 0
    first = p.lock()["stages"]["t"]
    assert p.cli("repro", "-f").returncode == 0
    second = p.lock()["stages"]["t"]
    assert first == second  # other values logged, same lock entry (fingerprint included)


def test_a_run_cache_restore_copies_the_logged_values(p: Project) -> None:
    p.write("params.yaml", "x: 1\n")
    p.write(
        "t.py",
        "import json\nfrom pipeline import track\n"
        "x = int(open('params.yaml').read().split(':')[1])\n"
        "for s in range(5):\n    track.log_metric('score', x * 10 + s, step=s)\n"
        "track.log_param('x_seen', x)\nopen('out.txt', 'w').write(str(x))\n",
    )
    _stages(
        p,
        f"stages:\n  t:\n    cmd: {PY} t.py\n    deps: [t.py]\n"
        "    params: [x]\n    outs: [out.txt]\n",
    )
    assert p.cli("repro").returncode == 0
    p.write("params.yaml", "x: 2\n")
    assert p.cli("repro").returncode == 0
    p.write("params.yaml", "x: 1\n")
    assert p.cli("repro").returncode == 0
    shown = _json(p, "runs", "show", "latest")
    assert shown["stages"][0]["outcome"] == "restored"
    assert shown["metrics"]["score"] == 14
    assert shown["logged"]["params"]["x_seen"] == 1
    assert shown["logged"]["metric_points"] == {"score": 5}


def test_an_up_to_date_point_shows_the_values_that_made_its_outputs(p: Project) -> None:
    p.write("params.yaml", "x: 3\n")
    p.write(
        "t.py",
        "from pipeline import track\nx = int(open('params.yaml').read().split(':')[1])\n"
        "track.log_metric('score', x, step=0)\nopen('out.txt', 'w').write(str(x))\n",
    )
    manifest = "stages:\n  t:\n    cmd: {} t.py\n    deps: [t.py]\n    params: [x]\n"
    _stages(p, manifest.format(PY) + "    outs: [out.txt]\n")
    assert p.cli("repro").returncode == 0
    assert p.cli("run", "--name", "same").returncode == 0  # the workspace's params: up to date
    shown = _json(p, "runs", "show", "same")
    assert shown["stages"][0]["outcome"] == "up to date"
    assert shown["metrics"]["score"] == 3
    assert shown["logged"]["metric_points"] == {"score": 1}


def test_a_plain_script_gets_a_run_of_its_own(p: Project) -> None:
    _stages(p, "stages:\n  noop:\n    cmd: echo\n")
    p.write("s.py", "from pipeline import track\ntrack.log_metric('loss', 0.5, step=1)\n")
    env = {k: v for k, v in cli_env().items() if not k.startswith("PIPELINE_")}
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[2])
    done = subprocess.run([PY, "s.py"], cwd=p.root, env=env, capture_output=True, check=False)
    assert done.returncode == 0, done.stderr
    found = _json(p, "runs")
    assert [r["kind"] for r in found] == ["script"]
    assert found[0]["status"] == "succeeded"
    shown = _json(p, "runs", "show", found[0]["id"])
    assert shown["metrics"] == {"loss": 0.5}
