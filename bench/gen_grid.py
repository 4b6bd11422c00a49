"""Generate a layered "grid" pipeline project for benchmarks.

The project holds an `MLproject` manifest, a `data/input.bin` of random bytes and nothing else.
Stage `s{l}_{w}` (layer l, index w) writes `out/s{l}_{w}/` with F tiny text files. Layer 0
stages depend on `data/input.bin`; stage (l, w) with l > 0 depends on the outputs of stages
(l-1, w) and (l-1, (w+1) % W), so every layer fans in from its predecessor.

Usage as a script::

    python bench/gen_grid.py DIR --layers L --width W --files F --input-mb M [--seed S]

Usage as a module::

    from gen_grid import generate
    generate(Path("/tmp/grid"), layers=10, width=10, files=10, input_mb=1)
"""

from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path
from typing import Any

import yaml

MANIFEST = "MLproject"
DVC_MANIFEST = "dvc.yaml"
INPUT = "data/input.bin"
PARAM_KEY = "mid.value"
CHUNK = 1 << 20  # 1 MiB


def stage_name(layer: int, index: int) -> str:
    """Name of the stage at `layer`, `index`."""
    return f"s{layer}_{index}"


def stage_out(layer: int, index: int) -> str:
    """The output directory of a stage, relative to the project root."""
    return f"out/{stage_name(layer, index)}"


def stage_deps(layer: int, index: int, width: int) -> list[str]:
    """Dependencies of a stage: the input for layer 0, else two outputs of the layer before."""
    if layer == 0:
        return [INPUT]
    deps = [stage_out(layer - 1, index), stage_out(layer - 1, (index + 1) % width)]
    return list(dict.fromkeys(deps))  # width 1 would list the same out twice


def stage_cmd(layer: int, index: int, files: int) -> str:
    """A trivial shell command writing `files` small files into the stage's out dir."""
    name, out = stage_name(layer, index), stage_out(layer, index)
    return f"mkdir -p {out} && for i in $(seq 1 {files}); do echo {name} $i > {out}/f$i.txt; done"


def propagating_cmd(layer: int, index: int, files: int, width: int, param: bool) -> str:
    """Like `stage_cmd`, plus a `sig.txt` derived from the upstream ones (and the param).

    A change anywhere then changes every output downstream of it, so a rerun propagates the
    way it does in a real pipeline instead of stopping at identical bytes.
    """
    out = stage_out(layer, index)
    sources = " ".join(f"{d}/sig.txt" for d in stage_deps(layer, index, width) if d != INPUT)
    upstream = f"cat {sources}" if sources else f"echo {stage_name(layer, index)}"
    extra = f"; echo ${{{PARAM_KEY}}}" if param else ""
    return f"{stage_cmd(layer, index, files)} && ({upstream}{extra}) | cksum > {out}/sig.txt"


def build_manifest(
    layers: int,
    width: int,
    files: int,
    *,
    propagate: bool = False,
    param_stage: tuple[int, int] | None = None,
) -> dict[str, Any]:
    """The manifest as a dict, stages in topological (layer-major) order."""
    stages: dict[str, Any] = {}
    for layer in range(layers):
        for index in range(width):
            has_param = param_stage == (layer, index)
            cmd = (
                propagating_cmd(layer, index, files, width, has_param)
                if propagate
                else stage_cmd(layer, index, files)
            )
            stages[stage_name(layer, index)] = {
                "cmd": cmd,
                "deps": stage_deps(layer, index, width),
                "outs": [stage_out(layer, index)],
            }
    return {"name": "grid", "stages": stages}


def cone_size(layers: int, width: int, stage: tuple[int, int]) -> int:
    """How many stages rerun when `stage` changes: itself and everything downstream."""
    layer, index = stage
    reached = {index}
    total = 1
    for _ in range(layer + 1, layers):
        reached = {i for i in range(width) if i in reached or (i + 1) % width in reached}
        total += len(reached)
    return total


def stage_commands(layers: int, width: int, files: int) -> list[str]:
    """Every stage command in an order that respects the dependencies."""
    return [stage_cmd(lay, idx, files) for lay in range(layers) for idx in range(width)]


def write_input(path: Path, size_mb: int, seed: int = 0) -> None:
    """Write `size_mb` MiB of seeded pseudo-random bytes to `path`, one MiB at a time."""
    rng = random.Random(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as fh:
        for _ in range(size_mb):
            fh.write(rng.randbytes(CHUNK))


def generate(
    root: Path,
    layers: int,
    width: int,
    files: int,
    input_mb: int,
    *,
    seed: int = 0,
    dvc: bool = False,
    propagate: bool = False,
    param_stage: tuple[int, int] | None = None,
) -> Path:
    """Create the grid project in `root` (made if missing) and return the manifest path.

    `dvc=True` writes `dvc.yaml` (no `name:` key, as DVC has none) instead of `MLproject`;
    `param_stage` makes that stage read `mid.value` from `params.yaml` in its command.
    """
    if layers < 1 or width < 1 or files < 1 or input_mb < 0:
        raise ValueError("layers, width and files must be >= 1 and input_mb >= 0")
    root.mkdir(parents=True, exist_ok=True)
    data = build_manifest(layers, width, files, propagate=propagate, param_stage=param_stage)
    if dvc:
        data.pop("name")
    manifest = root / (DVC_MANIFEST if dvc else MANIFEST)
    manifest.write_text(yaml.safe_dump(data, sort_keys=False, width=1000), encoding="utf-8")
    if param_stage is not None:
        set_param(root, 1)
    write_input(root / INPUT, input_mb, seed)
    return manifest


def set_param(root: Path, value: int) -> None:
    """Write `params.yaml` with `mid.value` set to `value`."""
    (root / "params.yaml").write_text(f"mid:\n  value: {value}\n", encoding="utf-8")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line options of the generator."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dir", type=Path, help="project directory to create")
    parser.add_argument("--layers", type=int, required=True, help="number of layers (L)")
    parser.add_argument("--width", type=int, required=True, help="stages per layer (W)")
    parser.add_argument("--files", type=int, default=10, help="files per stage output (F)")
    parser.add_argument("--input-mb", type=int, default=1, help="size of data/input.bin in MiB")
    parser.add_argument("--seed", type=int, default=0, help="seed of the input bytes")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Entry point of `python bench/gen_grid.py`."""
    args = parse_args(argv)
    shape = (args.layers, args.width, args.files, args.input_mb)
    manifest = generate(args.dir, *shape, seed=args.seed)
    print(f"wrote {manifest} ({args.layers * args.width} stages, {args.input_mb} MiB input)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
