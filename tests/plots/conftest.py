"""Plot projects: a git repository with a dvc.yaml declaring plots of every kind, and data."""

from __future__ import annotations

import json
import math
import random
import struct
import zlib

import pytest
import yaml

from tests.conftest import Project

MANIFEST = """\
stages:
  train:
    cmd: echo train
    plots:
      - plots/accuracy.csv
plots:
  - plots/loss.tsv:
      x: epoch
      y: [train_loss, val_loss]
      title: Loss by epoch
      x_label: epoch
      y_label: loss
  - confusion:
      template: confusion
      x: actual
      y: {plots/preds.json: predicted}
      title: Confusion matrix
  - plots/prc.yaml:
      x: recall
      y: precision
      template: smooth
      title: Precision-recall
  - plots/features.csv:
      template: bar_horizontal_sorted
      x: importance
      y: feature
      title: Feature importance
  - plots/chart.png
"""


def png(size: int = 24) -> bytes:
    """A real PNG: a `size` by `size` grey gradient, built with zlib (no imaging library)."""
    rows = b"".join(b"\x00" + bytes((x * 255 // size) for x in range(size)) for _ in range(size))

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", size, size, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))  # fmt: skip


def write_data(project: Project, *, shift: float = 0.0, seed: int = 1) -> None:
    rng = random.Random(seed)
    lines = ["epoch\ttrain_loss\tval_loss"] + [
        f"{e}\t{2 * math.exp(-e / 8) + shift:.4f}\t{2.1 * math.exp(-e / 10) + 0.1 + shift:.4f}"
        for e in range(30)
    ]
    project.write("plots/loss.tsv", "\n".join(lines) + "\n")
    classes = ["cat", "dog", "bird"]
    preds = [
        {"actual": a, "predicted": a if rng.random() < 0.7 else rng.choice(classes)}
        for a in rng.choices(classes, k=120)
    ]
    project.write("plots/preds.json", json.dumps({"predictions": preds}))
    prc = [{"recall": r / 40, "precision": 1 - (r / 40) ** 3} for r in range(41)]
    project.write("plots/prc.yaml", yaml.safe_dump({"prc": prc}))
    features = "".join(f"f{i},{rng.random():.3f}\n" for i in range(6))
    project.write("plots/features.csv", "feature,importance\n" + features)
    accuracy = "".join(f"{0.5 + i / 40 + shift:.3f}\n" for i in range(20))
    project.write("plots/accuracy.csv", "acc\n" + accuracy)
    project.write("plots/chart.png", png())


@pytest.fixture
def plotted(project: Project) -> Project:
    """A project with every kind of plot, committed once."""
    project.write("dvc.yaml", MANIFEST)
    write_data(project)
    project.commit()
    return project
