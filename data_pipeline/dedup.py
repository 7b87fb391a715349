"""Deduplication of problems across all sources, in one streaming pass.

Exact: two problems are the same when their normal forms (``text.words`` joined: lower-case,
punctuation, LaTeX markup and spacing removed) are equal; the form's 16-byte hash is kept, not the
text. Near: MinHash over word 3-gram shingles with locality-sensitive hashing (datasketch's
``MinHashLSH``, the method of BigCode's and text-dedup's pipelines); a problem whose estimated
Jaccard similarity to a kept one reaches ``threshold`` is a near duplicate. Numbers are kept in the
shingles: "the same problem with other numbers" is a different training problem here (it is a
contamination for benchmarks: ``decontaminate.py`` masks numbers).

The first problem seen is kept (sources in the recipe's order, rows in each source's order), so
list the source you trust most first. Memory: one hash per kept problem, its MinHash signature
(``num_perm`` x 8 bytes, kept to report the similarity of each duplicate found) and the LSH
tables: about 1.2 KB per kept problem with the default 64 permutations, ~1.2 GB per million
problems. The texts are not held.
"""

from __future__ import annotations

import hashlib
from typing import Any

from ssp.data_pipeline.text import grams, words

SHINGLE = 3


class Deduplicator:
    def __init__(self, threshold: float = 0.8, num_perm: int = 64, seed: int = 1):
        """``threshold`` 0 turns near-duplicate detection off (exact only)."""
        self.exact: dict[bytes, str] = {}
        self.threshold, self.num_perm, self.seed = threshold, num_perm, seed
        self.lsh = None
        if threshold > 0:
            from datasketch import MinHashLSH

            self.lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
        self.signatures: dict[str, Any] = {}
        self.permutations = None

    def _minhash(self, ws: tuple[str, ...]):
        from datasketch import MinHash

        if self.permutations is None:  # drawn once: drawing them per row was 45% of the step
            first = MinHash(num_perm=self.num_perm, seed=self.seed)
            self.permutations, self.scheme = first.permutations, first.scheme
        m = MinHash(self.num_perm, self.seed, permutations=self.permutations, scheme=self.scheme)
        shingles = grams(ws, SHINGLE) if len(ws) >= SHINGLE else {ws}
        m.update_batch([" ".join(s).encode() for s in shingles])
        return m

    def check(self, row: dict[str, Any]) -> tuple[str, str, float] | None:
        """(kind, uid of the kept problem, similarity) when ``row`` duplicates an earlier problem;
        otherwise None, and ``row`` is remembered as kept."""
        ws = words(row["problem"])  # once: the normal form is these words joined
        key = hashlib.blake2b(" ".join(ws).encode(), digest_size=16).digest()
        if key in self.exact:
            return "exact", self.exact[key], 1.0
        if self.lsh is not None:
            m = self._minhash(ws)
            candidates = self.lsh.query(m)
            if candidates:
                best = max(candidates, key=lambda uid: self.signatures[uid].jaccard(m))
                return "near", best, round(self.signatures[best].jaccard(m), 3)
            self.lsh.insert(row["uid"], m)
            self.signatures[row["uid"]] = m
        self.exact[key] = row["uid"]
        return None
