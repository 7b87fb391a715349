"""Build the problem pool from public sources: read, filter, deduplicate, decontaminate, label, split.

    ingest (per source) -> dedup -> decontaminate -> label -> split

Every step streams rows from the previous step's JSON Lines file to its own, and writes every row
it drops, with the reason, to ``build/dropped/<step>.jsonl`` (the decontamination matches to
``decontamination_matches.jsonl``): nothing is lost, and the data card's numbers are recounts of
these files. A step's files are written under temporary names and renamed when the step ends, and
``build/state.json`` records the finished steps: a killed build resumes at the step (for ingest,
the source) it was in. Memory holds no step's rows, only the dedup hashes, the benchmark index
and the classifier's training sample (``classifier_max_rows``).
"""

from __future__ import annotations

import heapq
import json
import logging
import time
from collections import Counter
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from ssp.core.atomic import write_atomic
from ssp.core.corpus import JsonlWriter, iter_jsonl
from ssp.core.errors import DataError, check, check_positive
from ssp.data_pipeline.card import unit_histogram
from ssp.data_pipeline.decontaminate import MATCH_RULES, against
from ssp.data_pipeline.dedup import Deduplicator
from ssp.data_pipeline.diversity import select
from ssp.data_pipeline.filters import RULES, Limits, first_failed
from ssp.data_pipeline.labels import OUTSIDE, held_out_accuracy, mapped_label, unit_hash
from ssp.data_pipeline.sources import Source, check_source, read_source
from ssp.data_pipeline.splits import assign
from ssp.sampling.generation import SamplingSettings

log = logging.getLogger(__name__)

DEFAULT_FILTERS = [
    "where",
    "empty_problem",
    "proof",
    "multiple_choice",
    "true_false",
    "multi_part",
    "figure",
    "too_long",
    "no_answer",  # last: a proof's answer is "proof"; the specific rule names the reason better
]


@dataclass
class BuildOptions:
    """How the problem pool is cleaned (``data.build`` in a recipe; data.source: build)."""

    filters: list[str] = field(default_factory=lambda: list(DEFAULT_FILTERS))
    """Filter rules in the order they are tried (data_pipeline/filters.py; docs/data.md)."""
    max_problem_chars: int = 3000
    """too_long: problems longer than this many characters are dropped."""
    max_answer_chars: int = 100
    """no_answer: answers longer than this are prose, not a value a verifier can compare."""
    near_duplicate_threshold: float = 0.8
    """MinHash-estimated Jaccard similarity (word 3-grams) at which a problem is a near duplicate of
    an earlier one; 0 = exact duplicates only."""
    decontaminate_ngram: int = 10
    """Drop verbatim copies of a benchmark problem (case, spacing, markup aside) and copies with other
    numbers; a copy embedded in a longer problem counts from this many words (the report's n-gram
    length). 0 = off. (data_pipeline/decontaminate.py: whole-problem rules, not a shared n-gram.)"""
    decontaminate_similarity: float = 1.15
    """Drop rewordings: idf-weighted cosine of shape unigrams and bigrams at least this, with the
    benchmark problem's numbers kept (Jaccard >= 0.99) plus 0.08 x their information; 0 = off."""
    decontaminate_files: dict[str, str] = field(default_factory=dict)
    """More benchmark files to decontaminate against, {name: .jsonl/.parquet path with a 'problem'
    column}, besides every benchmark of the recipe's eval stage."""
    label_threshold: float | None = None
    """The classifier labels a problem only when its top probability reaches this; below, it abstains.
    null = the smallest threshold at which held-out labels reach label_target (card: the one chosen)."""
    label_target: float = 0.92
    """With label_threshold null: the labels' precision to reach on held-out labelled rows, overall."""
    label_domain_target: float = 0.85
    """With label_threshold null: the precision to reach in every domain."""
    classifier_max_rows: int = 200_000
    """Labelled rows (a seeded uniform sample) the domain classifier trains and is measured on."""

    def __post_init__(self):
        unknown = [f for f in self.filters if f not in RULES]
        check(self, "filters", not unknown, f"unknown rules {unknown}; known: {sorted(RULES)}")
        check(self, "max_problem_chars", self.max_problem_chars > 0, "must be > 0")
        check(self, "max_answer_chars", self.max_answer_chars > 0, "must be > 0")
        check(self, "near_duplicate_threshold", 0 <= self.near_duplicate_threshold <= 1, "must be in [0, 1]")
        check(self, "decontaminate_ngram", self.decontaminate_ngram >= 0, "must be >= 0")
        check(self, "decontaminate_similarity", self.decontaminate_similarity >= 0, "must be >= 0")
        check(
            self,
            "label_threshold",
            self.label_threshold is None or 0 <= self.label_threshold < 1,
            "must be in [0, 1) or null",
        )
        check(self, "label_target", 0 < self.label_target <= 1, "must be in (0, 1]")
        check(self, "label_domain_target", 0 < self.label_domain_target <= 1, "must be in (0, 1]")
        check(self, "classifier_max_rows", self.classifier_max_rows > 1, "must be > 1")


@dataclass
class SamplerOptions(SamplingSettings):
    """A model sampled on problems and verified (the fields the teacher and the pass rates share);
    its sampling settings are ``sampling/generation.SamplingSettings``'s, defaults included."""

    model: str = ""
    """Model folder or hub id; empty = this step is off."""
    seed: int = 0
    shard_size: int = 256
    """Problems per shard: a killed run redoes at most one shard."""
    reward: str = "math_correctness"
    """The verifier: a reward registry name, scored with each row's answer."""
    reward_options: dict[str, Any] = field(default_factory=dict)
    samples_dir: str = ""
    """A folder shared between runs for the sampled shards, one subfolder per sampling plan (model,
    problems, settings): another run with the same plan reuses them (a selection ablation samples
    once). Empty = inside the run (data/build/teacher, data/build/rl_pass_rates)."""

    def __post_init__(self):
        super().__post_init__()
        check_positive(self, "shard_size")


@dataclass
class TeacherOptions(SamplerOptions):
    """Several verified, diverse solutions per SFT problem from a teacher model (``data.teacher``;
    docs/data.md). Off (``model`` empty): SFT rows keep their source's one solution."""

    solutions_per_problem: int = 4
    """m: correct solutions kept per problem (fewer when fewer are correct and distinct)."""
    selection: str = "maxmin"
    """maxmin (most different; data_pipeline/diversity.py), random (ablation) or all."""
    adaptive_max_samples: int = 0
    """> n_samples: a problem with no correct sample in the first round is sampled again up to this
    many samples in all (hard problems get more tries); 0 = off."""

    def __post_init__(self):
        from ssp.data_pipeline.diversity import METHODS

        super().__post_init__()
        check(
            self, "selection", self.selection in METHODS, f"must be one of {METHODS}, got {self.selection!r}"
        )
        check(self, "solutions_per_problem", self.solutions_per_problem > 0, "must be > 0")
        check(
            self,
            "adaptive_max_samples",
            self.adaptive_max_samples == 0 or self.adaptive_max_samples > self.n_samples,
            f"must be 0 (off) or more than n_samples ({self.n_samples})",
        )


@dataclass
class PassRateOptions(SamplerOptions):
    """Each RL prompt's pass rate under a model (the student, or the teacher), and a window of
    pass rates kept (``data.rl_pass_rate``; docs/data.md). Off (``model`` empty): every RL prompt."""

    min_pass_rate: float = 0.0
    """Keep prompts with min_pass_rate < pass rate < max_pass_rate (the report drops 0 and 1;
    open-r1 keeps about 0.1-0.6)."""
    max_pass_rate: float = 1.0

    def __post_init__(self):
        super().__post_init__()
        check(
            self,
            "max_pass_rate",
            0 <= self.min_pass_rate < self.max_pass_rate <= 1,
            "needs 0 <= min < max <= 1",
        )


@dataclass
class Plan:
    """Everything a build reads, gathered by the data stage (``data`` section and eval benchmarks)."""

    sources: list[Source]
    options: BuildOptions
    domains: list[str]
    sizes: dict[str, int]  # eval / probe / rl problems per domain
    sft_cap: int  # SFT problems per domain, 0 = all the rest
    seed: int
    benchmarks: dict[str, list[tuple[str, str]]]  # name -> [(id, problem)]
    teacher: TeacherOptions = field(default_factory=TeacherOptions)
    rl_pass_rate: PassRateOptions = field(default_factory=PassRateOptions)
    generation: Any = None  # sampling.generation.GenerationConfig of the teacher's engine
    prompt_suffix: str = ""


class _State:
    """``build/state.json``: the steps that finished, with the plan fingerprint they ran under."""

    def __init__(self, folder: Path, fingerprint: str):
        self.path = folder / "state.json"
        self.fingerprint = fingerprint
        data = json.loads(self.path.read_text()) if self.path.is_file() else {}
        self.done: dict[str, Any] = data.get("done", {}) if data.get("fingerprint") == fingerprint else {}

    def finished(self, step: str, info: Any = True) -> None:
        self.done[step] = info
        write_atomic(self.path, json.dumps({"fingerprint": self.fingerprint, "done": self.done}, indent=1))


def _progress(rows, desc: str):
    return tqdm(rows, desc=desc, unit=" rows", mininterval=2)


def _stream(path: Path, desc: str):
    return _progress(iter_jsonl(path), desc)


@dataclass
class Built:
    """What a build made. Each step returns what it makes; none changes what it was given."""

    splits: dict[str, Path]  # split name (sft, rl, eval, probe/<domain>) -> its file
    card: dict[str, Any]  # the data card (data_pipeline/card.py writes it)
    lengths: list[int]  # token lengths of the SFT examples
    kept_pass_rates: list[float] | None = None  # RL prompts kept by the pass-rate window: their rates


def build_pool(plan: Plan, out: Path, fingerprint: str) -> Built:
    """Run the steps into ``out`` (the data stage's folder): the split files and the card."""
    work = out / "build"
    dropped = work / "dropped"
    work.mkdir(parents=True, exist_ok=True)
    state = _State(work, fingerprint)
    started = time.monotonic()
    seconds: dict[str, float] = {}
    mark = time.monotonic()

    def timed(step: str) -> None:
        nonlocal mark
        seconds[step] = round(time.monotonic() - mark, 2)
        mark = time.monotonic()

    # 1. ingest and filter, one source at a time (a kill redoes only the source it was reading);
    # first, every source file still to read is checked (empty, truncated, not UTF-8: seconds)
    for i, src in enumerate(plan.sources):
        if f"ingest/{src.name}" not in state.done:
            check_source(src, f"data.sources[{i}]")
    limits = Limits(plan.options.max_problem_chars, plan.options.max_answer_chars)
    for i, src in enumerate(plan.sources):
        step = f"ingest/{src.name}"
        if step in state.done:
            log.info("data: %s: done in an earlier attempt, kept", step)
            continue
        with (
            JsonlWriter(work / f"{step}.jsonl") as kept,
            JsonlWriter(dropped / f"filter-{src.name}.jsonl") as out_,
        ):
            for row in _progress(read_source(src, f"data.sources[{i}]"), f"data: reading {src.name}"):
                failed = first_failed(row, plan.options.filters, limits)
                if failed:
                    out_.write({**row, "rule": failed[0], "reason": failed[1]})
                else:
                    row.pop("where_failed", None)  # kept anyway when the recipe lists no 'where' rule
                    kept.write(row)
        if kept.count == 0:
            raise DataError(
                f"data.sources[{i}]: source {src.name!r} ({src.path}) has no problem left after the filters "
                f"({out_.count} dropped: see {dropped / f'filter-{src.name}.jsonl'})"
            )
        state.finished(step, {"read": kept.count + out_.count, "kept": kept.count})
    timed("ingest")

    # 2. deduplicate across sources
    if "dedup" not in state.done:
        dedup = Deduplicator(plan.options.near_duplicate_threshold, seed=plan.seed)
        with JsonlWriter(work / "deduplicated.jsonl") as kept, JsonlWriter(dropped / "dedup.jsonl") as out_:
            for src in plan.sources:
                for row in _stream(work / "ingest" / f"{src.name}.jsonl", f"data: dedup {src.name}"):
                    dup = dedup.check(row)
                    if dup:
                        out_.write({**row, "rule": dup[0], "duplicate_of": dup[1], "similarity": dup[2]})
                    else:
                        kept.write(row)
        state.finished("dedup")
    timed("dedup")

    # 3. decontaminate against every benchmark
    matches_path = out / "decontamination_matches.jsonl"
    if "decontaminate" not in state.done:
        deco = against(
            plan.benchmarks,
            lambda: (
                row["problem"] for row in _stream(work / "deduplicated.jsonl", "data: term frequencies")
            ),
            plan.options.decontaminate_ngram,
            plan.options.decontaminate_similarity,
        )
        with JsonlWriter(work / "decontaminated.jsonl") as kept, JsonlWriter(matches_path) as out_:
            for row in _stream(work / "deduplicated.jsonl", "data: decontaminating"):
                m = deco.match(row["problem"]) if plan.benchmarks else None
                if m:
                    out_.write(
                        {
                            "uid": row["uid"],
                            "source": row["source"],
                            "rule": m.rule,
                            "score": m.score,
                            "benchmark": m.benchmark,
                            "benchmark_id": m.benchmark_id,
                            "problem": row["problem"],
                            "benchmark_problem": m.benchmark_problem,
                        }
                    )
                else:
                    kept.write(row)
        state.finished("decontaminate")
    timed("decontaminate")

    # 4. domain labels
    if "label" not in state.done:
        report = _label(plan, work, dropped)
        state.finished("label", report)
    label_report = state.done["label"]
    timed("label")

    # 5. splits
    splits = _split(plan, work, out)
    timed("split")
    teacher_card = window_card = kept_rates = None
    if plan.teacher.model:
        splits, teacher_card = _teach(plan, work, splits)
        timed("teacher")
    if plan.rl_pass_rate.model:
        splits, window_card, kept_rates = _rl_window(plan, work, splits)
        timed("rl_pass_rate")
    card, lengths = recount(plan, out, splits)
    card["labels"]["classifier"] = label_report
    if teacher_card:
        card["teacher"] = teacher_card
    if window_card:
        card["rl_pass_rate"] = window_card
    card["seconds"] = round(time.monotonic() - started, 1)
    card["step_seconds"] = seconds  # this attempt's (a step done in an earlier attempt: ~0)
    return Built(splits, card, lengths, kept_rates)


def _source_labels(plan: Plan) -> Callable[[dict[str, Any]], str | None]:
    maps = {s.name: s.label_map for s in plan.sources}
    return lambda row: mapped_label(row, maps[row["source"]])


def _label(plan: Plan, work: Path, dropped: Path) -> dict[str, Any]:
    label_of = _source_labels(plan)
    domains = set(plan.domains)
    bad = {
        (s.name, label, d)
        for s in plan.sources
        for label, d in s.label_map.items()
        if d is not None and d not in domains
    }
    if bad:
        raise DataError(
            "data.sources: label_map values must be recipe domains (data.domains "
            f"{plan.domains}) or null; found "
            + ", ".join(f"{n}: {lab!r} -> {d!r}" for n, lab, d in sorted(bad))
        )
    # the classifier's sample: the labelled rows with the smallest seeded hashes (bounded heap)
    sample: list[tuple[float, str, str, str]] = []
    need_classifier = 0
    # a domain a source gives all its rows (code) is never the classifier's to give: an unlabelled
    # math row labelled "code" would reach the code splits without tests
    forced = {s.name for s in plan.sources if s.domain}
    for row in _stream(work / "decontaminated.jsonl", "data: reading labels"):
        label = label_of(row)
        if label is None:
            need_classifier += 1
        elif row["source"] in forced:
            continue
        else:  # rows mapped to null teach the classifier an outside class
            item = (-unit_hash(plan.seed + 3, row["uid"]), row["uid"], row["problem"], label)
            if len(sample) < plan.options.classifier_max_rows:
                heapq.heappush(sample, item)
            elif item[0] > sample[0][0]:
                heapq.heapreplace(sample, item)
    classes = {label for *_, label in sample} - {OUTSIDE}
    clf, report = None, {"needed_for_rows": need_classifier}
    if len(classes) >= 2:
        clf, accuracy = held_out_accuracy(
            [t for _, _, t, _ in sample],
            [y for *_, y in sample],
            [u for _, u, _, _ in sample],
            plan.options.label_threshold,
            plan.seed,
            target=plan.options.label_target,
            domain_target=plan.options.label_domain_target,
        )
        report.update(accuracy)
    elif need_classifier:
        raise DataError(
            f"data: {need_classifier} problems have no source label in the recipe's label_map, and the "
            f"classifier that would label them needs labelled rows of at least 2 domains (found "
            f"{sorted(classes) or 'none'}): map the sources' labels (data.sources[*].label_map)"
        )
    with JsonlWriter(work / "labelled.jsonl") as kept, JsonlWriter(dropped / "label.jsonl") as out_:
        batch: list[dict[str, Any]] = []

        def flush():
            for row, (domain, conf) in zip(batch, clf.predict([r["problem"] for r in batch]), strict=True):
                if domain is None:
                    out_.write({**row, "rule": "abstained", "domain_confidence": conf})
                elif domain == OUTSIDE:  # a subject the recipe leaves out, recognised by the classifier
                    out_.write({**row, "rule": "classified_outside", "domain_confidence": conf})
                else:
                    kept.write(
                        {**row, "domain": domain, "domain_origin": "classifier", "domain_confidence": conf}
                    )
            batch.clear()

        for row in _stream(work / "decontaminated.jsonl", "data: labelling"):
            label = label_of(row)
            if label == OUTSIDE:
                out_.write({**row, "rule": "outside_domains"})
            elif label is not None:
                kept.write({**row, "domain": label, "domain_origin": "source", "domain_confidence": 1.0})
            else:
                batch.append(row)
                if len(batch) >= 4096:
                    flush()
        if batch:
            flush()
    return report


def _split(plan: Plan, work: Path, out: Path) -> dict[str, Path]:
    labelled = work / "labelled.jsonl"
    taken = assign(_stream(labelled, "data: planning splits"), plan.sizes, plan.sft_cap, plan.seed)
    paths = {"eval": out / "eval.jsonl", "rl": out / "rl.jsonl", "sft": out / "sft.jsonl"}
    paths.update({f"probe/{d}": out / "probe" / f"{d}.jsonl" for d in plan.domains})
    paths["sft_problems"] = out / "sft_problems.jsonl"
    code_sources = any(src.fields.get("tests") for src in plan.sources)
    with ExitStack() as stack:
        writers = {name: stack.enter_context(JsonlWriter(p)) for name, p in paths.items()}
        for row in _stream(labelled, "data: writing splits"):
            split = taken.get(row["uid"], "sft" if plan.sft_cap == 0 else None)
            if split is None:
                continue  # over data.train_problems_per_domain: counted in the card
            corpus_row = {
                "id": row["uid"],
                "domain": row["domain"],
                "problem": row["problem"],
                "answer": row["answer"],
                "source": row["source"],
                "source_id": row["source_id"],
                "domain_origin": row["domain_origin"],
                "domain_confidence": row["domain_confidence"],
            }
            if code_sources:  # every row the same fields: a code problem's tests, null for the others
                corpus_row |= {"tests": row.get("tests"), "fn_name": row.get("fn_name")}
            if split == "probe":
                writers[f"probe/{row['domain']}"].write(corpus_row)
            elif split == "sft" and row.get("solutions"):  # a multi-solution source: no teacher needed
                texts = row["solutions"]
                keep = select(texts, plan.teacher.solutions_per_problem, plan.teacher.selection, plan.seed)
                writers["sft"].write(
                    {**corpus_row, "solutions": [texts[i] for i in keep], "solutions_origin": "source"}
                )
            elif split == "sft" and row.get("solution"):
                writers["sft"].write({**corpus_row, "solutions": [row["solution"]]})
            elif split == "sft":  # no solution yet: the teacher's input (docs/data.md)
                writers["sft_problems"].write(corpus_row)
            else:
                writers[split].write(corpus_row)
    for name, p in paths.items():
        if not writers[name].count:
            p.unlink()  # an empty split is no split (the stage says which split a later stage misses)
    return {name: p for name, p in paths.items() if writers[name].count}


def _sample(
    plan: Plan, opts: SamplerOptions, rows: list[dict[str, Any]], folder: Path, key: str
) -> list[Path]:
    """Sample ``opts.model`` on ``rows`` in resumable shards, every sample verified by the reward
    (in ``folder``, or in ``opts.samples_dir`` shared with other runs). The shards are reused only
    when made from the same rows (whole content), model, sampling, reward and engine settings
    (data_pipeline/teacher.py)."""
    from ssp.data_pipeline.teacher import sample_shards
    from ssp.reward.config import make_reward
    from ssp.sampling.data_parallel import make_generator
    from ssp.sampling.generation import engine_record

    params = opts.params(opts.seed)
    reward = make_reward(opts.reward, opts.reward_options, f"{key}.reward_options")
    engine = engine_record(plan.generation)  # make_generator's default batch size
    try:
        return sample_shards(
            rows,
            Path(opts.samples_dir) / folder.name if opts.samples_dir else folder,
            lambda: make_generator(opts.model, plan.generation),
            reward,
            params,
            opts.shard_size,
            opts.model,
            plan.prompt_suffix,
            getattr(opts, "adaptive_max_samples", 0),
            shared=bool(opts.samples_dir),
            reward_spec={"name": opts.reward, "options": opts.reward_options},
            engine=engine,
        )
    finally:
        if hasattr(reward, "close"):
            reward.close()


def _rl_window(
    plan: Plan, work: Path, splits: dict[str, Path]
) -> tuple[dict[str, Path], dict[str, Any], list[float]]:
    """Each RL prompt's pass rate (correct and finished / samples), the prompts inside the window
    kept in ``rl.jsonl`` with their ``pass_rate``, the others in ``build/dropped/rl_window.jsonl``.
    Returns the splits after it (no ``rl`` when none is left), its card entry and the kept rates."""
    from ssp.data_pipeline.teacher import correct, sampled_rows, verification_counts

    o = plan.rl_pass_rate
    if "rl" not in splits:
        raise DataError(
            "data.rl_pass_rate: there is no RL split to measure (data.rl_problems_per_domain is 0)"
        )
    rows = list(iter_jsonl(splits["rl"]))
    paths = _sample(plan, o, rows, work / "rl_pass_rates", "data.rl_pass_rate")
    rates, kept_rates = [], []
    with JsonlWriter(splits["rl"]) as out_, JsonlWriter(work / "dropped" / "rl_window.jsonl") as dropped:
        for row, samples in sampled_rows(paths, rows):  # the current rows, never the shards' copies
            rate = sum(map(correct, samples)) / len(samples)
            rates.append(rate)
            if o.min_pass_rate < rate < o.max_pass_rate:
                kept_rates.append(rate)
                out_.write({**row, "pass_rate": round(rate, 4)})
            else:
                dropped.write({**row, "rule": "outside_window", "pass_rate": round(rate, 4)})
    after = dict(splits)
    if not kept_rates:
        after.pop("rl").unlink()
    edges, all_counts = unit_histogram(rates, 10)
    card = {
        "model": o.model,
        "samples_per_prompt": o.n_samples,
        "window": [o.min_pass_rate, o.max_pass_rate],
        "verification": verification_counts(paths),
        "prompts": len(rates),
        "kept": len(kept_rates),
        "histogram_edges": edges,
        "histogram_all": all_counts,
        "histogram_kept": unit_histogram(kept_rates, 10)[1],
    }
    return after, card, kept_rates


def _teach(plan: Plan, work: Path, splits: dict[str, Path]) -> tuple[dict[str, Path], dict[str, Any]]:
    """Sample the teacher on every SFT problem, keep up to m correct, diverse solutions each, and
    rewrite ``sft.jsonl`` with them; problems with no correct finished sample are dropped (counted,
    and written to ``build/dropped/teacher.jsonl``). Returns the splits after it (``sft`` in place of
    ``sft_problems``; no ``sft`` when nothing is left) and its card entry."""
    from ssp.data_pipeline.diversity import correct_pool, mean_pairwise_divergence, pick
    from ssp.data_pipeline.teacher import sampled_rows, verification_counts

    t = plan.teacher
    rows, traced = [], []  # traced: the source's own verified solutions, kept as they are
    for name in ("sft", "sft_problems"):
        for r in iter_jsonl(splits[name]) if name in splits else ():
            if r.get("solutions_origin") == "source":
                traced.append(r)
            else:
                rows.append({k: v for k, v in r.items() if k != "solutions"})
    if not rows and not traced:
        raise DataError(
            "data.teacher: no SFT problem to sample the teacher on (every problem went to eval/probe/rl)"
        )
    paths = _sample(plan, t, rows, work / "teacher", "data.teacher") if rows else []
    kept_div, random_div, sizes = [], [], Counter()
    unsolved = 0
    sft = work.parent / "sft.jsonl"
    with JsonlWriter(sft) as out_, JsonlWriter(work / "dropped" / "teacher.jsonl") as dropped:
        for row in traced:
            out_.write(row)
        for row, samples in sampled_rows(paths, rows):  # the current rows, never the shards' copies
            pool = correct_pool(samples)
            kept = pick(pool, t.solutions_per_problem, t.selection, seed=plan.seed)
            if not kept:
                dropped.write({**row, "rule": "unsolved", "samples": len(samples)})
                unsolved += 1
                continue
            sizes[len(kept)] += 1
            out_.write({**row, "solutions": [s["text"] for s in kept]})
            if len(pool) > t.solutions_per_problem >= 2:  # selection chose among more than m
                kept_div.append(mean_pairwise_divergence([s["text"] for s in kept]))
                rnd = pick(pool, t.solutions_per_problem, "random", seed=plan.seed + 1)
                random_div.append(mean_pairwise_divergence([s["text"] for s in rnd]))
    after = {k: v for k, v in splits.items() if k != "sft_problems"}
    (work.parent / "sft_problems.jsonl").unlink(missing_ok=True)
    after["sft"] = sft
    if sizes.total() == 0 and not traced:  # the stage says which later stage misses it
        after.pop("sft").unlink()
    card = {
        "model": t.model,
        "sampling": {
            "n": t.n_samples,
            "temperature": t.temperature,
            "top_p": t.top_p,
            "max_new_tokens": t.max_new_tokens,
        },
        "verification": verification_counts(paths),
        "source_solutions_kept_for": len(traced),  # problems whose source's own solutions were used
        "selection": t.selection,
        "solutions_per_problem": dict(sorted(sizes.items())),
        "unsolved": unsolved,
        "divergence": {
            "problems_with_a_choice": len(kept_div),
            "kept_mean": round(sum(kept_div) / len(kept_div), 4) if kept_div else None,
            "random_m_mean": round(sum(random_div) / len(random_div), 4) if random_div else None,
        },
    }
    return after, card


def _count(path: Path, key: Callable[[dict[str, Any]], Any]) -> Counter:
    return Counter(key(r) for r in iter_jsonl(path)) if path.is_file() else Counter()


def _totals(by_source: Counter) -> dict[str, int]:
    """{(source, key): n} summed over sources: {key: n}."""
    totals: Counter = Counter()
    for (_, key), n in by_source.items():
        totals[key] += n
    return dict(totals)


def recount(
    plan: Plan, out: Path, split_files: dict[str, Path]
) -> tuple[dict[str, Any], dict[str, list[int]]]:
    """The data card's numbers, counted from the files the build wrote (nothing from memory), and
    the problem lengths per domain of every split (for the card's histogram)."""
    work, dropped = out / "build", out / "build" / "dropped"
    per_source: dict[str, Any] = {}
    for src in plan.sources:
        kept = sum(1 for _ in iter_jsonl(work / "ingest" / f"{src.name}.jsonl"))
        rules = _count(dropped / f"filter-{src.name}.jsonl", lambda r: r["rule"])
        per_source[src.name] = {
            "path": src.path,
            "licence": src.licence,
            "read": kept + sum(rules.values()),
            "after_filters": kept,
            "filtered": dict(rules.most_common()),
        }
        if src.solution_columns:  # the source's own solutions, of the rows that passed the filters
            traces: Counter = Counter()
            for r in iter_jsonl(work / "ingest" / f"{src.name}.jsonl"):
                traces.update(r.get("solutions_count") or {})
                traces["kept"] += len(r.get("solutions") or [])
                traces["problems_without_one"] += not r.get("solutions")
            per_source[src.name]["solutions"] = {
                k: traces[k] for k in ("read", "kept", "unverified", "unfinished", "problems_without_one")
            }
    dups = _count(dropped / "dedup.jsonl", lambda r: (r["source"], r["rule"]))
    matches = _count(
        out / "decontamination_matches.jsonl", lambda r: (r["source"], r["benchmark"], r["rule"])
    )
    labels = _count(dropped / "label.jsonl", lambda r: (r["source"], r["rule"]))
    origins = _count(work / "labelled.jsonl", lambda r: (r["source"], r["domain_origin"]))
    # rows the teacher could not solve and RL prompts outside the pass-rate window left the splits
    after_split = sum(
        sum(1 for _ in iter_jsonl(dropped / name))
        for name, on in (("teacher.jsonl", plan.teacher.model), ("rl_window.jsonl", plan.rl_pass_rate.model))
        if on
    )
    for name, s in per_source.items():
        s["duplicates"] = {k: n for (src, k), n in dups.items() if src == name}
        s["contaminated"] = sum(n for (src, *_), n in matches.items() if src == name)
        s["unlabelled"] = {k: n for (src, k), n in labels.items() if src == name}
        s["labelled"] = {k: n for (src, k), n in origins.items() if src == name}
    benchmarks = {
        name: {"problems": len(problems), **dict.fromkeys(MATCH_RULES, 0)}
        for name, problems in plan.benchmarks.items()
    }
    for (_, bench, rule), n in matches.items():
        benchmarks[bench][rule] += n
    splits: dict[str, dict[str, int]] = {}
    lengths: dict[str, list[int]] = {}
    for name, path in split_files.items():
        counts: Counter = Counter()
        for r in iter_jsonl(path):
            counts[r["domain"]] += 1
            lengths.setdefault(r["domain"], []).append(len(r["problem"]))
        splits[name] = dict(sorted(counts.items()))
    card = {
        "sources": per_source,
        "filters": plan.options.filters,
        "near_duplicate_threshold": plan.options.near_duplicate_threshold,
        "decontamination": {
            "rules": {
                "ngram": plan.options.decontaminate_ngram,
                "similarity": plan.options.decontaminate_similarity,
            },
            "benchmarks": benchmarks,
            "matches_file": "decontamination_matches.jsonl",
        },
        "labels": {
            "origin": _totals(origins),
            "dropped": _totals(labels),
            "over_sft_cap": sum(origins.values())
            - sum(sum(c.values()) for c in splits.values())
            - after_split,
        },
        "splits": splits,
        "problem_chars": {
            d: {"rows": len(v), "mean": round(sum(v) / len(v), 1), "max": max(v)}
            for d, v in sorted(lengths.items())
        },
    }
    return card, lengths
