"""Tests of pipeline.load: manifests, params, templates, generators, the DAG, environments."""
