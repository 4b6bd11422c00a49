"""`pipeline model build`: the container build context, and proof that it serves by itself.

docker and podman are not installed where these tests run, so the image is never built here.
Instead the context's own command (the Dockerfile's CMD, from the context directory, with the
Dockerfile's PYTHONPATH) runs in a fresh venv that sees the tool env's third-party libraries but
not the tool itself: if the server needed a module of `pipeline` the context does not hold, it
would fail to start. It must answer /ping (through the Dockerfile's own HEALTHCHECK command) and
/invocations on loopback.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests import servekit
from tests.venvs import borrowing_venv

SERVING_CODE = {
    "pipeline/__init__.py",
    "pipeline/_version.py",
    "pipeline/errors.py",
    "pipeline/serve/__init__.py",
    "pipeline/serve/app.py",
    "pipeline/serve/openapi.py",
    "pipeline/serve/payload.py",
}


def _cli(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pipeline", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
        env=env,
        timeout=120,
    )


@pytest.fixture(scope="module")
def package(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A scikit-learn model package (ndarray sample), as a stage would save it."""
    from sklearn.datasets import load_wine
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    import pipeline.models

    features, labels = load_wine(return_X_y=True)
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(features, labels)
    path = tmp_path_factory.mktemp("pkg") / "wine"
    pipeline.models.save(model, path, sample=features[:5])
    return path


@pytest.fixture(scope="module")
def context(package: Path) -> Path:
    done = _cli("model", "build", str(package), "-o", "ctx", cwd=package.parent)
    assert done.returncode == 0, done.stderr
    assert "docker build -t wine:latest ctx" in done.stdout
    return package.parent / "ctx"


def test_context_holds_the_image_and_only_the_serving_code(context: Path, package: Path) -> None:
    files = {str(p.relative_to(context)) for p in context.rglob("*") if p.is_file()}
    top = {f for f in files if "/" not in f}
    assert top >= {"Dockerfile", "requirements.txt", ".dockerignore", "README.txt", "serve.py"}
    code = {f for f in files if f.startswith("pipeline/")}
    assert code >= SERVING_CODE
    assert {f.split("/")[1] for f in code if f.count("/") > 1} == {"core", "models", "serve"}
    assert "pipeline/serve/launch.py" not in code  # the tool's side of serving stays out
    for name in (p.name for p in package.iterdir()):
        assert (context / "model" / name).read_bytes() == (package / name).read_bytes()


def test_dockerfile_slim_non_root_model_last_healthcheck(context: Path) -> None:
    text = (context / "Dockerfile").read_text()
    major_minor = ".".join(map(str, sys.version_info[:2]))
    assert f"FROM python:{major_minor}-slim\n" in text
    lines = [line for line in text.splitlines() if line and not line.startswith("#")]
    steps = [line.split()[0] for line in lines if line[0].isupper()]
    assert steps.index("USER") > steps.index("RUN")  # installs as root, serves as `model`
    assert "USER model" in lines
    copies = [line for line in lines if line.startswith("COPY ")]
    assert copies[0].startswith("COPY requirements.txt")
    assert copies.index("COPY model/ /app/model/") > copies.index("COPY pipeline/ /app/pipeline/")
    install = lines.index("RUN pip install --no-cache-dir -r /app/requirements.txt")
    assert install < lines.index(copies[1])  # the code and the model come after the install
    assert "EXPOSE 8080" in lines
    assert "urllib.request" in _healthcheck(text)[-1] and "curl" not in text


def test_requirements_are_the_models_pins_and_the_servers(context: Path, package: Path) -> None:
    import importlib.metadata

    pins = (context / "requirements.txt").read_text().split()
    assert all(re.fullmatch(r"[a-z0-9][a-z0-9._-]*==\S+", p) for p in pins), pins
    model_pins = set((package / "requirements.txt").read_text().split())
    names = {p.split("==")[0] for p in pins}
    assert {p for p in model_pins if not p.startswith("pipeline==")} <= set(pins)
    assert "pipeline" not in names  # its serving code is copied, never installed
    for server in ("starlette", "uvicorn", "anyio", "h11"):
        assert f"{server}=={importlib.metadata.version(server)}" in pins


@pytest.mark.slow
def test_context_serves_with_only_its_own_code(context: Path, tmp_path: Path) -> None:
    python = _venv_without_pipeline(tmp_path / "venv")
    text = (context / "Dockerfile").read_text()
    cmd = json.loads(re.search(r"^CMD (\[.*\])$", text, re.MULTILINE).group(1))  # type: ignore[union-attr]
    assert cmd[0] == "python"
    port = servekit.free_port()
    env = {**_clean_env(), "PYTHONPATH": str(context), "HOST": "127.0.0.1", "PORT": str(port)}
    url = f"http://127.0.0.1:{port}"
    with servekit.server([str(python), *cmd[1:]], url, cwd=context, env=env):
        probe = _healthcheck(text)
        health = [str(python), *probe[1:]]
        health[-1] = health[-1].replace(":8080/", f":{port}/")
        assert subprocess.run(health, env=env, check=False, timeout=30).returncode == 0
        example = json.loads((context / "model" / "serving_input_example.json").read_text())
        status, answer = servekit.post_json(url + "/invocations", example)
    assert status == 200, answer
    assert len(answer["predictions"]) == len(example["inputs"])


def _healthcheck(dockerfile: str) -> list[str]:
    found = re.search(r"^HEALTHCHECK .*\\\n\s+CMD (\[.*\])$", dockerfile, re.MULTILINE)
    assert found, dockerfile
    return list(json.loads(found.group(1)))


def _venv_without_pipeline(venv: Path) -> Path:
    """A new venv that imports this env's libraries but not `pipeline` (its install is an
    editable finder in a .pth file, which a path listed in another .pth does not run)."""
    python = borrowing_venv(venv)
    found = subprocess.run(
        [str(python), "-c", "import pipeline"],
        capture_output=True,
        env=_clean_env(),
        cwd=venv,  # not the checkout: `-c` puts the working directory on the path
        check=False,
    )
    assert found.returncode != 0, "the venv must not see the tool's own package"
    return python


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "PIPELINE_"))}


def test_build_without_docker_or_podman_says_what_to_run(package: Path, tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"  # a PATH with git only: no docker, no podman
    bin_dir.mkdir()
    git = shutil.which("git")
    assert git is not None
    (bin_dir / "git").symlink_to(git)
    env = {**os.environ, "PATH": str(bin_dir)}
    done = _cli(
        "model",
        "build",
        str(package),
        "-o",
        str(tmp_path / "c"),
        "--build",
        "--tag",
        "wine:1",
        cwd=package.parent,
        env=env,
    )
    assert done.returncode == 3, done.stdout + done.stderr
    assert "neither docker nor podman is on PATH" in done.stderr
    assert f"docker build -t wine:1 {tmp_path / 'c'}" in done.stderr
    assert (tmp_path / "c" / "Dockerfile").is_file()  # the context is written all the same


def test_refuses_a_directory_it_did_not_write_and_replaces_its_own(
    package: Path, tmp_path: Path
) -> None:
    other = tmp_path / "notes"
    other.mkdir()
    (other / "keep.txt").write_text("mine")
    done = _cli("model", "build", str(package), "-o", str(other), cwd=package.parent)
    assert done.returncode == 2 and "not a build context" in done.stderr
    assert (other / "keep.txt").read_text() == "mine"
    out = tmp_path / "ctx"
    for _ in range(2):
        done = _cli("model", "build", str(package), "-o", str(out), cwd=package.parent)
        assert done.returncode == 0, done.stderr
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp left


def test_pickle_model_needs_trusted(package: Path, tmp_path: Path) -> None:
    """A package in MLflow's cloudpickle format (as MLflow writes on Databricks) can run code on
    load: its context is written only with --trusted, which the image's server then gets."""
    import pickle

    import skops.io

    pickled = tmp_path / "pkl"
    shutil.copytree(package, pickled)
    model = skops.io.load(pickled / "model.skops")
    (pickled / "model.skops").unlink()
    (pickled / "model.pkl").write_bytes(pickle.dumps(model))
    mlmodel = json.loads((pickled / "MLmodel").read_text())
    mlmodel["flavors"]["sklearn"].update(
        pickled_model="model.pkl", serialization_format="cloudpickle"
    )
    mlmodel["flavors"]["python_function"]["model_path"] = "model.pkl"
    (pickled / "MLmodel").write_text(json.dumps(mlmodel))
    refused = _cli("model", "build", "pkl", "-o", "c1", cwd=tmp_path)
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "--trusted" in refused.stderr
    assert not (tmp_path / "c1").exists()
    done = _cli("model", "build", "pkl", "-o", "c2", "--trusted", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert json.loads((tmp_path / "c2" / "serve.json").read_text())["trusted"] is True
