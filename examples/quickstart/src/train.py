"""Train a random forest classifier on the prepared training split and package it.

The forest grows ten trees at a time, and `pipeline.track` logs its test accuracy at each
size: `pipeline runs metrics`, `plots show` and `pipeline ui` draw the curve. Logging is one
line appended to a file per call; it never changes whether the stage is up to date.

`pipeline.models.save` writes an MLflow-format model package (skops, not pickle): the model,
a signature and input example from the sample rows, and the env's exact requirements, so
`pipeline serve` and MLflow's tools can load it.
"""

import argparse
from pathlib import Path

import numpy as np
from sklearn.ensemble import RandomForestClassifier

import pipeline.models
from pipeline import track

GROWTH = 10  # trees added per step of the learning curve


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, required=True, help="train.csv and test.csv")
    parser.add_argument("--model", type=Path, required=True, help="package dir to write")
    parser.add_argument("--n-estimators", type=int, required=True, help="number of trees")
    parser.add_argument("--max-depth", type=int, required=True, help="maximum tree depth")
    parser.add_argument("--seed", type=int, required=True, help="random seed for the forest")
    return parser.parse_args()


def load_split(path: Path) -> tuple[np.ndarray, np.ndarray]:
    table = np.loadtxt(path, delimiter=",", skiprows=1)
    return table[:, :-1], table[:, -1].astype(int)


def main() -> None:
    args = parse_args()
    features, labels = load_split(args.data / "train.csv")
    test_features, test_labels = load_split(args.data / "test.csv")
    # warm_start adds trees to those already grown; the forest equals one grown at once
    model = RandomForestClassifier(
        max_depth=args.max_depth, random_state=args.seed, n_jobs=1, warm_start=True
    )
    for trees in [*range(GROWTH, args.n_estimators, GROWTH), args.n_estimators]:
        model.set_params(n_estimators=trees)
        model.fit(features, labels)
        track.log_metric("test_accuracy", model.score(test_features, test_labels), step=trees)
    # A forest's trees are a type skops loads only when told to trust it (a crafted file could
    # crash the process that predicts with it). This model is our own: say so, and serving it
    # will need `--trusted` in turn.
    pipeline.models.save(model, args.model, sample=features[:5], trusted=True)
    print(f"train: fitted {args.n_estimators} trees on {len(labels)} rows -> {args.model}")


if __name__ == "__main__":
    main()
