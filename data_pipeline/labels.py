"""Domain labels: the recipe's subdomains for every problem, from the source's own label where it
has one, otherwise from a classifier trained on the rows that do.

The classifier is scikit-learn's TF-IDF (word 1-2 grams of the number-masked text, so "3x+5=11"
and "7x+2=30" look alike) with a multinomial logistic regression, classes weighted by their
inverse frequency (unweighted, minority domains were pulled into the majority one: counting 71%,
geometry 74% on real MATH). Rows whose source label maps to null train an ``outside`` class, so an
unlabelled problem of a subject the recipe leaves out is dropped rather than given a wrong domain.
Rows under the threshold are not labelled (the classifier abstains); they are dropped and counted.

The threshold can be chosen from targets: the smallest in 0.50-0.99 at which the labels' precision
on held-out labelled rows (a seeded 20%) reaches ``target`` overall and ``domain_target`` in every
domain. It is chosen on the same rows it is then reported on, so the report is slightly optimistic.
The VibeThinker report and the open pipelines use an LLM or the source's labels and publish no
labelling accuracy; here it is measured and written in the data card, overall and per domain.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from typing import Any

from ssp.data_pipeline.text import masked_words

OUTSIDE = "outside"  # the source's label maps to null: not one of the recipe's domains


def mapped_label(row: dict[str, Any], label_map: dict[str, str | None]) -> str | None:
    """The recipe domain of the row's own label (``OUTSIDE`` for a null mapping), or None when the
    row has no label or its label is not in the map (the classifier decides). A key ending in ``*``
    maps every label it starts (``"Mathematics -> Precalculus -> *"``, DeepMath's topic paths); an
    exact key wins over a prefix, a longer prefix over a shorter one."""
    label = row.get("source_label")
    if not label:
        return None
    if label in label_map:
        return label_map[label] or OUTSIDE
    prefixes = [k for k in label_map if k.endswith("*") and label.startswith(k[:-1])]
    if not prefixes:
        return None
    return label_map[max(prefixes, key=len)] or OUTSIDE


def unit_hash(seed: int, uid: str) -> float:
    """A uniform number in [0, 1) per (seed, row): the pipeline's only source of randomness."""
    digest = hashlib.blake2b(f"{seed}:{uid}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def _features(text: str) -> str:
    return " ".join(masked_words(text))


class DomainClassifier:
    def __init__(self, threshold: float = 0.5, seed: int = 0):
        self.threshold, self.seed = threshold, seed
        self.model = None

    def fit(self, texts: list[str], labels: list[str]) -> DomainClassifier:
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline

        self.model = make_pipeline(
            TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=1, token_pattern=r"\S+"),
            LogisticRegression(max_iter=2000, C=10.0, class_weight="balanced", random_state=self.seed),
        )
        self.model.fit([_features(t) for t in texts], labels)
        return self

    def top(self, texts: list[str]) -> list[tuple[str, float]]:
        """(most probable domain, its probability) per text, whatever the threshold."""
        if not texts:
            return []
        probs = self.model.predict_proba([_features(t) for t in texts])
        best = probs.argmax(axis=1)
        return [(str(self.model.classes_[b]), float(p[b])) for p, b in zip(probs, best, strict=True)]

    def predict(self, texts: list[str]) -> list[tuple[str | None, float]]:
        """(domain or None when under the threshold, confidence) per text."""
        return [(d if conf >= self.threshold else None, round(conf, 4)) for d, conf in self.top(texts)]


def held_out_accuracy(
    texts: list[str],
    labels: list[str],
    uids: list[str],
    threshold: float | None,
    seed: int,
    fraction: float = 0.2,
    target: float = 0.92,
    domain_target: float = 0.85,
) -> tuple[DomainClassifier, dict[str, Any]]:
    """Train on the labelled rows outside a seeded ``fraction`` and measure on the rest; ``labels``
    may include ``OUTSIDE``. ``threshold`` None = chosen from the targets (module docstring).

    Returns the classifier trained on the training part (the one that labels the corpus, with the
    threshold set) and the accuracy report for the card."""
    test = [unit_hash(seed + 7, u) < fraction for u in uids]
    train_x = [t for t, h in zip(texts, test, strict=True) if not h]
    train_y = [y for y, h in zip(labels, test, strict=True) if not h]
    test_x = [t for t, h in zip(texts, test, strict=True) if h]
    test_y = [y for y, h in zip(labels, test, strict=True) if h]
    clf = DomainClassifier(threshold if threshold is not None else 0.5, seed).fit(train_x, train_y)
    report: dict[str, Any] = {
        "train_rows": len(train_x),
        "held_out_rows": len(test_x),
        "train_rows_per_domain": dict(sorted(Counter(train_y).items())),
    }
    if not test_x:
        report["threshold"] = clf.threshold
        return clf, report
    tops = clf.top(test_x)  # one pass: the forced choice, and the confidence the threshold reads
    if threshold is None:
        chosen = next(
            (
                t / 100
                for t in range(50, 100)
                if _meets(_precision(tops, test_y, t / 100), target, domain_target)
            ),
            None,
        )
        report["threshold_chosen_for"] = {"overall": target, "per_domain": domain_target}
        report["targets_met"] = chosen is not None
        clf.threshold = chosen if chosen is not None else 0.99
    report["threshold"] = clf.threshold
    forced = [d for d, _ in tops]
    report["accuracy"] = round(sum(f == y for f, y in zip(forced, test_y, strict=True)) / len(test_y), 4)
    at = _precision(tops, test_y, clf.threshold)
    inside = sum(y != OUTSIDE for y in test_y)
    report["coverage_at_threshold"] = round(at["labelled"] / inside, 4) if inside else None
    report["accuracy_at_threshold"] = at["precision"]
    report["outside_let_in_at_threshold"] = at["outside_let_in"]
    per: dict[str, dict[str, float | None]] = {}
    for domain in sorted(set(test_y)):
        idx = [i for i, y in enumerate(test_y) if y == domain]
        per[domain] = {
            "rows": len(idx),
            "accuracy": round(sum(forced[i] == domain for i in idx) / len(idx), 4),  # recall, forced
            "precision_at_threshold": at["per_domain"].get(domain),
            "labelled_at_threshold": at["per_domain_rows"].get(domain, 0),
        }
    report["per_domain"] = per
    return clf, report


def _precision(tops: list[tuple[str, float]], truth: list[str], threshold: float) -> dict[str, Any]:
    """Of the held-out rows the classifier would label (a domain, at or over ``threshold``), the
    share whose domain is right, overall and per predicted domain."""
    given = [(d, y) for (d, conf), y in zip(tops, truth, strict=True) if conf >= threshold and d != OUTSIDE]
    per_rows = Counter(d for d, _ in given)
    right = Counter(d for d, y in given if d == y)
    return {
        "labelled": len(given),
        "precision": round(sum(right.values()) / len(given), 4) if given else None,
        "per_domain": {d: round(right[d] / n, 4) for d, n in per_rows.items()},
        "per_domain_rows": dict(per_rows),
        "outside_let_in": sum(y == OUTSIDE for _, y in given),
    }


def _meets(p: dict[str, Any], target: float, domain_target: float) -> bool:
    return (
        p["precision"] is not None
        and p["precision"] >= target
        and all(v >= domain_target for v in p["per_domain"].values())
    )
