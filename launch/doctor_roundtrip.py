"""``ssp doctor``'s reward round trip: ``python -m ssp.launch.doctor_roundtrip`` prints JSON scores.

This main module is built like a stage's, on purpose: it imports the training stack (torch,
transformers, TRL) at the top, has no ``if __name__ == "__main__":`` guard, and reserves 20 GiB
of address space (``PROT_NONE``: no memory is used), about what a CUDA build of torch maps in
every process that imports it. Rewards whose workers inherited or re-imported this module, or
capped their memory below what it maps, fail here on any machine, as they did on a GPU.
"""

import json
import mmap

_CUDA_LIKE_MAPPING = mmap.mmap(
    -1,
    20 << 30,
    flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | getattr(mmap, "MAP_NORESERVE", 0),
    prot=0,  # PROT_NONE (the mmap module has no name for it): address space only, no memory
)

import torch  # noqa: E402, F401 - the stack a stage's main module imports
import transformers  # noqa: E402, F401
import trl  # noqa: E402, F401

from ssp.reward import get_reward  # noqa: E402
from ssp.reward.sandbox import isolation  # noqa: E402

CODE_TESTS = [{"testtype": "stdin", "input": "2 3\n", "output": "5\n"}]
PASSING = "```python\na, b = map(int, input().split())\nprint(a + b)\n```"
FAILING = "```python\na, b = map(int, input().split())\nprint(a - b)\n```"


def main() -> None:
    result: dict = {}
    # Without bubblewrap code_tests refuses unless told `sandbox: unsafe`: the round trip checks the
    # reward's machinery either way and says which sandbox it used (the doctor's isolation row says why).
    sandbox = "strict" if isolation()["bubblewrap"] else "unsafe"
    for name, completions, columns, options in (
        ("math_correctness", [r"so \boxed{4}", r"so \boxed{5}"], {"answer": ["4", "4"]}, {}),
        ("code_tests", [PASSING, FAILING], {"tests": [CODE_TESTS, CODE_TESTS]}, {"sandbox": sandbox}),
    ):
        reward = None
        try:
            reward = get_reward(name, max_failure_rate=1.0, **options)
            scores = reward(completions, **columns)
            result[name] = {
                "scores": scores,
                "statuses": reward.last.statuses,
                "first": reward.last.first_failure,
                **options,
            }
        except Exception as err:  # noqa: BLE001 - reported to the doctor, which shows it
            result[name] = {"error": f"{type(err).__name__}: {err}"}
        finally:
            if hasattr(reward, "close"):
                reward.close()
    print(json.dumps(result))


main()  # no `if __name__ == "__main__":` guard, on purpose (see the module docstring)
