"""Split scikit-learn's bundled wine dataset into stratified train and test CSVs.

Each CSV has a header row, the 13 features, and the class label as its last column.
"""

import argparse
from pathlib import Path

import numpy as np
from sklearn.datasets import load_wine
from sklearn.model_selection import train_test_split


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--test-size", type=float, required=True, help="fraction held out")
    parser.add_argument("--seed", type=int, required=True, help="random seed for the split")
    parser.add_argument("--out", type=Path, required=True, help="output directory")
    return parser.parse_args()


def write_csv(path: Path, features: np.ndarray, labels: np.ndarray, header: str) -> None:
    table = np.column_stack([features, labels])
    np.savetxt(path, table, fmt="%.10g", delimiter=",", header=header, comments="")


def main() -> None:
    args = parse_args()
    wine = load_wine()
    x_train, x_test, y_train, y_test = train_test_split(
        wine.data,
        wine.target,
        test_size=args.test_size,
        random_state=args.seed,
        stratify=wine.target,
    )
    args.out.mkdir(parents=True, exist_ok=True)
    header = ",".join([*wine.feature_names, "label"])
    write_csv(args.out / "train.csv", x_train, y_train, header)
    write_csv(args.out / "test.csv", x_test, y_test, header)
    print(f"prepare: {len(y_train)} train rows, {len(y_test)} test rows -> {args.out}")


if __name__ == "__main__":
    main()
