"""Measure the deadline extractor against the hand labels: per order and in total, by split.

Usage: python benchmarks/extractor_accuracy.py [--orders DIR] [--labels DIR] [--details]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from watchstander.guidance.extract_score import Score, load_labels, score_file

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    """Print TP/FP/FN, recall and precision per order, per split and in total."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=Path, default=ROOT.parent / "shared" / "orders")
    parser.add_argument("--labels", type=Path, default=ROOT / "tests" / "data" / "order_labels")
    parser.add_argument("--details", action="store_true", help="list every false positive and negative")
    args = parser.parse_args(argv)
    if not args.orders.is_dir():
        print(f"no order texts at {args.orders}", file=sys.stderr)
        return 2
    totals: dict[str, Score] = {}
    header = f"{'order':12} {'split':8} {'labels':>6} {'TP':>4} {'FP':>4} {'FN':>4} {'recall':>7} {'prec.':>7} {'due ok':>7}"
    print(header)
    print("-" * len(header))
    for path in sorted(args.labels.glob("*.yaml")):
        labels = load_labels(path)
        if labels.excluded:
            print(f"{labels.order:12} {labels.split:8} excluded: {labels.excluded}")
            continue
        s = score_file(labels, args.orders)
        totals.setdefault(labels.split, Score()).add(s)
        totals.setdefault("all", Score()).add(s)
        due = f"{s.due_checked - s.due_wrong}/{s.due_checked}"
        print(f"{labels.order:12} {labels.split:8} {len(labels.labels):6} {s.tp:4} {s.fp:4} {s.fn:4} "
              f"{s.recall:7.3f} {s.precision:7.3f} {due:>7}")
        if args.details:
            for key in s.false_negatives:
                print(f"    FN {key[0]:16} {key[1]}")
            for key in s.false_positives:
                print(f"    FP {key[0]:16} {key[1]}")
    print("-" * len(header))
    for split, s in sorted(totals.items()):
        due = f"{s.due_checked - s.due_wrong}/{s.due_checked}"
        print(f"{'TOTAL':12} {split:8} {s.tp + s.fn:6} {s.tp:4} {s.fp:4} {s.fn:4} "
              f"{s.recall:7.3f} {s.precision:7.3f} {due:>7}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
