"""`pipeline model build`: write (and optionally build) a container image context for a model.

Rendering only: resolving MODEL is `pipeline.serve.refs`, the context is
`pipeline.serve.dockerfile`; both load when the command runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from pipeline.cli.options import GlobalOptions

if TYPE_CHECKING:
    from pipeline.models.mlmodel import ModelInfo
    from pipeline.serve import dockerfile


@click.group()
def model() -> None:
    """Model packages: container images that serve them."""


@model.command()
@click.argument("model_ref", metavar="MODEL")
@click.option(
    "-o",
    "--output",
    "output",
    required=True,
    metavar="DIR",
    type=click.Path(file_okay=False),
    help="Directory to write the build context to (new, empty, or an earlier context).",
)
@click.option("--build", "do_build", is_flag=True, help="Also run docker build (or podman).")
@click.option("--tag", metavar="NAME", help="The image name for --build (default: MODEL's).")
@click.option(
    "--base-image", metavar="IMG", help="Base image (default: python:X.Y-slim of the model)."
)
@click.option("--trusted", is_flag=True, help="Allow a pickle model (it can run any code).")
@click.pass_obj
def build(
    opts: GlobalOptions,
    *,
    model_ref: str,
    output: str,
    do_build: bool,
    tag: str | None,
    base_image: str | None,
    trusted: bool,
) -> None:
    """Write a container build context that serves MODEL on port 8080.

    MODEL is a package directory, an artifact the manifest declares, runs:/RUN/PATH, or
    models:/NAME@ALIAS (or models:/NAME/N). The context holds a Dockerfile on python:X.Y-slim
    (the model's Python), the model's exact requirements, the serving code and the model,
    copied last; the image runs as a non-root user, with a healthcheck on /ping. --build runs
    docker build (or podman build) on it.
    """
    from pipeline.cli import report
    from pipeline.serve import dockerfile

    context, name = _write(opts, model_ref, Path(output), base_image, trusted)
    report.echo(f"wrote build context {context.directory} ({len(context.files)} files)")
    report.echo(f"  base image {context.base_image}, {len(context.requirements)} requirements")
    image = tag or dockerfile.default_tag(name)
    if not do_build:
        report.echo(f"build it with: docker build -t {image} {context.directory}")
        return
    argv = dockerfile.build(context, image)
    report.echo(f"built {image} with: {' '.join(argv)}", fg="green")


def _write(
    opts: GlobalOptions, ref: str, out: Path, base_image: str | None, trusted: bool
) -> tuple[dockerfile.BuildContext, str]:
    """Resolve `ref`, check the package, write its context; the context and a name for it."""
    from pipeline.errors import ModelError
    from pipeline.serve import dockerfile
    from pipeline.serve.refs import ModelRef, resolve_model

    given = Path(ref)
    if (given / "MLmodel").is_file():  # a package directory needs no project around it
        found = ModelRef(given.resolve(), None, str(given), path=str(given))
    else:
        found = resolve_model(Path(opts.directory), ref)
    info = _read(found.dir)
    if info.trusted_required and not trusted:
        raise ModelError(
            f"{found.source} is a pickle model: loading it can run any code",
            hint="build it only if you trust where it came from, with --trusted",
        )
    context = dockerfile.write_context(
        found.dir,
        out,
        mlmodel=info.raw,
        python_version=info.python_version or _this_python(),
        requirements=info.requirements,
        base_image=base_image,
        source=found.source,
        trusted=trusted,
    )
    name = found.version[0] if found.version else Path(found.path or found.dir).name
    return context, name


def _read(package: Path) -> ModelInfo:
    """The package's MLmodel, JSON (ours) or block YAML (MLflow's)."""
    from pipeline.core.yamlio import load_yaml
    from pipeline.errors import ModelError
    from pipeline.models.mlmodel import parse_mlmodel

    file = package / "MLmodel"
    if not file.is_file():
        raise ModelError(f"{package}: no MLmodel file", hint="is it a model package directory?")
    return parse_mlmodel(load_yaml(file).data, file)


def _this_python() -> str:
    import platform

    return platform.python_version()


COMMANDS = {"model": model}
