"""Run the performance-budget benchmarks of `pipeline` and print a markdown table.

Every benchmark is timed N times, interleaved with a baseline measured in the same process and
on the same data, and reports medians plus the ratio target / baseline: on a small, noisy
machine the ratio is steadier than the absolute number.

    python bench/run.py [--repeat N] [--quick] [--json FILE] [--only NAME...]
                        [--workdir DIR] [--keep] [--check]

New workloads are added by decorating a function with `@register(...)`; see `BENCHMARKS`.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import importlib
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

try:
    import envbench
    import gen_grid  # `python bench/run.py` puts bench/ on sys.path
    import runsbench
    import serve as servebench
except ModuleNotFoundError:  # imported as `bench.run` from the repository root
    from bench import envbench, gen_grid, runsbench  # type: ignore[no-redef]
    from bench import serve as servebench  # type: ignore[no-redef]

REPO = Path(__file__).resolve().parents[1]
GIB = 1 << 30  # throughput is reported in GB/s with 1 GB = 2**30 bytes (the stricter reading)
READ_CHUNK = 1 << 20
PYTHON_PASS = [sys.executable, "-c", "pass"]


class Unavailable(Exception):
    """The code under test does not offer what the benchmark needs (yet)."""


@dataclass
class Context:
    """Settings shared by all benchmarks of one run."""

    repeat: int
    quick: bool
    workdir: Path
    cli: list[str]
    env: dict[str, str] | None = None
    keep: bool = False

    @property
    def big_mb(self) -> int:
        """Size in MiB of the "1 GB" inputs."""
        return 256 if self.quick else 1024

    def project(self, name: str) -> Path:
        """A fresh, empty directory for benchmark `name`."""
        path = self.workdir / name
        shutil.rmtree(path, ignore_errors=True)
        path.mkdir(parents=True)
        return path


@dataclass
class Result:
    """Samples and verdict of one benchmark; `unit` is "s", "ms", "x" (lower wins) or "GB/s".

    `extra` holds further sample series taken alongside (name -> samples, in `unit`); they are
    reported in the note and the JSON but do not decide the verdict.
    """

    name: str
    unit: str
    budget: float
    baseline: str
    higher_is_better: bool = False
    samples: list[float] = field(default_factory=list)
    baseline_samples: list[float] = field(default_factory=list)
    state: str = "ok"  # "ok", "unavailable" or "error"
    note: str = ""
    extra: dict[str, list[float]] = field(default_factory=dict)

    @property
    def median(self) -> float | None:
        """Median of the samples, if any."""
        return statistics.median(self.samples) if self.samples else None

    @property
    def baseline_median(self) -> float | None:
        """Median of the baseline samples, if any."""
        return statistics.median(self.baseline_samples) if self.baseline_samples else None

    @property
    def ratio(self) -> float | None:
        """Median of the target divided by the median of the baseline."""
        med, base = self.median, self.baseline_median
        return med / base if med is not None and base else None

    @property
    def verdict(self) -> str:
        """The verdict: "pass", "fail", "unavailable" or "error"."""
        med = self.median
        if self.state != "ok" or med is None:
            return self.state if self.state != "ok" else "error"
        ok = med >= self.budget if self.higher_is_better else med <= self.budget
        return "pass" if ok else "fail"

    def to_json(self) -> dict[str, Any]:
        """The result with its derived values, for `--json`."""
        data = asdict(self)
        data.update(median=self.median, baseline_median=self.baseline_median)
        data.update(ratio=self.ratio, verdict=self.verdict)
        return data


Benchmark = Callable[[Context], Result]
Body = Callable[[Context, Result], None]
BENCHMARKS: dict[str, Benchmark] = {}


def register(
    name: str, unit: str, budget: float, baseline: str, higher_is_better: bool = False
) -> Callable[[Body], Benchmark]:
    """Register `body(ctx, result)` as benchmark `name`; it fills `result` with samples."""

    def decorate(body: Body) -> Benchmark:
        @functools.wraps(body)
        def bench(ctx: Context) -> Result:
            res = Result(name, unit, budget, baseline, higher_is_better)
            try:
                body(ctx, res)
            except Unavailable as exc:
                res.state, res.note = "unavailable", str(exc)
            except Exception as exc:  # one broken benchmark must not stop the others
                res.state, res.note = "error", describe_error(exc)
            finally:
                if not ctx.keep:
                    shutil.rmtree(ctx.workdir / name, ignore_errors=True)
            return res

        BENCHMARKS[name] = bench
        return bench

    return decorate


def describe_error(exc: BaseException) -> str:
    """A one-line account of why a benchmark failed."""
    if isinstance(exc, subprocess.CalledProcessError):
        stderr = (exc.stderr or b"").decode(errors="replace").strip().splitlines()
        last = stderr[-1] if stderr else "(no stderr)"
        cmd = [Path(exc.cmd[0]).name, *map(str, exc.cmd[1:])]
        return f"`{' '.join(cmd)}` exited {exc.returncode}: {last}"
    return f"{type(exc).__name__}: {exc}"


def log(message: str) -> None:
    """Progress output; stderr keeps stdout for the table."""
    print(message, file=sys.stderr, flush=True)


# --- timing helpers -----------------------------------------------------------------------------


def timed(cmd: Sequence[str], cwd: Path | None = None, env: dict[str, str] | None = None) -> float:
    """Wall-clock seconds of one `subprocess.run(cmd, check=True)`."""
    start = time.perf_counter()
    subprocess.run(list(cmd), check=True, capture_output=True, cwd=cwd, env=env)
    return time.perf_counter() - start


def pipeline(ctx: Context, project: Path, *args: str) -> float:
    """Seconds taken by `pipeline -C project ARGS...`."""
    return timed([*ctx.cli, "-C", str(project), *args], env=ctx.env)


def measure(
    res: Result,
    repeat: int,
    target: Callable[[], float],
    base: Callable[[], float],
    also: dict[str, Callable[[], float]] | None = None,
) -> None:
    """Take `repeat` samples of the baseline and the target, interleaved to share the noise.

    `also` names further workloads sampled in the same rounds, after the target, into
    `res.extra`.
    """
    for i in range(repeat):
        res.baseline_samples.append(base())
        res.samples.append(target())
        extras = ""
        for name, func in (also or {}).items():
            res.extra.setdefault(name, []).append(func())
            extras += f", {name} {res.extra[name][-1]:.4g}"
        log(
            f"  run {i + 1}/{repeat}: {res.samples[-1]:.4g} {res.unit}"
            f" (baseline {res.baseline_samples[-1]:.4g}{extras})"
        )


def python_pass() -> float:
    """Seconds taken to start and stop this interpreter."""
    return timed(PYTHON_PASS)


def read_throughput(path: Path) -> float:
    """GB/s of reading `path` with 1 MiB `readinto` calls and no hashing."""
    buf = bytearray(READ_CHUNK)
    view = memoryview(buf)
    total = 0
    start = time.perf_counter()
    with open(path, "rb", buffering=0) as fh:
        while n := fh.readinto(view):
            total += n
    return total / GIB / (time.perf_counter() - start)


def clean_project(project: Path) -> None:
    """Remove everything a run of the tool leaves behind, keeping manifest and input."""
    for name in ("out", ".pipeline"):
        shutil.rmtree(project / name, ignore_errors=True)
    (project / "pipeline.lock").unlink(missing_ok=True)


def touch(path: Path) -> None:
    """Give `path` a new modification time (now, strictly later than before), same content."""
    st = path.stat()
    mtime = max(time.time_ns(), st.st_mtime_ns + 1_000_000)
    os.utime(path, ns=(st.st_atime_ns, mtime))


def load_hash_file() -> Callable[[Path], Any]:
    """`pipeline.core.hashing.hash_file`, or `Unavailable` if it cannot be imported."""
    if str(REPO) not in sys.path:
        sys.path.append(str(REPO))  # an installed `pipeline` still wins
    try:
        module = importlib.import_module("pipeline.core.hashing")
    except ImportError as exc:
        raise Unavailable(f"cannot import pipeline.core.hashing: {exc}") from exc
    func = getattr(module, "hash_file", None)
    if not callable(func):
        raise Unavailable("pipeline.core.hashing has no hash_file()")
    return func  # type: ignore[no-any-return]


# --- benchmarks ---------------------------------------------------------------------------------


@register("status_noop_500", "s", 0.5, "python -c pass")
def bench_status_noop(ctx: Context, res: Result) -> None:
    """`pipeline status` on an up-to-date 25x20 grid (500 stages, 5000 output files)."""
    project = ctx.project(res.name)
    gen_grid.generate(project, layers=25, width=20, files=10, input_mb=1)
    setup = pipeline(ctx, project, "repro")
    log(f"  initial repro of 500 stages: {setup:.2f} s")
    res.note = f"initial repro {setup:.2f} s"
    pipeline(ctx, project, "status")  # warm-up
    measure(res, ctx.repeat, lambda: pipeline(ctx, project, "status"), python_pass)


@register("status_touched_1gb", "s", 0.5, "cat input > /dev/null")
def bench_status_touched(ctx: Context, res: Result) -> None:
    """`pipeline status` after the 1 GB input got a new mtime but the same content."""
    project = ctx.project(res.name)
    gen_grid.generate(project, layers=1, width=2, files=10, input_mb=ctx.big_mb)
    data = project / gen_grid.INPUT
    setup = pipeline(ctx, project, "repro")
    res.note = f"{ctx.big_mb} MiB input; initial repro {setup:.2f} s"
    log(f"  {res.note}")

    def touched_status() -> float:
        touch(data)
        return pipeline(ctx, project, "status")

    cat = ["bash", "-c", f"cat {gen_grid.INPUT} > /dev/null"]
    measure(res, ctx.repeat, touched_status, lambda: timed(cat, cwd=project))


@register("hash_1gb", "GB/s", 3.0, "readinto 1 MiB, no hash", higher_is_better=True)
def bench_hash(ctx: Context, res: Result) -> None:
    """In-process `pipeline.core.hashing.hash_file` throughput on a page-cached 1 GB file."""
    hash_file = load_hash_file()
    path = ctx.project(res.name) / "blob.bin"
    gen_grid.write_input(path, ctx.big_mb)
    size = path.stat().st_size
    read_throughput(path)  # warm the page cache
    first = hash_file(path)  # warm-up, and a check of the API
    if not isinstance(getattr(first, "hash", None), str) or getattr(first, "size", None) != size:
        raise Unavailable(f"hash_file() returned {first!r}, expected .hash (str) and .size")
    res.note = f"{ctx.big_mb} MiB file, 1 GB = 2^30 bytes"

    def hashed() -> float:
        start = time.perf_counter()
        hash_file(path)
        return size / GIB / (time.perf_counter() - start)

    measure(res, ctx.repeat, hashed, lambda: read_throughput(path))


@register("version", "s", 0.15, "python -c pass")
def bench_version(ctx: Context, res: Result) -> None:
    """`pipeline --version`: the floor of every command's start-up cost."""
    cmd = [*ctx.cli, "--version"]
    timed(cmd, env=ctx.env)  # warm-up (bytecode compilation)
    measure(res, ctx.repeat, lambda: timed(cmd, env=ctx.env), python_pass)


@register("repro_cold_100", "s", 3.0, "100 cmds via bash -c")
def bench_repro_cold(ctx: Context, res: Result) -> None:
    """`pipeline repro` of a 10x10 grid from scratch: no outputs, no cache, no lock file."""
    project = ctx.project(res.name)
    gen_grid.generate(project, layers=10, width=10, files=10, input_mb=1)
    cmds = gen_grid.stage_commands(layers=10, width=10, files=10)

    def cold_repro() -> float:
        clean_project(project)
        return pipeline(ctx, project, "repro")

    def direct() -> float:
        clean_project(project)
        start = time.perf_counter()
        for cmd in cmds:
            subprocess.run(["bash", "-c", cmd], check=True, capture_output=True, cwd=project)
        return time.perf_counter() - start

    measure(res, ctx.repeat, cold_repro, direct)


def grid_commands(project: Path) -> list[str]:
    """The stage commands of a generated grid project, read back from its manifest."""
    manifest = next(p for p in (project / "dvc.yaml", project / "MLproject") if p.exists())
    stages = yaml.safe_load(manifest.read_text(encoding="utf-8"))["stages"]
    return [stage["cmd"] for stage in stages.values()]


def run_directly(project: Path, cmds: list[str]) -> float:
    """Seconds to run `cmds` one after another with `bash -c`, as a floor for any runner."""
    clean_project(project)
    start = time.perf_counter()
    for cmd in cmds:
        subprocess.run(["bash", "-c", cmd], check=True, capture_output=True, cwd=project)
    return time.perf_counter() - start


def sleep_project(ctx: Context, name: str) -> Path:
    """dvc.yaml with 4 independent stages that each sleep 2 s."""
    project = ctx.project(name)
    stages = {
        f"sleep{i}": {"cmd": f"sleep 2 && echo {i} > out/s{i}.txt", "outs": [f"out/s{i}.txt"]}
        for i in range(4)
    }
    (project / "dvc.yaml").write_text(yaml.safe_dump({"stages": stages}), encoding="utf-8")
    return project


@register("parallel_sleep_4", "s", 2.3, "one `sleep 2`")
def bench_parallel_sleep(ctx: Context, res: Result) -> None:
    """4 independent 2 s stages, `repro -j 4`, outputs and lock removed (DVC: 8.9 s)."""
    project = sleep_project(ctx, res.name)
    pipeline(ctx, project, "repro", "-j", "4")  # the project's own state, as in any checkout

    def outputs_gone() -> float:  # --no-run-cache: the cache would restore them instead
        shutil.rmtree(project / "out", ignore_errors=True)
        (project / "pipeline.lock").unlink(missing_ok=True)
        return pipeline(ctx, project, "repro", "-j", "4", "--no-run-cache")

    measure(res, ctx.repeat, outputs_gone, lambda: timed(["sleep", "2"]))


@register("parallel_sleep_4_fresh", "s", 2.3, "one `sleep 2`")
def bench_parallel_sleep_fresh(ctx: Context, res: Result) -> None:
    """The same in a fresh clone: no `.pipeline/`, so the manifest is validated from scratch."""
    project = sleep_project(ctx, res.name)
    res.note = "includes importing pydantic (~0.1 s), which the project memo saves later"

    def fresh() -> float:
        clean_project(project)
        return pipeline(ctx, project, "repro", "-j", "4")

    measure(res, ctx.repeat, fresh, lambda: timed(["sleep", "2"]))


def cold_grid(ctx: Context, res: Result, layers: int, width: int) -> None:
    """Cold `repro -j 2` of a dvc.yaml grid, against running its commands directly."""
    project = ctx.project(res.name)
    gen_grid.generate(project, layers=layers, width=width, files=10, input_mb=1, dvc=True)
    cmds = grid_commands(project)

    def cold() -> float:
        clean_project(project)
        return pipeline(ctx, project, "repro", "-j", "2")

    measure(res, ctx.repeat, cold, lambda: run_directly(project, cmds))


@register("repro_cold_100_j2", "s", 2.0, "100 cmds via bash -c, one by one")
def bench_cold_100_j2(ctx: Context, res: Result) -> None:
    """Cold `repro -j 2` of the 10x10 dvc.yaml grid (DVC: 49-59 s)."""
    cold_grid(ctx, res, 10, 10)


@register("repro_cold_500_j2", "s", 10.0, "500 cmds via bash -c, one by one")
def bench_cold_500_j2(ctx: Context, res: Result) -> None:
    """Cold `repro -j 2` of the 25x20 dvc.yaml grid (DVC: 699 s, quadratic growth)."""
    cold_grid(ctx, res, 25, 20)


@register("repro_growth_500_vs_100", "x", 1.5, "linear growth = 1.0")
def bench_growth(ctx: Context, res: Result) -> None:
    """Cost per stage of a cold 500-stage repro over that of a 100-stage one (1.0 = linear)."""
    small, large = ctx.project(res.name) / "g100", ctx.project(res.name + "-500") / "g500"
    gen_grid.generate(small, layers=10, width=10, files=10, input_mb=1, dvc=True)
    gen_grid.generate(large, layers=25, width=20, files=10, input_mb=1, dvc=True)

    def per_stage(project: Path, stages: int) -> float:
        clean_project(project)
        return pipeline(ctx, project, "repro", "-j", "2") / stages

    try:
        measure(res, ctx.repeat, lambda: per_stage(large, 500) / per_stage(small, 100), lambda: 1.0)
    finally:
        shutil.rmtree(large.parent, ignore_errors=True)


def param_change(
    ctx: Context, res: Result, layers: int, width: int, stage: tuple[int, int]
) -> None:
    """`repro -j 2` after changing the param one stage uses; everything downstream reruns."""
    project = ctx.project(res.name)
    gen_grid.generate(
        project,
        layers=layers,
        width=width,
        files=10,
        input_mb=1,
        dvc=True,
        propagate=True,
        param_stage=stage,
    )
    pipeline(ctx, project, "repro", "-j", "2")
    rerun = gen_grid.cone_size(layers, width, stage)
    res.note = f"{rerun} of {layers * width} stages rerun"
    values = iter(range(2, 10_000))

    def changed() -> float:
        gen_grid.set_param(project, next(values))
        return pipeline(ctx, project, "repro", "-j", "2")

    measure(res, ctx.repeat, changed, lambda: pipeline(ctx, project, "repro", "-j", "2"))


@register("param_change_100", "s", 1.0, "no-op repro")
def bench_param_change_100(ctx: Context, res: Result) -> None:
    """10x10 grid: change the param of a middle stage, then `repro` (DVC: 13-16 s)."""
    param_change(ctx, res, 10, 10, (5, 5))


@register("param_change_500", "s", 5.0, "no-op repro")
def bench_param_change_500(ctx: Context, res: Result) -> None:
    """25x20 grid: change the param of a layer-5 stage, ~200 stages rerun (DVC: 500 s)."""
    param_change(ctx, res, 25, 20, (5, 0))


def big_output_session(ctx: Context, name: str, cache_type: str | None) -> Any:
    """A project whose one stage wrote a "1 GB" output, stored in its cache; its session."""
    project = ctx.project(name)
    data = project / "big.bin"
    gen_grid.write_input(data, ctx.big_mb)
    stages = {"big": {"cmd": "cat big.bin > model.bin", "deps": ["big.bin"], "outs": ["model.bin"]}}
    (project / "MLproject").write_text(yaml.safe_dump({"stages": stages}), encoding="utf-8")
    if cache_type:
        (project / ".pipeline").mkdir()
        config = {"cache": {"type": cache_type}}
        (project / ".pipeline" / "config.yaml").write_text(yaml.safe_dump(config))
    pipeline(ctx, project, "repro")
    return project


def restore_time(project: Path, verify: bool = False) -> float:
    """Seconds for the API to put the cached model back after it was deleted."""
    session_mod = importlib.import_module("pipeline.plan.session")
    workspace = importlib.import_module("pipeline.data.checkout")
    (project / "model.bin").unlink()
    with session_mod.open_session(project) as session:
        start = time.perf_counter()
        report = workspace.checkout(session, ("model.bin",), verify=verify)
        seconds = time.perf_counter() - start
    assert report.restored == ["model.bin"], report
    return seconds


@register("restore_1gb_hardlink", "s", 0.1, "stat of the object")
def bench_restore_link(ctx: Context, res: Result) -> None:
    """Restoring a deleted 1 GB output from the cache by hardlink (this disk has no reflink)."""
    load_hash_file()
    project = big_output_session(ctx, res.name, "hardlink")
    res.note = f"{ctx.big_mb} MiB; in-process checkout, without interpreter start-up"
    obj = model_object(project)
    measure(res, ctx.repeat, lambda: restore_time(project), lambda: _timed_stat(obj))


def model_object(project: Path) -> Path:
    """The cache object holding the stage's `model.bin`, found through the lock."""
    lock = yaml.safe_load((project / "pipeline.lock").read_text(encoding="utf-8"))
    hexdigest = lock["stages"]["big"]["outs"][0]["hash"].partition(":")[2]
    return project / ".pipeline/cache/objects" / hexdigest[:2] / hexdigest[2:]


def _timed_stat(path: Path) -> float:
    start = time.perf_counter()
    path.stat()
    return time.perf_counter() - start


@register("restore_1gb_copy_vs_cp", "x", 1.5, "`cp` of the same object")
def bench_restore_copy(ctx: Context, res: Result) -> None:
    """Restoring a deleted 1 GB output by copy, as a multiple of `cp` copying the object."""
    load_hash_file()
    project = big_output_session(ctx, res.name, "copy")
    obj = model_object(project)
    res.note = f"{ctx.big_mb} MiB; in-process checkout over `cp` time, run by run"
    copy_target = project / "cp-copy.bin"

    def cp() -> float:
        copy_target.unlink(missing_ok=True)
        return timed(["cp", str(obj), str(copy_target)])

    def ratio() -> float:
        base = cp()
        return restore_time(project) / base

    measure(res, ctx.repeat, ratio, lambda: 1.0)


def dvc_command() -> list[str] | None:
    """DVC's CLI for side-by-side numbers: `$BENCH_DVC`, else `dvc` on PATH, else None."""
    found = os.environ.get("BENCH_DVC") or shutil.which("dvc")
    return [found] if found else None


def dvc_project(ctx: Context, name: str, data: Path) -> Path | None:
    """A git + DVC repository holding a copy of `data`, for `dvc add` (None without DVC).

    DVC keeps its hash memo in a per-user site cache; pointing it inside the project lets every
    round start cold, as `pipeline`'s rounds do.
    """
    dvc = dvc_command()
    if dvc is None:
        return None
    project = ctx.project(name)
    subprocess.run(["git", "init", "-q"], cwd=project, check=True)
    subprocess.run([*dvc, "init", "-q"], cwd=project, check=True, capture_output=True)
    subprocess.run([*dvc, "config", "core.site_cache_dir", "site"], cwd=project, check=True)
    subprocess.run([*dvc, "config", "core.analytics", "false"], cwd=project, check=True)
    copy = shutil.copytree if data.is_dir() else shutil.copy2
    copy(data, project / data.name)
    return project


def dvc_add(project: Path, name: str) -> float:
    """Seconds of a cold `dvc add NAME`: cache, pointer file and hash memo removed first."""
    dvc = dvc_command()
    assert dvc is not None
    for leftover in (".dvc/cache", ".dvc/tmp", ".dvc/site"):
        shutil.rmtree(project / leftover, ignore_errors=True)
    (project / f"{name}.dvc").unlink(missing_ok=True)
    return timed([*dvc, "add", "-q", name], cwd=project)


def copy_time(source: Path, target: Path) -> float:
    """Seconds of `cp -r source target` (the target removed first): the baseline of storing."""
    if target.is_dir():
        shutil.rmtree(target)
    target.unlink(missing_ok=True)
    return timed(["cp", "-r", str(source), str(target)])


def versus_copy(
    ctx: Context, res: Result, project: Path, data: Path, ours: Callable[[], float]
) -> None:
    """Rounds of `cp -r`, then `ours`, then `dvc add` of the same data: the ratio to `cp -r` is
    the verdict; the seconds of each go to `res.extra`."""
    dvc = dvc_project(ctx, f"{res.name}-dvc", data)
    series: dict[str, list[float]] = {"cp -r (s)": [], "pipeline (s)": []}
    if dvc is not None:
        series["dvc add (s)"] = []

    def one_round() -> float:
        # Each starts with no dirty pages left by the one before: writeback would bill it.
        os.sync()
        series["cp -r (s)"].append(copy_time(data, project / f"{data.name}-copy"))
        os.sync()
        series["pipeline (s)"].append(ours())
        if dvc is not None:
            os.sync()
            series["dvc add (s)"].append(dvc_add(dvc, data.name))
        return series["pipeline (s)"][-1] / series["cp -r (s)"][-1]

    measure(res, ctx.repeat, one_round, lambda: 1.0)
    res.extra.update(series)
    if dvc is None:
        res.note += "; DVC not found (set BENCH_DVC or put dvc on PATH) for its side of it"


def fresh_add(ctx: Context, project: Path, name: str) -> Callable[[], float]:
    """A cold `pipeline add NAME`: cache, lock and stat memo removed first."""

    def add() -> float:
        clean_project(project)
        return pipeline(ctx, project, "add", name)

    return add


@register("add_20k_files", "x", 1.3, "`cp -r` of the directory = 1.0")
def bench_add(ctx: Context, res: Result) -> None:
    """`pipeline add` of a directory of 20,000 small files, cold, against `cp -r` and `dvc add`."""
    project = ctx.project(res.name)
    (project / "MLproject").write_text("stages: {}\n", encoding="utf-8")
    files = 2000 if ctx.quick else 20_000
    raw = project / "raw"
    for i in range(files):
        sub = raw / f"d{i // 1000:02d}"
        if i % 1000 == 0:
            sub.mkdir(parents=True)
        (sub / f"f{i:05d}.txt").write_text(f"row {i} " * 8)
    res.note = f"{files} files of ~70 bytes, default cache type (copy on ext4)"
    versus_copy(ctx, res, project, raw, fresh_add(ctx, project, "raw"))


@register("add_1gb", "x", 1.3, "`cp` of the file = 1.0")
def bench_add_big(ctx: Context, res: Result) -> None:
    """`pipeline add` of one 1 GB file, cold, against `cp` and `dvc add`."""
    project = ctx.project(res.name)
    (project / "MLproject").write_text("stages: {}\n", encoding="utf-8")
    gen_grid.write_input(project / "big.bin", ctx.big_mb)
    res.note = f"{ctx.big_mb} MiB, default cache type (copy on ext4)"
    versus_copy(ctx, res, project, project / "big.bin", fresh_add(ctx, project, "big.bin"))


@register("store_output_1gb", "x", 1.3, "`cp` of the file = 1.0")
def bench_store_output(ctx: Context, res: Result) -> None:
    """Hashing and storing a stage's 1 GB output (what `repro` adds after the command), in
    process, against `cp` of the file and `dvc add` (which does the same: hash, then store)."""
    load_hash_file()
    hashing = importlib.import_module("pipeline.core.hashing")
    cache = importlib.import_module("pipeline.store.objects")
    project = ctx.project(res.name)
    out = project / "model.bin"
    gen_grid.write_input(out, ctx.big_mb)
    res.note = f"{ctx.big_mb} MiB; default strategies (reflink, else copy)"

    def store() -> float:
        shutil.rmtree(project / "cache", ignore_errors=True)
        start = time.perf_counter()
        hasher = hashing.Hasher(project, None)
        info = hasher.hash("model.bin")
        store = cache.ObjectStore(project / "cache")
        cache.store_output(store, hasher, "model.bin", info, cache.store_strategies(None))
        return time.perf_counter() - start

    versus_copy(ctx, res, project, out, store)


# --- stage environments (issue 5) ---------------------------------------------------------------

ENV_STAGES = 20  # stages of the per-stage overhead project


def require_envs(ctx: Context, *, conda: bool = False) -> Any:
    """tests/env/envkit.py, after checking the CLI has `env build` (and py-rattler for `conda`)."""
    try:
        subprocess.run(
            [*ctx.cli, "env", "build", "--help"], check=True, capture_output=True, env=ctx.env
        )
    except subprocess.CalledProcessError as exc:
        raise Unavailable("this pipeline has no `env build` command") from exc
    try:
        kit = envbench.envkit()
    except ImportError as exc:
        raise Unavailable(f"cannot import tests/env/envkit.py: {exc}") from exc
    if conda:
        try:
            envbench.require_rattler()
        except ImportError as exc:
            raise Unavailable(
                "py-rattler is not installed (pip install 'pipeline[conda]')"
            ) from exc
    return kit


def fresh_dir(path: Path) -> Path:
    """`path`, emptied (removing the previous run's envs and caches is not timed)."""
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


def env_build(ctx: Context, project: Path, environ: dict[str, str]) -> float:
    """Seconds of `pipeline -C project env build`; checks that an env was published."""
    seconds = timed([*ctx.cli, "-C", str(project), "env", "build"], env=environ)
    envs = Path(environ["XDG_CACHE_HOME"]) / "pipeline" / "envs"
    if not any(p.is_symlink() for p in envs.glob("*")):
        raise RuntimeError(f"`pipeline env build` published no env under {envs}")
    return seconds


def built_prefix(environ: dict[str, str]) -> Path:
    """The one env published under this environ's `XDG_CACHE_HOME`."""
    envs = Path(environ["XDG_CACHE_HOME"]) / "pipeline" / "envs"
    (link,) = [p for p in envs.glob("*") if p.is_symlink()]
    return link.resolve()


def uv_exe() -> str:
    """uv's executable as pipeline finds it: the `uv` package's binary, else PATH."""
    try:
        import uv  # noqa: PLC0415

        return str(uv.find_uv_bin())
    except (ImportError, FileNotFoundError):
        found = shutil.which("uv")
        if found is None:
            raise Unavailable("uv is not installed") from None
        return found


@register("env_stage_overhead", "ms", 30, "per stage, no env")
def bench_env_stage_overhead(ctx: Context, res: Result) -> None:
    """What an already-built env adds to each stage: (t_env - t_noenv) / N for N trivial stages."""
    require_envs(ctx)
    root = ctx.project(res.name)
    wheels = root / "wheels"
    envbench.write_wheels(wheels)
    environ = envbench.offline_environ(ctx.env, root / "xdg", root / "uv", wheels)
    stages = envbench.trivial_stages(ENV_STAGES)
    with_env = envbench.venv_project(root / "with-env", stages)
    no_env = envbench.venv_project(root / "no-env", stages, with_env=False)
    build = env_build(ctx, with_env, environ)
    args = ("repro", "-f", "-j", "1", "--no-run-cache")
    for project in (with_env, no_env):  # warm-up: state, memo and lock of each project
        timed([*ctx.cli, "-C", str(project), *args], env=environ)
    runs: dict[str, list[float]] = {"repro_env_s": [], "repro_noenv_s": []}
    res.extra.update(runs)

    def plain() -> float:
        runs["repro_noenv_s"].append(timed([*ctx.cli, "-C", str(no_env), *args], env=environ))
        return runs["repro_noenv_s"][-1] / ENV_STAGES * 1000

    def declared() -> float:  # paired with the no-env run just before it
        runs["repro_env_s"].append(timed([*ctx.cli, "-C", str(with_env), *args], env=environ))
        return (runs["repro_env_s"][-1] - runs["repro_noenv_s"][-1]) / ENV_STAGES * 1000

    measure(res, ctx.repeat, declared, plain)
    env_med = statistics.median(runs["repro_env_s"])
    plain_med = statistics.median(runs["repro_noenv_s"])
    res.note = (
        f"{ENV_STAGES} stages, `repro -f -j 1 --no-run-cache`; whole run {env_med:.3f} s with the"
        f" venv vs {plain_med:.3f} s without (env built once first: {build:.2f} s)"
    )


@register("env_venv_two_wheels", "s", 1.0, "uv venv + uv pip install")
def bench_env_venv(ctx: Context, res: Result) -> None:
    """`pipeline env build` of a venv with two local wheels; fresh env cache and uv cache."""
    require_envs(ctx)
    root = ctx.project(res.name)
    wheels = root / "wheels"
    names = envbench.write_wheels(wheels)
    project = envbench.venv_project(root / "project", {"touch": {"cmd": "true"}})
    warm_uv = root / "uv-warm"
    run = root / "run"

    def environ(uv_cache: Path | None) -> dict[str, str]:
        fresh_dir(run)
        return envbench.offline_environ(ctx.env, run / "xdg", uv_cache or run / "uv", wheels)

    # Warm-up, untimed: fills the warm uv cache and checks the env holds both packages.
    env = environ(warm_uv)
    env_build(ctx, project, env)
    python = built_prefix(env) / "bin" / "python"
    subprocess.run([str(python), "-c", "import alpha, beta"], check=True, capture_output=True)
    uv = uv_exe()

    def raw_uv() -> float:
        env = environ(None)
        prefix = run / "venv"
        start = time.perf_counter()
        subprocess.run(
            [uv, "venv", "--quiet", "--no-config", "--python", sys.executable, str(prefix)],
            check=True,
            capture_output=True,
            env=env,
        )
        install = [uv, "pip", "install", "--no-config", "--python", str(prefix / "bin/python")]
        install += ["--no-index", "--find-links", str(wheels), *names]
        subprocess.run(install, check=True, capture_output=True, env=env)
        return time.perf_counter() - start

    measure(
        res,
        ctx.repeat,
        lambda: env_build(ctx, project, environ(None)),
        raw_uv,
        also={"warm_uv_cache": lambda: env_build(ctx, project, environ(warm_uv))},
    )
    warm = statistics.median(res.extra["warm_uv_cache"])
    res.note = (
        f"cold uv cache (fresh XDG_CACHE_HOME and UV_CACHE_DIR each run); with a warm uv cache:"
        f" {warm:.3f} s; offline find-links, python {envbench.python_request()}"
    )


@register("env_conda_local", "s", 1.0, "rattler solve+install, own process")
def bench_env_conda(ctx: Context, res: Result) -> None:
    """`pipeline env build` of a conda env from a local channel (hello, greet, python)."""
    require_envs(ctx, conda=True)
    root = ctx.project(res.name)
    channel = envbench.make_conda_channel(root)
    project = envbench.conda_project(root / "project", channel)
    warm = root / "warm"
    run = root / "run"

    def environ(cache_home: Path) -> dict[str, str]:
        return envbench.offline_environ(ctx.env, cache_home, run / "uv", None)

    # Warm-up, untimed: its package cache is what the warm variant starts from.
    env = environ(warm / "xdg")
    env_build(ctx, project, env)
    hello = built_prefix(env) / "bin" / "hello"
    subprocess.run([str(hello)], check=True, capture_output=True)
    warm_pkgs = warm / "xdg" / "pipeline" / "conda"

    def cold() -> float:
        fresh_dir(run)
        return env_build(ctx, project, environ(run / "xdg"))

    def warm_packages() -> float:
        fresh_dir(run)
        shutil.copytree(warm_pkgs, run / "xdg" / "pipeline" / "conda", symlinks=True)
        return env_build(ctx, project, environ(run / "xdg"))

    script = Path(envbench.__file__).resolve()

    def raw_rattler() -> float:
        fresh_dir(run)
        argv = [sys.executable, str(script), "conda-install", str(channel), str(run / "prefix")]
        return timed([*argv, str(run / "cache"), *envbench.CONDA_SPECS], env=environ(run))

    measure(res, ctx.repeat, cold, raw_rattler, also={"warm_pkg_cache": warm_packages})
    warm_med = statistics.median(res.extra["warm_pkg_cache"])
    res.note = (
        f"fresh XDG_CACHE_HOME each run (no package cache); with rattler's package cache"
        f" warm: {warm_med:.3f} s; specs {' '.join(envbench.CONDA_SPECS)}"
    )


# --- run records (issue 6) ----------------------------------------------------------------------

RECORD_STAGES = 100  # stages of the per-stage recording overhead project
RECORD_SMALL = 10  # stages of the small project that separates the fixed cost from the marginal
STORE_RUNS = 1000  # runs in the store of `runs_list_1000` and `compare_1000`


def require_runs(ctx: Context) -> None:
    """`Unavailable` unless the CLI has `runs` and `compare` and the API `ReproOptions.record`."""
    for command in ("runs", "compare"):
        try:
            subprocess.run(
                [*ctx.cli, command, "--help"], check=True, capture_output=True, env=ctx.env
            )
        except subprocess.CalledProcessError as exc:
            raise Unavailable(f"this pipeline has no `{command}` command") from exc
    probe = f"import sys; sys.path.append({str(REPO)!r}); import pipeline.api as a"
    probe += "; a.ReproOptions(record=False)"
    try:
        subprocess.run([sys.executable, "-c", probe], check=True, capture_output=True, env=ctx.env)
    except subprocess.CalledProcessError as exc:
        raise Unavailable("pipeline.api.ReproOptions has no `record` option") from exc


def drive_repro(ctx: Context, root: Path, record: bool, force: bool = True) -> tuple[float, float]:
    """(seconds inside `api.repro`, wall seconds of the whole driver process)."""
    flags = ["--record" if record else "--no-record", "--force" if force else "--no-force"]
    cmd = [sys.executable, str(Path(runsbench.__file__).resolve()), "repro", str(root), *flags]
    start = time.perf_counter()
    done = subprocess.run(cmd, check=True, capture_output=True, env=ctx.env)
    wall = time.perf_counter() - start
    return float(json.loads(done.stdout)["seconds"]), wall


@register("record_overhead_per_stage", "ms", 5, "per stage, record=False")
def bench_record_overhead(ctx: Context, res: Result) -> None:
    """What recording a run adds per stage: (t_record - t_norecord) / N for N trivial stages."""
    require_runs(ctx)
    root = ctx.project(res.name)
    big = runsbench.overhead_project(root / "p100", RECORD_STAGES)
    small = runsbench.overhead_project(root / "p10", RECORD_SMALL)
    for project in (big, small):  # warm-up: bytecode, state, memo, lock; creates runs.db
        for record in (True, False):
            drive_repro(ctx, project, record)
    series: dict[str, list[float]] = {}
    for size in (RECORD_STAGES, RECORD_SMALL):
        for kind in ("forced", "wall", "noop"):
            for tag in ("record", "norecord"):
                series[f"p{size}_{kind}_{tag}_s"] = []
    res.extra.update(series)
    n_rounds = max(ctx.repeat, 5)

    def one(size: int, project: Path, record: bool) -> None:
        tag = "record" if record else "norecord"
        inside, wall = drive_repro(ctx, project, record)
        series[f"p{size}_forced_{tag}_s"].append(inside)
        series[f"p{size}_wall_{tag}_s"].append(wall)
        series[f"p{size}_noop_{tag}_s"].append(drive_repro(ctx, project, record, force=False)[0])

    def pair() -> float:  # the baseline: both variants, in alternating order from round to round
        order = (False, True) if len(series["p100_forced_norecord_s"]) % 2 == 0 else (True, False)
        for size, project in ((RECORD_STAGES, big), (RECORD_SMALL, small)):
            for record in order:
                one(size, project, record)
        return series[f"p{RECORD_STAGES}_forced_norecord_s"][-1] / RECORD_STAGES * 1000

    def overhead() -> float:  # from the pair just taken
        return diff(RECORD_STAGES, "forced", -1) / RECORD_STAGES * 1000

    def diff(size: int, kind: str, i: int) -> float:
        return series[f"p{size}_{kind}_record_s"][i] - series[f"p{size}_{kind}_norecord_s"][i]

    measure(res, n_rounds, overhead, pair)
    # overhead(N) = fixed + N * marginal, from the 100- and the 10-stage project, round by round
    rounds = range(n_rounds)
    d_big = [diff(RECORD_STAGES, "forced", i) for i in rounds]
    d_small = [diff(RECORD_SMALL, "forced", i) for i in rounds]
    marginal = [
        (b - s) / (RECORD_STAGES - RECORD_SMALL) for b, s in zip(d_big, d_small, strict=True)
    ]
    res.extra["marginal_ms"] = [m * 1000 for m in marginal]
    res.extra["fixed_ms"] = [
        (s - RECORD_SMALL * m) * 1000 for s, m in zip(d_small, marginal, strict=True)
    ]
    res.extra["wall_overhead_ms"] = [
        diff(RECORD_STAGES, "wall", i) * 1000 / RECORD_STAGES for i in rounds
    ]
    res.extra["small_overhead_ms"] = [d * 1000 / RECORD_SMALL for d in d_small]
    res.extra["noop_overhead_ms"] = [diff(RECORD_STAGES, "noop", i) * 1000 for i in rounds]
    med = statistics.median
    res.note = (
        f"{RECORD_STAGES} stages (1 dep, 1 param, 1 out each; git repo),"
        f" `api.repro(force, jobs=1, run_cache=False)` in a driver process, time inside repro():"
        f" {med(series['p100_forced_record_s']):.3f} s recorded vs"
        f" {med(series['p100_forced_norecord_s']):.3f} s not; whole process"
        f" {med(res.extra['wall_overhead_ms']):.1f} ms/stage. Split with a {RECORD_SMALL}-stage"
        f" project: fixed {med(res.extra['fixed_ms']):.0f} ms per run +"
        f" {med(res.extra['marginal_ms']):.2f} ms per stage ({RECORD_SMALL} stages:"
        f" {med(res.extra['small_overhead_ms']):.1f} ms/stage). A no-op repro (all"
        f" {RECORD_STAGES} up to date): {med(series['p100_noop_record_s']):.3f} s recorded vs"
        f" {med(series['p100_noop_norecord_s']):.3f} s not"
    )


def filled_store(ctx: Context, name: str) -> tuple[Path, int]:
    """A 3-stage project whose store holds `STORE_RUNS` runs: one real `repro`, the rest
    written by `runsbench fill`; returns it and how many runs `compare` can show."""
    project = runsbench.ml_project(ctx.project(name) / "project")
    pipeline(ctx, project, "repro")
    script = str(Path(runsbench.__file__).resolve())
    cmd = [sys.executable, script, "fill", str(project), str(STORE_RUNS - 1)]
    done = subprocess.run(cmd, check=True, capture_output=True, env=ctx.env)
    filled = json.loads(done.stdout)
    listed = cli_json(ctx, project, "runs", "--all", "--json")
    if len(listed) != STORE_RUNS or filled["total_runs_in_store"] != STORE_RUNS:
        raise RuntimeError(f"the store holds {len(listed)} runs, expected {STORE_RUNS}")
    comparable = sum(1 for r in listed if r["kind"] != "sweep")
    log(
        f"  store: {STORE_RUNS} runs ({comparable} with params and metrics),"
        f" {filled['stage_rows'] + 3} stage records, {filled['artifacts'] + 4} artifacts;"
        f" filled in {filled['seconds']:.1f} s"
    )
    return project, comparable


def cli_json(ctx: Context, project: Path, *args: str) -> Any:
    """The parsed stdout of `pipeline -C project ARGS... --json`."""
    cmd = [*ctx.cli, "-C", str(project), *args]
    return json.loads(subprocess.run(cmd, check=True, capture_output=True, env=ctx.env).stdout)


def version_baseline(ctx: Context) -> Callable[[], float]:
    """`pipeline --version`: the CLI's start-up floor, in the same rounds."""
    return lambda: timed([*ctx.cli, "--version"], env=ctx.env)


@register("runs_list_1000", "s", 0.5, "pipeline --version")
def bench_runs_list(ctx: Context, res: Result) -> None:
    """`pipeline runs` (latest 20) over a store of 1,000 runs; `runs --all` alongside."""
    require_runs(ctx)
    project, _ = filled_store(ctx, res.name)
    pipeline(ctx, project, "runs")  # warm-up
    pipeline(ctx, project, "runs", "--all")
    measure(
        res,
        ctx.repeat,
        lambda: pipeline(ctx, project, "runs"),
        version_baseline(ctx),
        also={"all": lambda: pipeline(ctx, project, "runs", "--all")},
    )
    every = statistics.median(res.extra["all"])
    res.note = (
        f"{STORE_RUNS} runs in .pipeline/runs.db; default (`-n 20`) timed;"
        f" `runs --all` (all {STORE_RUNS} lines): {every:.3f} s"
    )


@register("compare_1000", "s", 0.5, "pipeline --version")
def bench_compare(ctx: Context, res: Result) -> None:
    """`pipeline compare -n 1000` (every run) over a store of 1,000 runs; the default alongside."""
    require_runs(ctx)
    project, comparable = filled_store(ctx, res.name)
    table = cli_json(ctx, project, "compare", "-n", str(STORE_RUNS), "--json")
    if len(table) != comparable:
        raise RuntimeError(f"`compare -n {STORE_RUNS}` showed {len(table)} runs, not {comparable}")
    metrics = {k for row in table for k in row["metrics"]}
    pipeline(ctx, project, "compare")  # warm-up
    measure(
        res,
        ctx.repeat,
        lambda: pipeline(ctx, project, "compare", "-n", str(STORE_RUNS)),
        version_baseline(ctx),
        also={"default_n20": lambda: pipeline(ctx, project, "compare")},
    )
    default = statistics.median(res.extra["default_n20"])
    res.note = (
        f"`compare -n {STORE_RUNS}`: all {comparable} runs with params and metrics of"
        f" {STORE_RUNS} (the rest are sweep rows), 5 params, {len(metrics)} metrics, text table;"
        f" default `compare` (latest 20): {default:.3f} s"
    )


# --- serving (issue 15): pipeline serve against mlflow models serve ------------------------------

SERVE_ROUNDS_MIN = 3
_SERVE_REPORTS: dict[int, Any] = {}


def serve_report(ctx: Context) -> Any:
    """One `bench/serve.py` measurement per run, shared by the four `serve_*` benchmarks."""
    key = id(ctx)
    if key not in _SERVE_REPORTS:
        try:
            _SERVE_REPORTS[key] = servebench.measure(
                ctx.workdir / "serve", rounds=max(ctx.repeat, SERVE_ROUNDS_MIN), log=log
            )
        except servebench.Unavailable as exc:
            raise Unavailable(str(exc)) from exc
    return _SERVE_REPORTS[key]


def serve_result(ctx: Context, res: Result, key: str, note: str) -> None:
    """`res` from the shared report: pipeline's rounds, MLflow's as the baseline."""
    report = serve_report(ctx)
    res.samples = report.series("ours", key)
    res.baseline_samples = report.series("mlflow", key)
    res.note = f"{note}; {report.clients} clients for throughput; " + "; ".join(report.notes)


@register("serve_latency_p50", "ms", 2.0, "mlflow models serve")
def bench_serve_p50(ctx: Context, res: Result) -> None:
    """Single-row /invocations latency, one keep-alive client, p50 of each round."""
    serve_result(ctx, res, "p50_ms", f"{servebench.REQUESTS} sequential requests per round")


@register("serve_latency_p99", "ms", 10.0, "mlflow models serve")
def bench_serve_p99(ctx: Context, res: Result) -> None:
    """The same requests' p99."""
    serve_result(ctx, res, "p99_ms", f"{servebench.REQUESTS} sequential requests per round")


@register("serve_throughput_vs_mlflow", "x", 2.0, "1.0 = MLflow's req/s", higher_is_better=True)
def bench_serve_throughput(ctx: Context, res: Result) -> None:
    """Requests per second with N concurrent keep-alive clients, over MLflow's in the round."""
    report = serve_report(ctx)
    ours, theirs = (
        report.series("ours", "throughput_rps"),
        report.series("mlflow", "throughput_rps"),
    )
    res.samples = [a / b for a, b in zip(ours, theirs, strict=True)]
    res.baseline_samples = [1.0] * len(res.samples)
    res.extra = {"pipeline_rps": ours, "mlflow_rps": theirs}
    res.note = (
        f"pipeline {statistics.median(ours):.0f} req/s, MLflow {statistics.median(theirs):.0f}"
        f" req/s; {report.clients} clients share {report.requests} requests per round"
    )


@register("serve_cold_start", "s", 1.5, "mlflow models serve")
def bench_serve_cold(ctx: Context, res: Result) -> None:
    """From starting the server (env already built) to its first prediction."""
    serve_result(ctx, res, "cold_start_s", "command start to first /invocations answer")


# --- reporting ----------------------------------------------------------------------------------


def fmt(value: float | None, unit: str) -> str:
    """A sample value with its unit, or a dash."""
    if value is None:
        return "—"
    if unit == "x":
        return f"{value:.2f}x"
    if unit == "ms":
        return f"{value:.1f} ms"
    return f"{value:.2f} GB/s" if unit == "GB/s" else f"{value:.3f} s"


def table_row(res: Result) -> str:
    """One markdown table row."""
    sign = "≥" if res.higher_is_better else "≤"
    budget = f"{sign} {res.budget:g} {res.unit}"
    ratio = f"{res.ratio:.2f}x" if res.ratio is not None else "—"
    cells = [
        res.name,
        fmt(res.median, res.unit),
        budget,
        res.verdict.upper(),
        res.baseline,
        fmt(res.baseline_median, res.unit),
        ratio,
        res.note.replace("|", "\\|"),
    ]
    return "| " + " | ".join(cells) + " |"


def render_table(results: Sequence[Result]) -> str:
    """The results as a markdown table."""
    head = [
        "benchmark",
        "median",
        "budget",
        "result",
        "baseline",
        "baseline median",
        "ratio",
        "note",
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    return "\n".join(lines + [table_row(res) for res in results])


def meta(ctx: Context) -> dict[str, Any]:
    """Where and how the numbers were taken."""
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "cli": ctx.cli,
        "repeat": ctx.repeat,
        "quick": ctx.quick,
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


# --- command line -------------------------------------------------------------------------------


def compile_package() -> None:
    """Byte-compile `pipeline/` as `pip install` would.

    With PYTHONDONTWRITEBYTECODE set (as on the development machines) an editable install
    would otherwise recompile every module on every run and time the compiler, not the tool.
    """
    subprocess.run(
        [sys.executable, "-m", "compileall", "-q", str(REPO / "pipeline")],
        check=True,
        env={k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"},
    )


def resolve_cli() -> tuple[list[str], dict[str, str] | None]:
    """The `pipeline` console script, else `python -m pipeline` with this checkout importable.

    The script next to this interpreter comes first: a version manager's shim on PATH (pyenv's
    is a bash script) would add its own start-up time to every measurement.
    """
    sibling = Path(sys.executable).with_name("pipeline")
    exe = str(sibling) if sibling.is_file() else shutil.which("pipeline")
    if exe:
        return [exe], None
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    return [sys.executable, "-m", "pipeline"], env


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Command-line options of the runner."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, help="timed runs per benchmark (5; 3 with --quick)")
    parser.add_argument("--quick", action="store_true", help="256 MB instead of 1 GB inputs")
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write results as JSON")
    parser.add_argument(
        "--only",
        nargs="+",
        metavar="NAME",
        choices=list(BENCHMARKS),
        help=f"run only these ({', '.join(BENCHMARKS)})",
    )
    parser.add_argument("--workdir", type=Path, help="where projects go (default: a temp dir)")
    parser.add_argument("--keep", action="store_true", help="keep generated projects")
    parser.add_argument("--check", action="store_true", help="exit 1 if a budget is not met")
    args = parser.parse_args(argv)
    if args.repeat is None:
        args.repeat = 3 if args.quick else 5
    if args.repeat < 1:
        parser.error("--repeat must be >= 1")
    return args


@contextlib.contextmanager
def workdir_for(args: argparse.Namespace) -> Iterator[Path]:
    """The work directory; a temporary one is removed afterwards unless `--keep`."""
    if args.workdir is not None:
        args.workdir.mkdir(parents=True, exist_ok=True)
        yield args.workdir.resolve()
        return
    path = Path(tempfile.mkdtemp(prefix="pipeline-bench-", dir="/tmp"))
    try:
        yield path
    finally:
        if args.keep:
            log(f"kept {path}")
        else:
            shutil.rmtree(path, ignore_errors=True)


def run_selected(ctx: Context, names: Sequence[str]) -> list[Result]:
    """Run the named benchmarks in order."""
    results = []
    for name in names:
        log(f"{name} ...")
        results.append(BENCHMARKS[name](ctx))
        log(f"  -> {results[-1].verdict}: {fmt(results[-1].median, results[-1].unit)}")
    return results


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `python bench/run.py`."""
    args = parse_args(argv)
    compile_package()
    cli, env = resolve_cli()
    with workdir_for(args) as workdir:
        ctx = Context(args.repeat, args.quick, workdir, cli, env, args.keep)
        results = run_selected(ctx, args.only or list(BENCHMARKS))
    info = meta(ctx)
    print(
        f"pipeline benchmarks — {info['cpus']} CPUs, Python {info['python']}, "
        f"repeat {ctx.repeat}{', quick' if ctx.quick else ''}; cli: {' '.join(cli)}\n"
    )
    print(render_table(results))
    if args.json:
        payload = {"meta": info, "results": [res.to_json() for res in results]}
        args.json.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    failed = [r.name for r in results if r.verdict in ("fail", "error")]
    return 1 if args.check and failed else 0


if __name__ == "__main__":
    sys.exit(main())
