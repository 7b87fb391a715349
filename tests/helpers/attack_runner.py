"""Score completions with ``code_tests`` and print the result as JSON: the sandbox attack tests run
this as an ordinary (non-root) user, with the machine's own python3.

    echo '{"completions": [...], "tests": [...], "options": {}}' | python3 attack_runner.py

Only the standard library and the project's ``reward`` and ``launch`` packages are needed (the
test copies them to a folder that user can read). ``"no_bwrap": true`` stands in for a machine
without bubblewrap: the sandbox's probe for it is replaced by "none found" (a test double; the
real binary cannot be uninstalled for one test).
"""

import json
import sys

args = json.loads(sys.stdin.read())
if args.get("no_bwrap"):
    import ssp.reward.sandbox as sandbox

    sandbox._bwrap = lambda: None
    sandbox.isolation.cache_clear()

from ssp.reward import get_reward  # noqa: E402

try:
    reward = get_reward("code_tests", **args.get("options", {}))
    scores = reward(args["completions"], tests=args["tests"])
    print(json.dumps({"scores": scores, "statuses": reward.last.statuses}))
except Exception as err:  # noqa: BLE001 - the test reads what happened
    print(json.dumps({"error": f"{type(err).__name__}: {err}"}))
