"""Train a random forest classifier on the prepared training split and pickle it."""

import argparse
import pickle
from pathlib import Path

import numpy as np
from sklearn.ensemble import RandomForestClassifier

PICKLE_PROTOCOL = 5  # fixed, so the bytes do not depend on the Python version's default


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, required=True, help="directory with train.csv")
    parser.add_argument("--model", type=Path, required=True, help="where to write the model")
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
    model = RandomForestClassifier(
        n_estimators=args.n_estimators,
        max_depth=args.max_depth,
        random_state=args.seed,
        n_jobs=1,
    )
    model.fit(features, labels)
    args.model.parent.mkdir(parents=True, exist_ok=True)
    with open(args.model, "wb") as f:
        pickle.dump(model, f, protocol=PICKLE_PROTOCOL)
    print(f"train: fitted {args.n_estimators} trees on {len(labels)} rows -> {args.model}")


if __name__ == "__main__":
    main()
