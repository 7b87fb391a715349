"""A code phase of the RL curriculum: its prompts picked by domain from a mixed prompt set, its
programs run against the hidden tests by ``code_tests`` in the sandbox while TRL trains, and a
reward that fails on every item stopping the stage instead of training on it.

The policy is a scripted model (tests/helpers/scripted_model.py) whose every completion is one of
two programs, ``print(7)`` with probability p and ``print(8)`` otherwise, so the rewards the
trainer logs are known before it samples: 1.0 for p = 1 and 0.0 for p = 0 on tests expecting 7."""

from __future__ import annotations

import json
import tempfile

import pytest

from ssp.core.errors import DataError, SSPError
from ssp.core.manifest import Manifest
from ssp.core.outputs import DataOutputs, MergeOutputs
from ssp.launch.runner import execute_here
from ssp.reward.sandbox import isolation

from .conftest import fast_recipe
from .helpers.scripted_model import build_scripted_model
from .helpers.scripted_run import complete

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not isolation()["bubblewrap"], reason="bubblewrap (bwrap) is not usable here"),
]

PROGRAMS = ("```python\nprint(7)\n```", "```python\nprint(8)\n```")
CODE_PHASE = (
    "rl.phases=[{name: code, domains: [code], rewards: [{name: code_tests, correctness: true, "
    "options: {test_seconds: 2}}], max_steps: 2, num_generations: 4, per_device_train_batch_size: 8, "
    "max_completion_length: 4}]"
)


def _prompts(path, code: int, algebra: int) -> str:
    tests = json.dumps([{"testtype": "stdin", "input": "", "output": "7\n"}])
    rows = [
        {"id": f"c{i}", "domain": "code", "problem": f"Print 7, program {i}.", "tests": tests}
        for i in range(code)
    ]
    rows += [
        {"id": f"a{i}", "domain": "algebra", "problem": f"Question {i}.", "answer": "7"}
        for i in range(algebra)
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def _setup(tmp_path, p: float, code: int = 8, algebra: int = 8):
    recipe = fast_recipe(
        tmp_path, CODE_PHASE, "rl.eval_heldout=false", "rl.heldout_every=0", "rl.save_every=1"
    )
    card = tmp_path / "data_card.md"
    card.write_text("# Data card\n\nhand-made RL prompts\n")
    rl_file = _prompts(tmp_path / "rl.jsonl", code, algebra)
    model = build_scripted_model(tmp_path / "spectrum", p=p, completions=PROGRAMS)
    complete(recipe, DataOutputs(model="(a test double)", data_card=str(card), rl=rl_file))
    complete(recipe, MergeOutputs(model=str(model), merged=False))
    return recipe


@pytest.mark.parametrize("p, reward", [(1.0, 1.0), (0.0, 0.0)])
def test_a_code_phase_trains_on_code_prompts_rewarded_by_their_tests(tmp_path, p, reward):
    recipe = _setup(tmp_path, p)
    execute_here("rl", recipe)
    phase = Manifest(recipe.run_dir).stage("rl")["metrics"]["phases"][0]
    history = json.loads((recipe.run_dir / "rl" / "0-code" / "log_history.json").read_text())
    assert [h["reward"] for h in history if "reward" in h] == [reward, reward]
    assert phase["prompts"] == 8, "the phase took prompts of another domain"
    assert phase["reward_failure_rates"]["code_tests"] == {
        "timeout_rate": 0.0,
        "error_rate": 0.0,
        "unscorable_rate": 0.0,
    }


def test_a_code_phase_without_code_prompts_stops_naming_the_key(tmp_path):
    recipe = _setup(tmp_path, 1.0, code=0)
    with pytest.raises(DataError, match=r"rl.phases\[0\].domains: no prompt of \['code'\] in .*rl.jsonl"):
        execute_here("rl", recipe)


def test_a_code_reward_that_fails_on_every_item_stops_the_stage(tmp_path, monkeypatch):
    """Every program's folder is made under the temporary folder; one that does not exist (a
    node's TMPDIR gone) makes the sandbox fail on every item: an error of the reward, counted,
    and over max_failure_rate the stage stops with the cause, never a 0.0 to train on."""
    recipe = _setup(tmp_path, 1.0)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "gone"))
    with pytest.raises(SSPError, match=r"reward code_tests: \d+ of \d+ items failed .*FileNotFoundError"):
        execute_here("rl", recipe)
    assert Manifest(recipe.run_dir).stage("rl")["status"] == "failed"
