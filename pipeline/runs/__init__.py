"""Step ④, record: the run store (`.pipeline/runs.db`) and what reads it (DESIGN §7).

`schema.py` defines the tables (SQLAlchemy Core, portable to PostgreSQL), `store.py` writes
and queries them, `record.py` turns an executed plan into a run record.
"""
