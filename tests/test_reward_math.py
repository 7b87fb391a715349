"""math_correctness and format: answer equivalence, untrusted input, failures that are never
scores, workers that work whatever the main module imported, registry, no leaks."""

import json
import os
import subprocess
import sys
import time

import pytest

from ssp.reward import get_reward, known_rewards
from ssp.reward.math_answer import words_to_number
from ssp.reward.outcome import RewardError
from ssp.reward.pool import ERROR, OK, TIMEOUT, HardTimeoutPool, PoolError

from .conftest import ROOT
from .helpers.machine import can_bwrap


@pytest.fixture(scope="module")
def math_reward():
    reward = get_reward("math_correctness", timeout=4.0, workers=2)
    yield reward
    reward.close()


EQUIVALENCE = [
    # fractions and decimals
    ("1/2", r"\boxed{0.5}", 1.0),
    (r"\frac{3}{4}", r"\boxed{0.75}", 1.0),
    ("0.75", r"\boxed{\frac{3}{4}}", 1.0),
    (r"\dfrac{1}{2}", r"\boxed{\tfrac12}", 1.0),
    ("1,000", r"\boxed{1000}", 1.0),
    (r"\pi", r"\boxed{3.14159}", 0.0),  # a decimal approximation is not the exact answer
    # equivalent radicals
    (r"\sqrt{8}", r"\boxed{2\sqrt{2}}", 1.0),
    (r"\frac{\sqrt{3}}{3}", r"\boxed{\frac{1}{\sqrt{3}}}", 1.0),
    # intervals
    ("[0,1)", r"\boxed{[0, 1)}", 1.0),
    ("[0,1)", r"\boxed{[0,1]}", 0.0),
    (r"(-\infty, 2]", r"\boxed{(-\infty,2]}", 1.0),
    # sets and tuples
    (r"\{1,2,3\}", r"\boxed{\{3,2,1\}}", 1.0),  # sets are unordered
    ("(1,2)", r"\boxed{(1, 2)}", 1.0),
    ("(1,2)", r"\boxed{(2, 1)}", 0.0),  # tuples are ordered
    # negative numbers
    ("-4", r"\boxed{-4}", 1.0),
    ("-4", r"\boxed{4}", 0.0),
    # units
    ("5", r"\boxed{5\text{ cm}}", 1.0),
    ("30", r"\boxed{30^\circ}", 1.0),
    (r"10\%", r"\boxed{10}", 1.0),
    # several boxed answers: the last one counts
    ("2", r"first \boxed{1}, finally \boxed{2}", 1.0),
    ("1", r"first \boxed{1}, finally \boxed{2}", 0.0),
    # answers in words
    ("5", r"\boxed{\text{five}}", 1.0),
    ("21", r"\boxed{twenty-one}", 1.0),
    (r"\text{Yes}", r"\boxed{\text{yes}}", 1.0),
    (r"\text{(B)}", r"\boxed{B}", 1.0),
    # algebraic equivalence and equations
    ("x^2+2x+1", r"\boxed{(x+1)^2}", 1.0),
    ("3", r"so x = \boxed{3}", 1.0),
    ("x=3", r"\boxed{3}", 1.0),
    # escaped dollars: a currency sign in MATH-500's gold answers, not math mode
    (r"\$36", r"\boxed{36}", 1.0),
    (r"\$36", r"\boxed{\$36}", 1.0),
    (r"\$18.90", r"\boxed{18.90}", 1.0),
    (r"\$18.90", r"\boxed{\$18.9}", 1.0),
    (r"\$32,\!348", r"\boxed{32348}", 1.0),
    (r"\$32,\!348", r"\boxed{\$32,\!348}", 1.0),
    (r"\$36", r"\boxed{37}", 0.0),
    # no boxed answer: an explicit final-answer statement on the last line counts, nothing else
    ("3", "The answer is 3.", 1.0),
    ("72", "48/2 = 24 clips in May.\n#### 72", 1.0),
    ("5", "Final Answer: The final answer is $5$. I hope it is correct.", 1.0),
    ("3", "no answer at all", 0.0),
    ("3", "so x = 3", 0.0),  # the last number is not an answer
    # classes of errors found on real model outputs (issue 28); each scored wrongly before
    ("25", "Let me think... perhaps the answer is 25. But let me verify", 0.0),  # trailing off
    ("25", "<think>the answer is \\boxed{25}, but wait", 0.0),  # cut inside <think>
    ("25", "<think>maybe \\boxed{24}</think>So the answer is \\boxed{25}.", 1.0),  # after </think>
    ("25", "<think>maybe \\boxed{25}</think>So the answer is \\boxed{24}.", 0.0),
    ("4.5e33", r"\boxed{4.5 \times 10^{33}}", 1.0),  # scientific notation: not 4.5 * e * 33
    (r"4.5 \times 10^{33}", r"\boxed{4.5e33}", 1.0),
    ("4.5e33", r"\boxed{4.5 \times 10^{32}}", 0.0),
    ("D", r"\boxed{(D) $4(x+1)=4x$}", 1.0),  # a multiple-choice gold: compared by letter
    ("D", r"\boxed{(C) $4(x+1)=4x$}", 0.0),
    ("5am", r"\boxed{5pm}", 0.0),  # am/pm are not units
    (r"5\text{ pm}", r"\boxed{17:00}", 1.0),
    ("4t", r"\boxed{4}", 0.0),  # a single letter is a variable, not a unit
    ("C(h)=4h+4", r"\boxed{C(h)=4+4}", 0.0),
    (r"5.3\%", r"\boxed{5.3}", 1.0),  # percent either way round
    ("5.3", r"\boxed{5.3\%}", 1.0),
    (r"8\%", r"\boxed{0.08}", 1.0),
    (r"8\%", r"\boxed{9}", 0.0),
    (r"(-\infty, 0) \cup\{1\}.", r"\boxed{\{1\}\cup(-\infty,0)}", 1.0),  # a gold's full stop
    (r"\ln 2", r"\boxed{\log 2}", 1.0),  # \log without a base is natural
    (r"\log_2 8", r"\boxed{3}", 1.0),
    (r"f(x) = 2x+1", r"\boxed{y = 2x+1}", 1.0),  # a simple left-hand side is a name
    (r"y = 2x+1", r"\boxed{y = 2x+2}", 0.0),
    (r"y = 2x+1", r"\boxed{2x - y + 1 = 0}", 1.0),  # a whole equation stays whole
    ("2e+1", r"\boxed{2e+1}", 1.0),  # not scientific notation: 2e + 1
    ("2e+1", r"\boxed{20}", 0.0),
    ("9", "so \\boxed 9", 1.0),  # a box without braces
    # forms met in the real-output set (tests/fixtures/real_outputs), each scored wrongly before
    (r"\frac{1}{3}E_{1}+\frac{2}{3}E_{2}", r"\boxed{\frac{1}{3}E_1 + \frac{2}{3}E_2}", 1.0),
    (r"\frac{10^{5}L_{\odot}}{0.007c^{2}}", r"\boxed{\frac{10^8 L_{\odot}}{7 c^2}}", 1.0),
    (r"(-\infty, 0) \cup\{1\}$.", r"\boxed{0}", 0.0),  # OlympiadBench's stray "$." read as 0
    (r"90^{\circ}$,$60^{\circ}", r"\boxed{90^\circ}", 0.0),  # two answers joined by "$,$"
    ("0.006", r"\boxed{6 \times 10^{-3} \text{ m/s²}}", 1.0),
    ("15x - 80", "**Answer:** $15x - 80$", 1.0),
    (r"3 \pm 2 \sqrt{2}", "Final\n\\[\n\\text{Answer: } 3 + 2\\sqrt{2}, 3 - 2\\sqrt{2}\n\\]", 1.0),
    ("225", "### Answer:\n\nThe total number of battalions is 225.", 1.0),
    # a number sympy cannot read (Arabic-Indic digits) makes math-verify raise: no answer, not an
    # error (a base model's garbage in the demo did this)
    ("3", "smallest \u06f93 value", 0.0),
    ("3", "\\boxed{\u06f8}", 0.0),
]


@pytest.mark.slow
@pytest.mark.parametrize("gold, completion, expected", EQUIVALENCE)
def test_answer_equivalence(math_reward, gold, completion, expected):
    assert math_reward([completion], answer=[gold]) == [expected]


def test_whole_table_in_one_batch(math_reward):
    """The same table as one parallel batch: order is kept across workers, every item scored."""
    golds, completions, expected = zip(*EQUIVALENCE, strict=True)
    assert math_reward(list(completions), answer=list(golds)) == list(expected)
    assert math_reward.last.counts == {"scored": len(EQUIVALENCE), "unscorable": 0, "timeout": 0, "error": 0}


# Gold answers of the public MATH-500 and AIME 2024 files whose form once defeated the reward or
# could (escaped dollars, thousands separators, text, intervals, matrices, degrees...). Each must
# score 1.0 against its own boxed form: a gold answer that cannot match itself caps Pass@1.
REAL_GOLDS = [
    r"\$32,\!348",
    r"\$18.90",
    r"\$36",
    r"\left( 3, \frac{\pi}{2} \right)",
    r"\text{Evelyn}",
    r"90^\circ",
    r"3\sqrt{13}",
    r"6 - 5i",
    r"p - q",
    r"\frac{14}{3}",
    r"-50",
    r"\pi",
    r"\text{(C)}",
    r"(-\infty,-2] \cup [2,\infty)",
    r"\begin{pmatrix} 1 \\ 2 \end{pmatrix}",
    r"x^2 + 7x + 10",
    r"10\%",
    r"1,\!000",
    r"0.3",
    r"204",
    r"025",
    r"\frac{\sqrt{3}}{2}",
    r"4 \sqrt{2}",
    r"\sqrt{2}, -\sqrt{2}",
    r"\{1,2,3\}",
    r"\infty",
    r"y = 2x + 3",
    r"\text{odd}",
]


def test_real_gold_answers_match_their_own_boxed_form(math_reward):
    scores = math_reward([rf"The answer is \boxed{{{g}}}." for g in REAL_GOLDS], answer=REAL_GOLDS)
    assert scores == [1.0] * len(REAL_GOLDS), [g for g, s in zip(REAL_GOLDS, scores, strict=True) if s != 1.0]


def test_chat_message_completions(math_reward):
    chat = [
        [{"role": "assistant", "content": r"\boxed{7}"}],
        [{"role": "assistant", "content": r"\boxed{8}"}],
    ]
    assert math_reward(chat, answer=["7", "7"]) == [1.0, 0.0]


def test_unparseable_gold_cannot_be_scored(math_reward):
    assert math_reward([r"\boxed{1}", r"\boxed{1}"], answer=["", "\u06f93"]) == [None, None]
    assert math_reward.last.statuses == ["unscorable", "unscorable"]


@pytest.mark.slow
@pytest.mark.parametrize(
    "name, completion, outcomes",
    [
        ("empty", "", {"scored"}),
        ("huge", "blah " * 2_000_000 + r"\boxed{1}", {"scored"}),
        ("lone surrogates", "\udcff\udcfe" + r"\boxed{1}", {"scored"}),
        ("invalid utf-8 bytes", b"\xff\xfe\xfa " + rb"\boxed{1}", {"scored"}),
        ("unbalanced braces", r"\boxed{1" + "}" * 3 + "{" * 1000, {"scored"}),
        ("many unclosed boxes", r"\boxed{" * 100_000 + "1", {"scored"}),
        ("deeply nested boxes", r"\boxed{" * 2000 + "1" + "}" * 2000, {"scored"}),
        ("a huge boxed answer", r"\boxed{" + "1+" * 100_000 + "1}", {"scored"}),
        ("latex that hangs sympy", r"\boxed{" + "9^" * 40 + "9}", {"timeout"}),
        ("a giant factorial", r"\boxed{(10^{10^{10}})!}", {"scored", "timeout", "error"}),
    ],
)
def test_untrusted_output_ends_quickly_with_a_defined_outcome(math_reward, name, completion, outcomes):
    """Batched with two plain answers (as in training): the hostile item ends as a score, a timeout
    or an error (never a crash, never past the hard timeout), and the others are still right."""
    start = time.monotonic()
    reward = get_reward("math_correctness", timeout=4.0, workers=2, max_failure_rate=0.5)
    try:
        scores = reward([r"\boxed{1}", completion, r"\boxed{2}"], answer=["1", "1", "1"])
        status = reward.last.statuses[1]
    finally:
        reward.close()
    assert status in outcomes, (name, status, reward.last.first_failure)
    assert scores[0] == 1.0 and scores[2] == 0.0
    assert scores[1] in (0.0, 1.0) if status == "scored" else scores[1] is None
    assert time.monotonic() - start < 4.0 + 8.0, f"{name}: the hard timeout did not hold"


@pytest.mark.slow
def test_hung_item_kills_only_its_worker_and_is_counted_not_scored(math_reward):
    hang = r"\boxed{" + "9^" * 40 + "9}"
    before = math_reward.pool.restarts
    reward = math_reward
    reward.max_failure_rate = 0.5
    try:
        scores = reward([r"\boxed{1}", hang, r"\boxed{2}", r"\boxed{3}"], answer=["1", "1", "2", "4"])
    finally:
        reward.max_failure_rate = 0.25
    assert scores == [1.0, None, 1.0, 0.0]  # the timed-out item is not a 0.0
    assert reward.last.statuses == ["scored", "timeout", "scored", "scored"]
    assert "no result within 4 s" in reward.last.first_failure
    assert reward.pool.restarts == before + 1


@pytest.mark.slow
def test_a_call_whose_items_all_time_out_stops_naming_the_reward():
    """The audit's probe with timeout 0.2 s "completed" with Pass@8 0.0: now it stops."""
    hang = r"\boxed{" + "9^" * 40 + "9}"
    reward = get_reward("math_correctness", timeout=0.5, workers=2)
    try:
        with pytest.raises(RewardError, match=r"reward math_correctness: 2 of 2 items failed \(2 timed out"):
            reward([hang, hang], answer=["1", "1"])
    finally:
        reward.close()


@pytest.mark.slow
def test_more_failures_than_the_recipe_allows_stop_the_call():
    hang = r"\boxed{" + "9^" * 40 + "9}"
    reward = get_reward("math_correctness", timeout=0.5, workers=2, max_failure_rate=0.3)
    try:
        with pytest.raises(RewardError, match="over max_failure_rate=0.3"):
            reward([hang, r"\boxed{1}", r"\boxed{1}"], answer=["1", "1", "1"])  # 1 of 3 > 0.3
    finally:
        reward.close()


@pytest.mark.slow
def test_a_replacement_workers_start_up_is_not_charged_to_its_item():
    """A worker whose import takes 1.5 s, items with a 1 s timeout: every item is answered."""
    pool = HardTimeoutPool("tests.helpers.scoring:slow_start_echo", workers=1, timeout=1.0)
    try:
        assert pool.map([1, 2]) == [(OK, 1, ""), (OK, 2, "")]
        out = pool.map(["hang", 3])  # the hang costs a restart; item 3 waits for the new worker
        assert [o.status for o in out] == [TIMEOUT, OK] and out[1].value == 3
    finally:
        pool.close()


def test_errors_in_the_scoring_function_are_outcomes_with_their_message():
    pool = HardTimeoutPool("tests.helpers.scoring:raise_on_odd", workers=2, timeout=5.0)
    try:
        out = pool.map([1, 2, 3])
    finally:
        pool.close()
    assert [o.status for o in out] == [ERROR, OK, ERROR]
    assert out[0].message == "ValueError: odd item 1"


def test_a_worker_that_cannot_start_stops_the_reward_with_its_message(monkeypatch):
    """A broken interpreter environment (here PYTHONHOME pointing nowhere) is a RewardError naming
    the reward and what the worker said, never a score."""
    monkeypatch.setenv("PYTHONHOME", "/nonexistent")
    reward = get_reward("math_correctness", workers=1)
    try:
        with pytest.raises(
            RewardError, match=r"reward math_correctness: .*could not start: worker exited"
        ) as info:
            reward([r"\boxed{1}"], answer=["1"])
    finally:
        reward.close()
    assert "Fatal Python error" in str(info.value)


def test_a_worker_whose_module_does_not_import_is_a_pool_error():
    with pytest.raises(PoolError, match="No module named 'tests.helpers.no_such_module'"):
        HardTimeoutPool("tests.helpers.no_such_module:f", workers=1, timeout=1).map([1])


@pytest.mark.slow
def test_the_memory_cap_is_on_top_of_the_workers_own_start_up():
    """memory_mb bounds what items allocate: 64 MB above the worker's start-up lets a 16 MB item
    through and stops a 256 MB one (an error, and the worker is replaced)."""
    pool = HardTimeoutPool("tests.helpers.scoring:allocate_mb", workers=1, timeout=10.0, memory_mb=64)
    try:
        out = pool.map([16, 256, 16])
    finally:
        pool.close()
    assert [o.status for o in out] == [OK, ERROR, OK], out
    assert out[1].message.startswith("MemoryError")


@pytest.mark.slow
@pytest.mark.parametrize("guard", [False, True])
def test_scores_from_a_main_module_that_maps_gigabytes_and_imports_the_training_stack(tmp_path, guard):
    """The GPU failure, reproduced on a CPU: the main module imports torch, transformers and TRL and
    maps 20 GiB of address space at import (as a CUDA build of torch does), with or without an
    ``if __name__ == "__main__":`` guard. Known answers must score right (it was 0.0 for all)."""
    script = (ROOT / "launch" / "doctor_roundtrip.py").read_text()
    if guard:
        script = script.replace("\nmain()  #", '\nif __name__ == "__main__":\n    main()  #')
        assert "__main__" in script
    main = tmp_path / "stage_like_main.py"
    main.write_text(script)
    out = subprocess.run(
        [sys.executable, str(main)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["math_correctness"]["scores"] == [1.0, 0.0], result
    if can_bwrap():  # code_tests refuses to run programs where bubblewrap cannot isolate them
        assert result["code_tests"]["scores"] == [1.0, 0.0], result


def test_missing_column_is_named(math_reward):
    with pytest.raises(KeyError, match="needs the dataset column 'answer'"):
        math_reward([r"\boxed{1}"], solution=["1"])


@pytest.mark.slow
def test_no_worker_outlives_close_or_its_parent(tmp_path):
    reward = get_reward("math_correctness", workers=2)
    assert reward([r"\boxed{1}"], answer=["1"]) == [1.0]
    workers = [w.proc for w in reward.pool._workers]
    assert all(p.poll() is None for p in workers)
    reward.close()
    assert all(p.poll() is not None for p in workers)
    # kill -9 of the process that owns a pool takes its workers with it (PR_SET_PDEATHSIG)
    code = (
        "import os, sys; from ssp.reward import get_reward; r = get_reward('math_correctness', workers=2); "
        "r(['1'], answer=['1']); print(' '.join(str(w.proc.pid) for w in r.pool._workers), flush=True); "
        "sys.stdin.read()"
    )
    owner = subprocess.Popen(
        [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT
    )
    pids = [int(p) for p in owner.stdout.readline().split()]
    owner.kill()
    owner.wait()
    deadline = time.monotonic() + 10
    while any(_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(_alive(p) for p in pids), "a worker outlived the process that started it"


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_registry_errors():
    assert {"math_correctness", "code_tests", "format"} <= set(known_rewards())
    with pytest.raises(
        KeyError, match="unknown reward 'math_corectness'; known rewards: by_domain, code_tests, format"
    ):
        get_reward("math_corectness")
    with pytest.raises(TypeError, match="reward 'format'"):
        get_reward("format", tail_charz=5)


@pytest.mark.parametrize(
    "completion, expected",
    [
        (r"Steps... so the answer is \boxed{12}.", 1.0),
        (r"\boxed{12} and then a long ramble " + "x" * 500, 0.0),  # the answer is not at the end
        (r"\boxed{}", 0.0),
        (r"\boxed{12", 0.0),
        ("12", 0.0),
        ([{"role": "assistant", "content": r"\boxed{3}"}], 1.0),
    ],
)
def test_format_reward(completion, expected):
    assert get_reward("format")([completion]) == [expected]


@pytest.mark.parametrize(
    "text, number",
    [
        ("five", "5"),
        (r"\text{Twenty-one}", "21"),
        ("negative three", "-3"),
        ("zero", "0"),
        ("ninety nine", "99"),
        ("one hundred", None),
        ("fivey", None),
        ("5", None),
    ],
)
def test_number_words(text, number):
    assert words_to_number(text) == number


def test_recipe_reward_specs():
    from omegaconf import OmegaConf

    from ssp.core.errors import FieldError, RecipeError
    from ssp.reward.config import RewardSpec, build_rewards

    yaml = "- {name: math_correctness, weight: 1.0, correctness: true}\n- {name: format, weight: 0.1}\n"
    specs = [
        OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(RewardSpec), s))
        for s in OmegaConf.create(yaml)
    ]
    funcs, weights, correctness = build_rewards(specs, where="rl.rewards")
    assert [f.__name__ for f in funcs] == ["math_correctness", "format"] and weights == [1.0, 0.1]
    assert correctness == 0
    with pytest.raises(
        FieldError, match=r"name: unknown reward 'math_corectness'; known rewards: by_domain, code_tests"
    ):
        RewardSpec(name="math_corectness")
    with pytest.raises(RecipeError, match=r"rl.rewards\[0\]: reward 'format': .*tail_charz"):
        build_rewards([RewardSpec(name="format", options={"tail_charz": 3})], where="rl.rewards")
    with pytest.raises(RecipeError, match="only one reward may set correctness"):
        build_rewards([RewardSpec(correctness=True), RewardSpec(correctness=True)])
