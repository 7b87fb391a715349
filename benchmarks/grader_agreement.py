"""How the graders agree with real evaluation outputs' labels and with each other.

    python benchmarks/grader_agreement.py                       # prints the tables of docs/rewards.md
    python benchmarks/grader_agreement.py --disagreements ssp   # the rows where ssp and the label differ

Reads ``tests/fixtures/real_outputs/math.jsonl.gz`` (real completions with the label of the grader
their repository used; tests/fixtures/real_outputs/SOURCES.md) and the reviewed disagreements of
the ``ssp`` grader (``reviewed_math.jsonl``: each read by hand, verdict ``ours_wrong``,
``label_wrong``, ``policy`` or ``ambiguous``). The *truth* of a row is its label, flipped where the
review found the label wrong, and 0 where the review found the output holds no final answer
(``policy``: ssp's rule; docs/rewards.md "What is an answer"). Each grader's false positives and
negatives are counted against that truth.
"""

from __future__ import annotations

import argparse
import gzip
import json
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures" / "real_outputs"
GRADERS = ("ssp", "deepscaler", "qwen25math")


def load() -> tuple[list[dict], dict[str, dict]]:
    with gzip.open(FIXTURES / "math.jsonl.gz", "rt") as f:
        rows = [json.loads(line) for line in f]
    reviewed = {}
    for n, line in enumerate((FIXTURES / "reviewed_math.jsonl").read_text().splitlines(), 1):
        if line.strip():
            r = json.loads(line)
            if r["id"] in reviewed:
                raise SystemExit(f"reviewed_math.jsonl:{n}: {r['id']} is reviewed twice")
            reviewed[r["id"]] = r
    return rows, reviewed


def grade(rows: list[dict], grader: str, workers: int = 2) -> tuple[list[float | None], list[str]]:
    from ssp.reward import get_reward

    # a generous timeout: this measures what is judged equal, not speed (a loaded CI machine)
    reward = get_reward("math_correctness", grader=grader, workers=workers, timeout=60.0)
    try:
        scores = reward([r["completion"] for r in rows], answer=[r["gold"] for r in rows])
        return scores, list(reward.last.missing)
    finally:
        reward.close()


def truth(row: dict, review: dict | None) -> bool:
    if review is None or review["verdict"] in ("ours_wrong", "ambiguous"):
        return bool(row["label"])
    if review["verdict"] == "label_wrong":
        return not row["label"]
    return False  # policy: the output holds no final answer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--disagreements", metavar="GRADER", help="print the rows where GRADER and the label differ"
    )
    args = parser.parse_args()
    rows, reviewed = load()
    scores = {g: grade(rows, g)[0] for g in GRADERS}
    correct = {g: [s == 1.0 for s in scores[g]] for g in GRADERS}
    n = len(rows)
    print(
        f"{n} real completions from {len({r['source'] for r in rows})} sources; labels say {sum(r['label'] for r in rows)} correct"
    )
    verdicts = Counter(r["verdict"] for r in reviewed.values())
    print(f"ssp vs labels: {len(reviewed)} reviewed disagreements: {dict(verdicts)}")
    print("\n| grader | Pass@1 | disagrees with labels | false positives | false negatives | wrong |")
    print("|---|---|---|---|---|---|")
    for g in GRADERS:
        t = [truth(r, reviewed.get(r["id"])) for r in rows]
        fp = sum(c and not x for c, x in zip(correct[g], t, strict=True))
        fn = sum(x and not c for c, x in zip(correct[g], t, strict=True))
        dis = sum(c != bool(r["label"]) for c, r in zip(correct[g], rows, strict=True))
        print(
            f"| {g} | {100 * sum(correct[g]) / n:.1f}% | {dis} | {fp} | {fn} | {100 * (fp + fn) / n:.2f}% |"
        )
    print("\n| pair | samples they disagree on |\n|---|---|")
    for i, a in enumerate(GRADERS):
        for b in GRADERS[i + 1 :]:
            print(f"| {a} vs {b} | {sum(x != y for x, y in zip(correct[a], correct[b], strict=True))} |")
    if args.disagreements:
        for r, c in zip(rows, correct[args.disagreements], strict=True):
            if c != bool(r["label"]):
                print(
                    f"\n== {r['id']} label {r['label']} ours {c} gold {r['gold']!r}\n...{r['completion'][-300:]!r}"
                )


if __name__ == "__main__":
    main()
