"""Fit a random forest on the training features and pickle it."""

import argparse
import pickle
from pathlib import Path

import numpy as np
from sklearn.ensemble import RandomForestClassifier


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("features", type=Path, help="directory with train.csv")
    parser.add_argument("model", type=Path, help="where to write the pickled model")
    parser.add_argument("--n_est", type=int, required=True, help="number of trees")
    parser.add_argument(
        "--min_split", type=float, required=True, help="min_samples_split, a fraction of rows"
    )
    parser.add_argument("--seed", type=int, required=True)
    args = parser.parse_args()

    table = np.loadtxt(args.features / "train.csv", delimiter=",", skiprows=1, ndmin=2)
    x, y = table[:, :-1], table[:, -1].astype(int)
    model = RandomForestClassifier(
        n_estimators=args.n_est, min_samples_split=args.min_split, random_state=args.seed
    )
    model.fit(x, y)

    args.model.parent.mkdir(parents=True, exist_ok=True)
    with args.model.open("wb") as f:
        pickle.dump(model, f)
    print(f"trained {args.n_est} trees on {len(y)} rows, train accuracy {model.score(x, y):.4f}")


if __name__ == "__main__":
    main()
