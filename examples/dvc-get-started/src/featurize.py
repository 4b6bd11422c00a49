"""Standardise, add polynomial terms and keep the features most associated with the label."""

import argparse
from pathlib import Path

import numpy as np
from sklearn.feature_selection import SelectKBest, f_classif
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import PolynomialFeatures, StandardScaler


def load(path: Path) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Column names, features and labels of a CSV whose last column is the label."""
    names = path.read_text().split("\n", 1)[0].split(",")
    table = np.loadtxt(path, delimiter=",", skiprows=1, ndmin=2)
    return names[:-1], table[:, :-1], table[:, -1].astype(int)


def save(path: Path, names: list[str], x: np.ndarray, y: np.ndarray) -> None:
    table = np.column_stack([x, y])
    fmt = ["%.6f"] * x.shape[1] + ["%d"]
    np.savetxt(path, table, fmt=fmt, delimiter=",", header=",".join(names), comments="")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("prepared", type=Path, help="directory with train.csv and test.csv")
    parser.add_argument("out", type=Path, help="directory for the feature CSVs")
    parser.add_argument("--max_features", type=int, required=True, help="features to keep")
    parser.add_argument("--degree", type=int, required=True, help="polynomial degree")
    args = parser.parse_args()

    names, x_train, y_train = load(args.prepared / "train.csv")
    _, x_test, y_test = load(args.prepared / "test.csv")

    scale = StandardScaler()
    poly = PolynomialFeatures(degree=args.degree, include_bias=False)
    select = SelectKBest(f_classif, k=args.max_features)
    features = make_pipeline(scale, poly, select).fit(x_train, y_train)

    kept = poly.get_feature_names_out(names)[select.get_support()]
    header = [name.replace(" ", "*") for name in kept] + ["malignant"]
    args.out.mkdir(parents=True, exist_ok=True)
    save(args.out / "train.csv", header, features.transform(x_train), y_train)
    save(args.out / "test.csv", header, features.transform(x_test), y_test)
    print(f"kept {len(kept)} of {poly.n_output_features_} features: {', '.join(header[:-1])}")


if __name__ == "__main__":
    main()
