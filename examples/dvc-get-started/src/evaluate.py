"""Score the model on the test features: metrics JSON, ROC curve and confusion pairs as CSV."""

import argparse
import json
import pickle
from pathlib import Path

import numpy as np
from sklearn import metrics

CLASSES = ("benign", "malignant")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("model", type=Path, help="pickled classifier")
    parser.add_argument("features", type=Path, help="directory with test.csv")
    parser.add_argument("out", type=Path, help="directory for metrics.json and plots/")
    args = parser.parse_args()

    with args.model.open("rb") as f:
        model = pickle.load(f)
    table = np.loadtxt(args.features / "test.csv", delimiter=",", skiprows=1, ndmin=2)
    x, y = table[:, :-1], table[:, -1].astype(int)
    proba = model.predict_proba(x)[:, 1]
    pred = (proba >= 0.5).astype(int)

    scores = {
        "accuracy": metrics.accuracy_score(y, pred),
        "f1": metrics.f1_score(y, pred),
        "roc_auc": metrics.roc_auc_score(y, proba),
        "avg_prec": metrics.average_precision_score(y, proba),
    }
    plots = args.out / "plots"
    plots.mkdir(parents=True, exist_ok=True)
    text = json.dumps({k: round(float(v), 4) for k, v in scores.items()}, indent=2)
    (args.out / "metrics.json").write_text(text + "\n")

    fpr, tpr, _ = metrics.roc_curve(y, proba)
    roc = np.column_stack([fpr, tpr])
    np.savetxt(plots / "roc.csv", roc, fmt="%.6f", delimiter=",", header="fpr,tpr", comments="")
    pairs = [f"{CLASSES[a]},{CLASSES[p]}" for a, p in zip(y, pred, strict=True)]
    (plots / "confusion.csv").write_text("\n".join(["actual,predicted", *pairs]) + "\n")
    print(", ".join(f"{k} {v:.4f}" for k, v in scores.items()))


if __name__ == "__main__":
    main()
