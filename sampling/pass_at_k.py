"""Pass@k: the chance that at least one of k samples is correct, estimated without bias.

From n >= k samples of which c are correct (Chen et al. 2021, the estimator docs/method.md gives):

    pass@k = 1 - C(n - c, k) / C(n, k)

computed as 1 - prod_{i = n-c+1}^{n} (1 - k / i), a product of c factors in (0, 1], which
neither overflows nor loses precision for large n (C(1000, 500) overflows a float).
Per domain, the estimate is the mean over its problems.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k for one problem with ``c`` correct out of ``n`` samples."""
    if not 0 <= c <= n or not 1 <= k <= n:
        raise ValueError(f"need 0 <= c <= n and 1 <= k <= n, got n={n}, c={c}, k={k}")
    if n - c < k:
        return 1.0
    prob_all_wrong = 1.0
    for i in range(n - c + 1, n + 1):
        prob_all_wrong *= 1.0 - k / i
    return 1.0 - prob_all_wrong


def per_domain(results: Iterable[tuple[str, int, int]], ks: Iterable[int]) -> dict[str, dict[str, float]]:
    """{domain: {"pass@k": mean over problems}} from (domain, n, c) per problem; plus "all"."""
    ks = list(ks)
    scores: dict[str, list[dict[str, float]]] = defaultdict(list)
    for domain, n, c in results:
        row = {f"pass@{k}": pass_at_k(n, c, k) for k in ks}
        scores[domain].append(row)
        scores["all"].append(row)
    return {
        d: {f"pass@{k}": sum(r[f"pass@{k}"] for r in rows) / len(rows) for k in ks}
        for d, rows in sorted(scores.items(), key=lambda kv: (kv[0] == "all", kv[0]))
    }
