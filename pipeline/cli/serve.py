"""`pipeline serve MODEL`: the model behind MLflow's scoring protocol on loopback.

Printing and flags only: the server is `pipeline.serve.launch`, loaded when the command runs.
Plain lines on stderr, no colour, so it reads the same with NO_COLOR, in a log or a container.
"""

from __future__ import annotations

import click

from pipeline.cli.options import GlobalOptions


@click.command()
@click.argument("model", metavar="MODEL")
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to listen on. Loopback by default; 0.0.0.0 serves every interface.",
)
@click.option(
    "-p",
    "--port",
    default=5000,
    show_default=True,
    type=click.IntRange(0, 65535),
    help="Port to listen on; 0 picks a free one (the URL is printed at start).",
)
@click.option(
    "-w",
    "--workers",
    default=1,
    show_default=True,
    type=click.IntRange(min=1),
    help="Server processes, each with its own copy of the model.",
)
@click.option(
    "--trusted",
    is_flag=True,
    help="Load a pickle model (or a skops file's own types): only for packages you trust, "
    "as loading them can run any code.",
)
@click.option(
    "--env-manager",
    type=click.Choice(["virtualenv", "local"]),
    default="virtualenv",
    show_default=True,
    help="virtualenv: the model's own env, built once from its lock or requirements and "
    "reused; local: this interpreter.",
)
@click.option(
    "--max-body",
    default="50MB",
    show_default=True,
    metavar="SIZE",
    help="Largest request body (e.g. 512KB, 50MB); larger ones get 413.",
)
@click.pass_obj
def serve(  # noqa: PLR0917 (click passes each option by name)
    opts: GlobalOptions,
    model: str,
    host: str,
    port: int,
    workers: int,
    trusted: bool,
    env_manager: str,
    max_body: str,
) -> None:
    """Serve MODEL over HTTP with MLflow's scoring protocol, so MLflow clients work unchanged.

    MODEL is a model package directory (what pipeline.models.save wrote), a run and path
    (runs:/RUN/PATH), a registered version (models:/NAME@ALIAS, models:/NAME/N,
    models:/NAME/latest) or the name of a model in the manifest's artifacts.

    \b
    Endpoints:
      POST /invocations   JSON with one of dataframe_split, dataframe_records,
                          instances or inputs (plus optional params), or text/csv
                          -> {"predictions": [...]}
      GET  /ping /health  200 once the model is loaded (503 if its worker died)
      GET  /version       the version of pipeline
      GET  /openapi.json  the model's signature as an OpenAPI 3 description
      GET  /interface.json  the signature and the versions the model runs with

    Input that does not fit the model's signature gets 400 with a message, a body over
    --max-body 413, an unsupported content type 415. The model runs in a child process in
    its own env, which the stage that saved it already built (or which is built once, never
    re-resolved). Ctrl-C stops the server and the model.

    \b
    Example:
      pipeline serve models/classifier --port 5001
      curl -s localhost:5001/invocations -H 'Content-Type: application/json' \\
           -d '{"dataframe_records": [{"x": 1.0, "y": 2.0}]}'
    """
    from pipeline.serve.launch import ServeOptions, parse_size
    from pipeline.serve.launch import serve as run_server

    options = ServeOptions(
        model,
        host,
        port,
        workers,
        trusted,
        env_manager,
        parse_size(max_body),
        opts.directory,
    )
    run_server(options, _say)
    click.echo("stopped", err=True)


def _say(line: str) -> None:
    click.echo(line, nl=False, err=True)


COMMANDS = {"serve": serve}
