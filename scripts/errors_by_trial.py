"""Where a model's errors are: wrong windows counted by subject, recording, truth and prediction.

    .venv/bin/python scripts/errors_by_trial.py --data ../shared/data/motionsense [--model PATH]
        [--split validation] [--min 5]

Scores the split's engine-grid windows as ``harstream evaluate`` does and
prints one line per (subject, recording, truth, predicted) with at least
``--min`` windows, most first. A recording with all its errors in one line
is worth a look at its raw data (a phone upside down, a rolled pocket).
"""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path

from harstream.data.layouts import detect, read_any
from harstream.data.splits import split_subjects
from harstream.model.classifier import Classifier
from training.evaluate import predict_dataset


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="HAPT or MotionSense folder")
    parser.add_argument("--model", type=Path, default=None, help="model artifact (default: the shipped one)")
    parser.add_argument("--split", default="validation", help="split to score (default: validation)")
    parser.add_argument("--min", type=int, default=5, help="smallest count printed (default: 5)")
    args = parser.parse_args()
    classifier = Classifier.load(args.model)
    subjects = set(split_subjects(detect(args.data), args.split))
    predictions, _, _ = predict_dataset(classifier, read_any(args.data, subjects))
    predicted = predictions.probs.argmax(axis=1)
    wrong = predicted != predictions.truth
    labels = classifier.labels
    counts = Counter(
        (int(s), int(e), labels[t], labels[p])
        for s, e, t, p in zip(predictions.subject[wrong], predictions.experiment[wrong],
                              predictions.truth[wrong], predicted[wrong], strict=True)
    )
    print(f"{int(wrong.sum())} of {len(wrong)} windows wrong ({args.split}, subjects {sorted(subjects)})")
    print("subject  recording  truth -> predicted: windows")
    for (subject, recording, truth, guess), n in counts.most_common():
        if n >= args.min:
            print(f"{subject:>7}  {recording:>9}  {truth} -> {guess}: {n}")


if __name__ == "__main__":
    main()
