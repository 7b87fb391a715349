"""Recipe schema of the `data` stage (the tiny task's model shape is ``data_pipeline/tiny/model.py``)."""

from dataclasses import dataclass, field

from ssp.core.errors import check, check_positive
from ssp.data_pipeline.build import BuildOptions, PassRateOptions, TeacherOptions
from ssp.data_pipeline.sources import Source
from ssp.data_pipeline.tiny.problems import ALL_TINY_DOMAINS, TINY_DOMAINS


@dataclass
class DataConfig:
    """Where the corpora come from and how large each split is."""

    source: str = "tiny"
    """'tiny': generate the built-in task. 'build': build the problem pool from public problem sets
    (``sources``; docs/data.md). 'files': read the JSONL/Parquet files named below."""
    seed: int = 1234
    """Seed of the tiny-task generator (the same seed gives byte-identical files)."""
    domains: list[str] = field(default_factory=lambda: list(TINY_DOMAINS))
    """Subdomains. The tiny task knows algebra, number_theory, counting, statistics (the default) and
    code (programs with hidden tests: data_pipeline/tiny/code.py)."""
    train_problems_per_domain: int = 400
    """Tiny task: SFT problems per domain. build: at most this many per domain, 0 = every problem left."""
    solutions_per_problem: int | None = None
    """Solutions per SFT problem (the diversity ablation's key). Tiny task: distinct strategies written
    (at most the strategies a type has; unset = 3). files: keep at most this many per problem, the
    most different ones (max-min, data_pipeline/diversity.py); unset = all. build: use
    data.teacher.solutions_per_problem (the teacher's m)."""
    probe_problems_per_domain: int = 32
    """Tiny task and build: problems per domain in each probing set."""
    rl_problems_per_domain: int = 64
    """Tiny task and build: RL prompts per domain."""
    eval_problems_per_domain: int = 32
    """Tiny task and build: held-out evaluation problems per domain (the tiny_heldout benchmark)."""
    prompt_suffix: str = ""
    """Appended to every user prompt, e.g. the report's "Let's think step by step and output the final
    answer within \\boxed{}." Empty for the tiny task to keep prompts short."""
    train_file: str | None = None
    """source=files: the multi-solution SFT corpus (rows: id, domain, problem, answer, solutions)."""
    probe_files: dict[str, str] = field(default_factory=dict)
    """source=files: one probing set per domain, {domain: path} (rows: id, domain, problem, answer)."""
    rl_file: str | None = None
    """source=files: RL prompt set (rows: id, domain, problem, answer)."""
    eval_file: str | None = None
    """source=files: held-out evaluation set (rows: id, domain, problem, answer)."""
    decontaminate_ngram: int = 10
    """tiny/files: drop SFT/RL/probe rows that copy an eval problem: verbatim, with other numbers or
    reworded (data_pipeline/decontaminate.py; a copy embedded in a longer text counts from this many
    words, the report's n-gram length 10). 0 = off. (build: data.build.decontaminate_ngram.)"""
    sources: list[Source] = field(default_factory=list)
    """source=build: the public problem sets, in priority order (a duplicate keeps the earlier one)."""
    build: BuildOptions = field(default_factory=BuildOptions)
    """source=build: filters, deduplication, decontamination and labelling options."""
    teacher: TeacherOptions = field(default_factory=TeacherOptions)
    """source=build: the teacher that writes several verified, diverse solutions per SFT problem
    (sampled with the recipe's generation engine)."""
    rl_pass_rate: PassRateOptions = field(default_factory=PassRateOptions)
    """source=build: RL prompts' pass rates under a model, and the window of pass rates kept."""

    def __post_init__(self):
        check(
            self,
            "source",
            self.source in ("tiny", "files", "build"),
            f"must be 'tiny', 'build' or 'files', got {self.source!r}",
        )
        check(self, "domains", len(self.domains) > 0, "needs at least one domain")
        check(self, "domains", len(set(self.domains)) == len(self.domains), f"has duplicates: {self.domains}")
        if self.source == "tiny":
            unknown = sorted(set(self.domains) - set(ALL_TINY_DOMAINS))
            check(
                self,
                "domains",
                not unknown,
                f"unknown tiny-task domains {unknown}; known: {ALL_TINY_DOMAINS}",
            )
            check_positive(
                self,
                "train_problems_per_domain",
                "probe_problems_per_domain",
                "rl_problems_per_domain",
                "eval_problems_per_domain",
            )
        elif self.source == "build":
            check(self, "sources", bool(self.sources), "needs at least one source when source=build")
            names = [s.name for s in self.sources]
            check(self, "sources", len(set(names)) == len(names), f"two sources share a name: {names}")
            check(
                self,
                "solutions_per_problem",
                self.solutions_per_problem is None,
                "does not apply to source=build: set data.teacher.solutions_per_problem (the teacher's m)",
            )
            check_positive(
                self,
                "train_problems_per_domain",
                "probe_problems_per_domain",
                "rl_problems_per_domain",
                "eval_problems_per_domain",
                zero_ok=True,
            )
        else:
            check(self, "train_file", bool(self.train_file), "is required when source=files")
            check(self, "eval_file", bool(self.eval_file), "is required when source=files")
            missing = sorted(set(self.domains) - set(self.probe_files))
            check(self, "probe_files", not missing, f"has no probing set for domains {missing}")
        check(self, "decontaminate_ngram", self.decontaminate_ngram >= 0, "must be >= 0")
        if self.solutions_per_problem is not None:
            check_positive(self, "solutions_per_problem")

    @property
    def tiny_solutions(self) -> int:
        """Strategies the tiny task writes per SFT problem (solutions_per_problem, unset = 3)."""
        return self.solutions_per_problem or 3

    def sampled_models(self) -> dict[str, str]:
        """{recipe key: model} of the models a build samples (its teacher, its RL pass-rate model):
        the data stage then depends on them and on the generation engine. Empty unless source=build."""
        if self.source != "build":
            return {}
        named = {"data.teacher.model": self.teacher.model, "data.rl_pass_rate.model": self.rl_pass_rate.model}
        return {key: model for key, model in named.items() if model}
