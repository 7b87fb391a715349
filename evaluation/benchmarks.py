"""The benchmark registry: where each benchmark's data comes from, its column layout, its reward,
and the report's evaluation protocol as defaults.

    bench, rows, protocol = load_benchmark(BenchmarkSpec(name="aime24", source="data/aime24.jsonl"))

Each loader reads the benchmark in its public column layout (the hub dataset the registry names)
and returns rows of ``id, domain, problem`` plus the reward's columns (``answer``, or ``tests``
and ``fn_name`` for code). Sources: a local JSONL/JSON/Parquet file or a folder of them, or a hub
dataset id (loaded with ``datasets.load_dataset``; where no hub is reachable that fails with a
message saying how to point ``source`` at a local copy instead).

Protocol (docs/method.md): top_p 0.95, top_k -1, 40K-token responses; math (AIME24/25, HMMT25,
MATH-500) temperature 1.0, 64 samples, suffix "Let's think step by step and output the final
answer within \\boxed{}."; GPQA-Diamond 16 samples; LiveCodeBench v5 (2024-08..2025-02) and
v6 (2025-02..2025-05) temperature 0.6, 8 samples. Where the report is silent we chose, and say
so here: GPQA's temperature (1.0, as math), its prompt (options shuffled with a seed per
question, answer letter in \\boxed{}), LiveCodeBench's prompt (question, starter code, "one
```python block"), "40K" = 40960 tokens, and which Pass@k are reported besides Pass@1.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ssp.core.errors import DataError
from ssp.core.lcb_tests import decode_tests
from ssp.core.references import looks_local
from ssp.sampling.generation import SamplingSettings

MATH_SUFFIX = "Let's think step by step and output the final answer within \\boxed{}."
GPQA_SUFFIX = "Think step by step, then give the letter of the correct option within \\boxed{}."
CODE_SUFFIX = (
    "Solve the problem in Python 3. Think it through, then give your whole program in one "
    "```python code block at the end."
)
MAX_TOKENS = 40960


@dataclass
class Protocol(SamplingSettings):
    """A benchmark's evaluation protocol: its sampling settings (``SamplingSettings``: samples and
    temperature per benchmark, the report's 40K tokens), prompt suffix and the k of Pass@k. Not
    frozen, as its base is not: nothing may change a registry entry's protocol (``replace`` makes
    a new one)."""

    n_samples: int = 64
    max_new_tokens: int = MAX_TOKENS
    prompt_suffix: str = MATH_SUFFIX
    k: tuple[int, ...] = (1,)


@dataclass(frozen=True)
class Benchmark:
    name: str
    title: str
    hub: tuple[str, str, str]  # (dataset id, configuration, split); empty id: no hub source
    protocol: Protocol
    convert: Callable[[list[dict[str, Any]], str], list[dict[str, Any]]]  # raw rows, source -> rows
    reward: str = "math_correctness"
    reward_options: dict[str, Any] = field(default_factory=dict)
    votes: bool = True  # cons@n (majority vote over final answers) is defined


def _column(row: dict[str, Any], names: tuple[str, ...], source: str, i: int, bench: str) -> Any:
    for name in names:
        value = row.get(name)
        if value is not None and value != "":
            return value
    wanted = " or ".join(repr(n) for n in names)
    raise DataError(
        f"{source}: row {i}: benchmark {bench} needs column {wanted} (this row has {sorted(row)})"
    )


def _answer_rows(
    bench: str, problem: tuple[str, ...], answer: tuple[str, ...], ids: tuple[str, ...], domain=None
):
    """Converter for final-answer benchmarks: problem text and gold answer under varying column names."""

    def convert(raw: list[dict[str, Any]], source: str) -> list[dict[str, Any]]:
        rows = []
        for i, r in enumerate(raw, start=1):
            if r.get("tests"):  # a code row of a mixed held-out file: tiny_code's, not graded by an answer
                continue
            rid = next((r[c] for c in ids if r.get(c) not in (None, "")), i)
            rows.append(
                {
                    "id": str(rid),
                    "domain": str(r.get(domain) or bench) if domain else bench,
                    "problem": str(_column(r, problem, source, i, bench)),
                    "answer": str(_column(r, answer, source, i, bench)),
                }
            )
        return rows

    return convert


def _tiny_code_rows(raw: list[dict[str, Any]], source: str) -> list[dict[str, Any]]:
    """The code rows of the tiny task's held-out file (tests in LiveCodeBench's layout, fn_name)."""
    return [
        {
            "id": str(r.get("id") or i),
            "domain": str(r.get("domain") or "code"),
            "problem": str(_column(r, ("problem",), source, i, "tiny_code")),
            "tests": r["tests"],
            "fn_name": r.get("fn_name") or None,
        }
        for i, r in enumerate(raw, start=1)
        if r.get("tests")
    ]


def _gpqa_rows(raw: list[dict[str, Any]], source: str) -> list[dict[str, Any]]:
    """Idavidrein/gpqa layout: Question, Correct Answer, Incorrect Answer 1-3, Record ID.

    The four options are shuffled with a seed derived from the question's id (the same order in
    every run and for every model); the gold value is the correct option's letter."""
    rows = []
    for i, r in enumerate(raw, start=1):
        question = _column(r, ("Question",), source, i, "gpqa_diamond")
        correct = _column(r, ("Correct Answer",), source, i, "gpqa_diamond")
        wrong = [_column(r, (f"Incorrect Answer {j}",), source, i, "gpqa_diamond") for j in (1, 2, 3)]
        rid = str(r.get("Record ID") or i)
        options = [str(correct).strip(), *(str(w).strip() for w in wrong)]
        order = list(range(4))
        random.Random(int(hashlib.sha256(rid.encode()).hexdigest()[:16], 16)).shuffle(order)
        letters = "ABCD"
        text = (
            str(question).strip()
            + "\n\n"
            + "\n".join(f"({letters[j]}) {options[o]}" for j, o in enumerate(order))
        )
        rows.append(
            {
                "id": rid,
                "domain": str(r.get("High-level domain") or "gpqa_diamond"),
                "problem": text,
                "answer": letters[order.index(0)],
            }
        )
    return rows


def _decode_tests(raw: Any, source: str, i: int) -> list[dict[str, Any]]:
    try:
        return decode_tests(raw)
    except ValueError as err:
        raise DataError(f"{source}: row {i}: private_test_cases is {err}") from None


def _lcb_rows(start: str, end: str, bench: str):
    """livecodebench/code_generation_lite layout: question_content, starter_code, public_test_cases,
    private_test_cases, metadata (func_name), contest_date. Problems outside [start, end) are
    dropped, so the full release file can be given for either version."""

    def convert(raw: list[dict[str, Any]], source: str) -> list[dict[str, Any]]:
        rows = []
        for i, r in enumerate(raw, start=1):
            date = str(_column(r, ("contest_date",), source, i, bench))[:10]
            if not start <= date < end:
                continue
            tests = _decode_tests(_column(r, ("public_test_cases",), source, i, bench), source, i)
            tests += _decode_tests(r.get("private_test_cases"), source, i)
            if not tests:
                raise DataError(f"{source}: row {i}: benchmark {bench}: no test cases")
            meta = r.get("metadata") or "{}"
            try:
                meta = json.loads(meta) if isinstance(meta, str) else dict(meta)
            except (json.JSONDecodeError, TypeError, ValueError):
                raise DataError(f"{source}: row {i}: column 'metadata' is not a JSON object") from None
            problem = str(_column(r, ("question_content",), source, i, bench)).strip()
            starter = str(r.get("starter_code") or "").strip()
            if starter:
                problem += f"\n\nComplete this starter code:\n```python\n{starter}\n```"
            rows.append(
                {
                    "id": str(r.get("question_id") or i),
                    "domain": str(r.get("difficulty") or bench),
                    "problem": problem + "\n\n",
                    "tests": json.dumps(tests),
                    "fn_name": str(meta.get("func_name") or ""),
                }
            )
        return rows

    return convert


_MATH = Protocol(n_samples=64, temperature=1.0, k=(1, 8, 64))
_CODE = Protocol(n_samples=8, temperature=0.6, prompt_suffix=CODE_SUFFIX, k=(1, 8))
_LCB = "livecodebench/code_generation_lite"
_IDS = ("id", "ID", "problem_idx", "unique_id")

BENCHMARKS: dict[str, Benchmark] = {
    b.name: b
    for b in [
        Benchmark(
            "aime24",
            "AIME 2024",
            ("HuggingFaceH4/aime_2024", "", "train"),
            _MATH,
            _answer_rows("aime24", ("problem", "Problem"), ("answer", "Answer"), _IDS),
        ),
        Benchmark(
            "aime25",
            "AIME 2025",
            ("math-ai/aime25", "", "test"),
            _MATH,
            _answer_rows("aime25", ("problem", "question", "Problem"), ("answer", "Answer"), _IDS),
        ),
        Benchmark(
            "hmmt25",
            "HMMT February 2025",
            ("MathArena/hmmt_feb_2025", "", "train"),
            _MATH,
            _answer_rows("hmmt25", ("problem",), ("answer",), _IDS),
        ),
        Benchmark(
            "math500",
            "MATH-500",
            ("HuggingFaceH4/MATH-500", "", "test"),
            _MATH,
            _answer_rows("math500", ("problem",), ("answer",), _IDS, domain="subject"),
        ),
        Benchmark(
            "gpqa_diamond",
            "GPQA-Diamond",
            ("Idavidrein/gpqa", "gpqa_diamond", "train"),
            Protocol(n_samples=16, temperature=1.0, prompt_suffix=GPQA_SUFFIX, k=(1, 16)),
            _gpqa_rows,
            reward="multiple_choice",
        ),
        Benchmark(
            "lcb_v5",
            "LiveCodeBench v5 (2024-08..2025-02)",
            (_LCB, "release_v5", "test"),
            _CODE,
            _lcb_rows("2024-08-01", "2025-02-01", "lcb_v5"),
            reward="code_tests",
            votes=False,
        ),
        Benchmark(
            "lcb_v6",
            "LiveCodeBench v6 (2025-02..2025-05)",
            (_LCB, "release_v6", "test"),
            _CODE,
            _lcb_rows("2025-02-01", "2025-05-01", "lcb_v6"),
            reward="code_tests",
            votes=False,
        ),
        Benchmark(
            "tiny_heldout",
            "tiny task, held-out set",
            ("", "", ""),
            Protocol(n_samples=8, temperature=1.0, max_new_tokens=96, prompt_suffix="", k=(1, 8)),
            _answer_rows("tiny_heldout", ("problem",), ("answer",), ("id",), domain="domain"),
        ),
        Benchmark(  # the tiny task's code domain (data_pipeline/tiny/code.py), graded by its tests
            "tiny_code",
            "tiny task, held-out code",
            ("", "", ""),
            Protocol(n_samples=4, temperature=1.0, max_new_tokens=96, prompt_suffix="", k=(1, 4)),
            _tiny_code_rows,
            reward="code_tests",
            reward_options={"test_seconds": 2, "max_concurrency": 2},
            votes=False,
        ),
    ]
}

# Read from the data stage's held-out split when the recipe gives them no source (math and code rows
# of one file); disjoint from training by construction, so never decontaminated against.
HELDOUT_SPLIT_BENCHMARKS = ("tiny_heldout", "tiny_code")


def protocol_for(spec) -> Protocol:
    """The benchmark's protocol with the recipe's departures (``BenchmarkSpec`` fields) applied."""
    p = BENCHMARKS[spec.name].protocol
    n = spec.n_samples or p.n_samples
    ks = tuple(sorted({1, n, *(k for k in (spec.k or p.k) if k <= n)}))  # Pass@1 and Pass@n always
    return replace(
        p,
        n_samples=n,
        temperature=p.temperature if spec.temperature is None else spec.temperature,
        top_p=p.top_p if spec.top_p is None else spec.top_p,
        max_new_tokens=spec.max_new_tokens or p.max_new_tokens,
        prompt_suffix=p.prompt_suffix if spec.prompt_suffix is None else spec.prompt_suffix,
        k=ks,
    )


def _read_local(path: Path) -> list[dict[str, Any]]:
    from ssp.core.corpus import FILE_KINDS, _read

    files = sorted(f for f in path.iterdir() if f.suffix in FILE_KINDS) if path.is_dir() else [path]
    if not files:
        raise DataError(f"{path}: no .jsonl, .json or .parquet file in this folder")
    return [row for f in files for row in _read(f)]


def _read_hub(bench: Benchmark, spec, where: str) -> list[dict[str, Any]]:
    import datasets

    name = spec.source or bench.hub[0]
    subset = spec.subset or (bench.hub[1] if not spec.source else "") or None
    split = spec.split or bench.hub[2] or "train"
    try:
        return datasets.load_dataset(name, subset, split=split).to_list()
    except Exception as err:  # noqa: BLE001 - offline, gated, missing: all end the same way
        raise DataError(
            f"{where}: benchmark {bench.name}: cannot load hub dataset {name!r} (configuration "
            f"{subset!r}, split {split!r}): {type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}. "
            f"Where no hub is reachable, save it elsewhere (datasets.load_dataset(...).to_parquet('{bench.name}.parquet')) "
            f"and set {where}.source to the local file."
        ) from None


SOURCE_COLUMNS = ("data_source", "source", "benchmark", "dataset")


def check_one_benchmark(raw: list[dict[str, Any]], name: str, origin: str) -> None:
    """Refuse a file whose rows name several sources (a column ``data_source``, ``source``,
    ``benchmark`` or ``dataset`` with more than one value): AIME, HMMT and MATH rows mixed under one
    benchmark's name would be reported as that benchmark, with its protocol."""
    for column in SOURCE_COLUMNS:
        values = Counter(str(r[column]) for r in raw if isinstance(r, dict) and r.get(column) is not None)
        if len(values) > 1:
            shown = ", ".join(f"{v!r}: {c}" for v, c in values.most_common(6))
            more = f" and {len(values) - 6} more" if len(values) > 6 else ""
            raise DataError(
                f"{origin}: benchmark {name}: its rows name {len(values)} sources in column {column!r} "
                f"({shown}{more}): one benchmark per file; split it by {column!r} and name each part "
                f"as its own benchmark"
            )


def load_benchmark(
    spec, where: str = "eval.benchmarks", default_source: str = ""
) -> tuple[Benchmark, list[dict], Protocol]:
    """(benchmark, rows, protocol) for a ``BenchmarkSpec``. ``default_source`` stands in for an empty
    ``source`` (the data stage's held-out file for tiny_heldout)."""
    bench = BENCHMARKS[spec.name]
    source = spec.source or default_source
    if looks_local(source):
        path = Path(source)
        if not path.exists():
            raise DataError(f"{where}: benchmark {bench.name}: file not found: {path}")
        raw, origin = _read_local(path), str(path)
    elif source or bench.hub[0]:
        raw, origin = _read_hub(bench, spec, where), source or bench.hub[0]
    else:
        raise DataError(f"{where}: benchmark {bench.name} has no hub dataset: set its source to a file")
    check_one_benchmark(raw, bench.name, origin)
    rows = bench.convert(raw, origin)
    if spec.limit:
        rows = rows[: spec.limit]
    if not rows:
        raise DataError(f"{origin}: benchmark {bench.name}: no problems (after its date window, if any)")
    return bench, rows, protocol_for(spec)
