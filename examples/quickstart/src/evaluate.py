"""Score the trained model on the test split and write the metrics as JSON."""

import argparse
import json
from pathlib import Path

import numpy as np
import skops.io
from sklearn.metrics import accuracy_score, f1_score


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, required=True, help="directory with test.csv")
    parser.add_argument("--model", type=Path, required=True, help="the model package to score")
    parser.add_argument("--out", type=Path, required=True, help="where to write the metrics")
    return parser.parse_args()


def load_split(path: Path) -> tuple[np.ndarray, np.ndarray]:
    table = np.loadtxt(path, delimiter=",", skiprows=1)
    return table[:, :-1], table[:, -1].astype(int)


def score(labels: np.ndarray, predicted: np.ndarray) -> dict[str, float | int]:
    return {
        "accuracy": round(float(accuracy_score(labels, predicted)), 4),
        "f1_macro": round(float(f1_score(labels, predicted, average="macro")), 4),
        "n_test": len(labels),
    }


def main() -> None:
    args = parse_args()
    features, labels = load_split(args.data / "test.csv")
    # skops refuses types it cannot vouch for; a forest's trees are one. The file is the one
    # the train stage wrote, so its own types are trusted here.
    path = args.model / "model.skops"
    model = skops.io.load(path, trusted=skops.io.get_untrusted_types(file=path))
    metrics = score(labels, model.predict(features))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(metrics, f, indent=2, sort_keys=True)
        f.write("\n")
    print(f"evaluate: accuracy={metrics['accuracy']} f1_macro={metrics['f1_macro']}")


if __name__ == "__main__":
    main()
