"""`pipeline runs export --mlflow URI`: copy runs into an MLflow tracking store.

For teams that keep MLflow's UI. Each run becomes an MLflow run in one experiment (default
`pipeline`) with its params (the pipeline's and the logged ones), the full history of every
logged metric, the latest file metrics (at step 0), tags saying where it came from
(`pipeline.run_id`, kind, git commit) and its status and times. A run already exported there
(found by its `pipeline.run_id` tag) is skipped, so exporting again adds only new runs.

How, by URI:

- `file:PATH` or a plain path: MLflow's file-store layout is written directly
  (`<experiment>/<run>/meta.yaml`, `metrics/<key>` lines `timestamp value step`, `params/`,
  `tags/`); no MLflow needed. MLflow 3 reads it with `MLFLOW_ALLOW_FILE_STORE=true`.
- `http(s)://…`: MLflow's REST API (`runs/create`, `runs/log-batch` in batches of at most
  1,000 metrics and 100 params, `runs/update`); no MLflow needed.
- anything else (`sqlite:///mlflow.db`, `postgresql://…`): MLflow's own client, which must be
  importable (`pip install mlflow`), through `MlflowClient.log_batch`.

MLflow keys allow letters, digits, `_ - . / space`: other characters (the `:` of a file
metric's `path:key`) become `/`. A key is also a path (the file store writes `metrics/<key>`),
so MLflow refuses one that is absolute or has a `..` part, and so does the export: such a value
(only a run recorded before the parser refused them can hold one) is left out, with a warning.
Every file the file store writes is checked to stay inside its run's folder.
"""

from __future__ import annotations

import importlib
import json
import os
import posixpath
import re
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from sqlalchemy import select

from pipeline.errors import OutsideProject, UsageError
from pipeline.runs import schema
from pipeline.runs.model import RunRow, RunStatus

if TYPE_CHECKING:
    from pipeline.runs.runstore import RunStore

_STATUS = {  # MLflow's RunStatus numbers (file store) and names (REST, client)
    RunStatus.RUNNING: (1, "RUNNING"),
    RunStatus.SUCCEEDED: (3, "FINISHED"),
    RunStatus.FAILED: (4, "FAILED"),
    RunStatus.INTERRUPTED: (5, "KILLED"),
}
_BAD_KEY = re.compile(r"[^A-Za-z0-9_\-. /]")
MAX_METRICS, MAX_PARAMS = 1000, 100  # MLflow's log-batch limits
MAX_PARAM_VALUE = 6000


@dataclass
class Exported:
    """One run in MLflow's terms, ready to be written by any of the three writers."""

    run: RunRow
    params: dict[str, str]
    tags: dict[str, str]
    metrics: list[tuple[str, float, int, int]] = field(default_factory=list)  # key, value, ms, step

    @property
    def start_ms(self) -> int:
        return int(self.run.started_at * 1000)

    @property
    def end_ms(self) -> int | None:
        return None if self.run.ended_at is None else int(self.run.ended_at * 1000)


class _Writer(Protocol):
    def done(self) -> set[str]: ...
    def write(self, run: Exported) -> str: ...


def export(store: RunStore, runs: list[RunRow], uri: str, experiment: str) -> list[tuple[str, str]]:
    """Copy `runs` into the MLflow store at `uri`; (pipeline run id, MLflow run id) of each new."""
    writer = _writer(uri, experiment)
    done = writer.done()
    return [(r.id, writer.write(_gather(store, r))) for r in runs if r.id not in done]


def _writer(uri: str, experiment: str) -> _Writer:
    scheme = urllib.parse.urlparse(uri).scheme
    if scheme in ("", "file"):
        path = Path(urllib.parse.urlparse(uri).path if scheme else uri)
        return FileStore(path.absolute(), experiment)
    if scheme in ("http", "https"):
        return RestStore(uri.rstrip("/"), experiment)
    return ClientStore(uri, experiment)


def _gather(store: RunStore, run: RunRow) -> Exported:
    params = store.params_of([run.id])[run.id]
    latest = store.metrics_of([run.id])[run.id]
    tags = {
        "pipeline.run_id": run.id,
        "pipeline.kind": run.kind,
        "mlflow.runName": run.name or run.id,
        "mlflow.user": run.user or "",
        "mlflow.source.git.commit": run.git_commit or "",
    }
    t, tt = schema.track_metrics, schema.track_tags
    query = select(t.c.key, t.c.value, t.c.ts, t.c.step).where(t.c.run_id == run.id)
    with store.engine.connect() as conn:
        rows = conn.execute(query.order_by(t.c.key, t.c.step, t.c.ts, t.c.seq)).all()
        tagged = dict(conn.execute(select(tt.c.key, tt.c.value).where(tt.c.run_id == run.id)).all())
    logged = {r.key for r in rows}
    keys = _keys(run.id, {*params, *tagged, *logged, *latest})
    exported = Exported(
        run, {keys[k]: _text(v)[:MAX_PARAM_VALUE] for k, v in params.items() if k in keys}, tags
    )
    tags.update({keys[k]: v for k, v in tagged.items() if k in keys})
    exported.metrics = [
        (keys[k], v, int(ts * 1000), s) for k, v, ts, s in rows if v is not None and k in keys
    ]
    stamp = exported.end_ms or exported.start_ms
    for key, value in latest.items():
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        if key in keys and key not in logged and number:
            exported.metrics.append((keys[key], float(value), stamp, 0))
    return exported


def _keys(run_id: str, stored: set[str]) -> dict[str, str]:
    """Each stored key's MLflow key; a key MLflow refuses is left out, with a warning."""
    found = {key: _key(key) for key in sorted(stored)}
    for key, mapped in found.items():
        if mapped is None:  # on stderr, as the recorder's warnings: the result is the runs
            sys.stderr.write(
                f"warning: run {run_id}: {key!r} not exported: MLflow refuses a key that is"
                " absolute or has a '..' part\n"
            )
    return {key: mapped for key, mapped in found.items() if mapped is not None}


def _key(key: str) -> str | None:
    """`key` as MLflow takes it (`a//b` and `a/./b` become `a/b`), or None if it cannot."""
    mapped = _BAD_KEY.sub("/", key)
    if mapped.startswith("/") or ".." in mapped.split("/"):
        return None
    norm = posixpath.normpath(mapped)
    return None if norm == "." else norm


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


# --- MLflow's file-store layout ----------------------------------------------------------------


class FileStore:
    """Writes MLflow's file-store layout under `root` (what `file:` tracking URIs hold)."""

    def __init__(self, root: Path, experiment: str) -> None:
        self.root = root
        self.experiment = self._experiment(experiment)

    def _experiment(self, name: str) -> str:
        """The id of experiment `name`, created if need be."""
        ids = []
        for meta in self.root.glob("*/meta.yaml"):
            fields = _yaml_fields(meta)
            if fields.get("name") == name:
                return meta.parent.name
            ids.append(int(meta.parent.name) if meta.parent.name.isdigit() else 0)
        new = str(max(ids, default=0) + 1)
        now = int(time.time() * 1000)
        folder = self.root / new
        _write_yaml(
            folder / "meta.yaml",
            {
                "artifact_location": folder.as_uri(),
                "creation_time": now,
                "experiment_id": new,
                "last_update_time": now,
                "lifecycle_stage": "active",
                "name": name,
            },
        )
        return new

    def done(self) -> set[str]:
        tags = self.root.glob(f"{self.experiment}/*/tags/pipeline.run_id")
        return {path.read_text() for path in tags}

    def write(self, run: Exported) -> str:
        run_id = uuid.uuid4().hex
        folder = self.root / self.experiment / run_id
        for kind, values in (("params", run.params), ("tags", run.tags)):
            for name, text in values.items():
                _write(_inside(folder, kind, name), text)
        series: dict[str, list[str]] = {}
        for key, value, ms, step in run.metrics:
            series.setdefault(key, []).append(f"{ms} {value!r} {step}\n")
        for key, lines in series.items():
            _write(_inside(folder, "metrics", key), "".join(lines))
        (folder / "artifacts").mkdir(parents=True, exist_ok=True)
        meta: dict[str, Any] = {
            "artifact_uri": (folder / "artifacts").as_uri(),
            "end_time": run.end_ms,
            "entry_point_name": "",
            "experiment_id": self.experiment,
            "lifecycle_stage": "active",
            "run_id": run_id,
            "run_name": run.tags["mlflow.runName"],
            "run_uuid": run_id,
            "source_name": "",
            "source_type": 4,
            "source_version": run.run.git_commit or "",
            "start_time": run.start_ms,
            "status": _STATUS[run.run.status][0],
            "tags": [],
            "user_id": run.run.user or "",
        }
        _write_yaml(folder / "meta.yaml", meta)  # last: a run without meta.yaml is ignored
        return run_id


def _inside(folder: Path, kind: str, key: str) -> Path:
    """The file of `key` in the run's `kind` folder, refused if it would land anywhere else."""
    path = folder / kind / key
    real = os.path.realpath(path)
    if not real.startswith(os.path.realpath(folder / kind) + os.sep):
        raise OutsideProject(
            f"MLflow key {key!r} would be written to {real}, outside the run's folder {folder}",
            "such a key is never exported: report this as a bug",
        )
    return path


def _write(path: Path, text: str) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    except OSError as exc:  # a full disk, or keys `a` and `a/b` (a file and a folder)
        raise UsageError(
            f"cannot write {path}: {exc.strerror or exc}",
            "check the export folder; MLflow's file store cannot hold both keys `a` and `a/b`",
        ) from None


def _write_yaml(path: Path, data: dict[str, Any]) -> None:
    import yaml  # noqa: PLC0415 - only when exporting

    _write(path, yaml.safe_dump(data, sort_keys=True))


def _yaml_fields(path: Path) -> dict[str, Any]:
    import yaml  # noqa: PLC0415 - only when exporting

    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError):
        return {}
    return data if isinstance(data, dict) else {}


# --- MLflow's REST API -------------------------------------------------------------------------


class RestStore:
    """An MLflow tracking server, through its REST API (`/api/2.0/mlflow/...`)."""

    def __init__(self, base: str, experiment: str) -> None:
        self.base = base
        self.experiment = self._experiment(experiment)

    def _call(
        self, method: str, path: str, body: dict[str, Any] | None = None, *, missing: Any = ...
    ) -> Any:
        """One API call's answer; `missing` (if given) is the answer to a 404."""
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(f"{self.base}/api/2.0/mlflow/{path}", data, method=method)
        request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                return json.loads(response.read() or b"{}")
        except urllib.error.HTTPError as exc:
            if exc.code == 404 and missing is not ...:
                return missing
            raise self._refused(path, exc) from None
        except OSError as exc:  # URLError is an OSError
            raise self._refused(path, exc) from None

    def _refused(self, path: str, exc: OSError) -> UsageError:
        return UsageError(
            f"the MLflow server at {self.base} refused {path}: {exc}",
            "check the URI and that the server runs (`mlflow server`)",
        )

    def _experiment(self, name: str) -> str:
        query = urllib.parse.urlencode({"experiment_name": name})
        found = self._call("GET", f"experiments/get-by-name?{query}", missing=None)
        if found is not None:
            return str(found["experiment"]["experiment_id"])
        return str(self._call("POST", "experiments/create", {"name": name})["experiment_id"])

    def done(self) -> set[str]:
        body = {"experiment_ids": [self.experiment], "max_results": 1000}
        body["filter"] = "tags.`pipeline.run_id` != ''"
        found: set[str] = set()
        for run in self._call("POST", "runs/search", body).get("runs", []):
            for tag in run.get("data", {}).get("tags", []):
                if tag["key"] == "pipeline.run_id":
                    found.add(tag["value"])
        return found

    def write(self, run: Exported) -> str:
        body = {
            "experiment_id": self.experiment,
            "start_time": run.start_ms,
            "run_name": run.tags["mlflow.runName"],
            "user_id": run.run.user or "",
            "tags": [{"key": k, "value": v} for k, v in run.tags.items()],
        }
        run_id = str(self._call("POST", "runs/create", body)["run"]["info"]["run_id"])
        for batch in _batches(run):
            self._call("POST", "runs/log-batch", {"run_id": run_id, **batch})
        end = {"run_id": run_id, "status": _STATUS[run.run.status][1], "end_time": run.end_ms}
        self._call("POST", "runs/update", end)
        return run_id


def _batches(run: Exported) -> Iterator[dict[str, Any]]:
    """log-batch bodies within MLflow's limits."""
    params = [{"key": k, "value": v} for k, v in run.params.items()]
    for start in range(0, len(params), MAX_PARAMS):
        yield {"params": params[start : start + MAX_PARAMS]}
    metrics = [{"key": k, "value": v, "timestamp": ms, "step": s} for k, v, ms, s in run.metrics]
    for start in range(0, len(metrics), MAX_METRICS):
        yield {"metrics": metrics[start : start + MAX_METRICS]}


# --- MLflow's client, for its database stores -------------------------------------------------


class ClientStore:
    """Any other tracking URI, through `mlflow.MlflowClient` (MLflow must be installed)."""

    def __init__(self, uri: str, experiment: str) -> None:
        try:
            mlflow: Any = importlib.import_module("mlflow")  # optional: only for these URIs
        except ImportError:
            raise UsageError(
                f"exporting to a {uri.split(':', 1)[0]}: URI needs MLflow, which is not installed",
                "`pip install mlflow` next to pipeline, or export to a `file:` path or an"
                " `http://` MLflow server, which need no MLflow here",
            ) from None
        self.client: Any = mlflow.MlflowClient(tracking_uri=uri)
        found = self.client.get_experiment_by_name(experiment)
        self.experiment = (
            found.experiment_id if found else self.client.create_experiment(experiment)
        )

    def done(self) -> set[str]:
        runs = self.client.search_runs([self.experiment], "tags.`pipeline.run_id` != ''")
        return {r.data.tags["pipeline.run_id"] for r in runs}

    def write(self, run: Exported) -> str:
        entities: Any = importlib.import_module("mlflow.entities")

        created = self.client.create_run(
            self.experiment,
            start_time=run.start_ms,
            tags=run.tags,
            run_name=run.tags["mlflow.runName"],
        )
        run_id = str(created.info.run_id)
        for batch in _batches(run):
            metrics = [
                entities.Metric(m["key"], m["value"], m["timestamp"], m["step"])
                for m in batch.get("metrics", [])
            ]
            params = [entities.Param(p["key"], p["value"]) for p in batch.get("params", [])]
            self.client.log_batch(run_id, metrics=metrics, params=params, tags=[])
        self.client.set_terminated(run_id, _STATUS[run.run.status][1], run.end_ms)
        return run_id


def export_refs(
    root: Path | str, refs: tuple[str, ...], uri: str, experiment: str
) -> list[tuple[str, str]]:
    """`pipeline runs export --mlflow URI [RUN]...`: the runs (a sweep: its points; none: all)."""
    from pipeline.runs.tracking import reading  # noqa: PLC0415 - tracking imports this module's peers

    with reading(root) as store:
        if refs:
            chosen = [store.find(ref) for ref in refs]
            points = store.children_of([r.id for r in chosen])
            ids = [i for r in chosen for i in points.get(r.id, [r.id])]
            runs = [store.find(i) for i in ids]
        else:
            runs = [r for r in reversed(store.runs()) if r.kind != "sweep"]
        return export(store, runs, uri, experiment)
