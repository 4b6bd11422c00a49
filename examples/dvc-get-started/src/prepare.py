"""Split the raw CSV into stratified train and test sets (rows are copied verbatim)."""

import argparse
from pathlib import Path

import numpy as np
from sklearn.model_selection import train_test_split


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("raw", type=Path, help="raw CSV; the last column is the label")
    parser.add_argument("out", type=Path, help="directory for train.csv and test.csv")
    parser.add_argument("--split", type=float, required=True, help="fraction held out for test")
    parser.add_argument("--seed", type=int, required=True)
    args = parser.parse_args()

    header, *rows = args.raw.read_text().splitlines()
    labels = np.array([row.rsplit(",", 1)[1] for row in rows])
    train, test = train_test_split(
        np.arange(len(rows)), test_size=args.split, random_state=args.seed, stratify=labels
    )

    args.out.mkdir(parents=True, exist_ok=True)
    for name, index in (("train", train), ("test", test)):
        lines = [header, *(rows[i] for i in index)]
        (args.out / f"{name}.csv").write_text("\n".join(lines) + "\n")
        print(f"{name}: {len(index)} rows")


if __name__ == "__main__":
    main()
