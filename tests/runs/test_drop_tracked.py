"""Dropping a run (`gc --drop-runs`) removes the values its stages logged from code too."""

from __future__ import annotations

from sqlalchemy import func, insert, select

from pipeline.runs import schema
from pipeline.runs.runstore import RunStore
from tests.runs.support import _row


def test_dropping_a_run_drops_its_logged_values(store: RunStore) -> None:
    for run_id in ("gone", "kept"):
        store.start(_row(run_id, 1.0), {})
    with store.engine.begin() as conn:
        for run_id in ("gone", "kept"):
            point = {"run_id": run_id, "stage": "train", "key": "loss", "step": 0, "ts": 1.0}
            conn.execute(insert(schema.track_metrics).values(**point, seq=0, value=0.5))
            param = {"run_id": run_id, "stage": "train", "key": "lr", "value": "1"}
            conn.execute(insert(schema.track_params).values(**param))
    store.drop(["gone"])
    with store.engine.connect() as conn:
        for table in schema.TRACK_TABLES:
            query = select(func.count()).select_from(table).where(table.c.run_id == "gone")
            assert conn.execute(query).scalar() == 0, table.name
        kept = select(func.count()).select_from(schema.track_metrics)
        assert conn.execute(kept).scalar() == 1
