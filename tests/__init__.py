"""The test suite: one package per part of `pipeline`, one module per module it tests."""
