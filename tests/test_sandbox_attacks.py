"""Attacks on the code sandbox through the public reward API, as root and as an ordinary user.

Each attack is a model-written program that prints the test's expected output, ``PWNED``, only
if the attack worked: the score is the oracle (1.0 = the attack succeeded). The host is checked
afterwards too: a listener that must have received nothing, files that must not exist, processes
that must not be running. Run as root, each attack runs twice: in this process (a root caller)
and through ``tests/helpers/attack_runner.py`` as uid 4242 with the machine's own python3 (an
ordinary caller, whose home holds a 0600 key). Run as an ordinary user, it runs once, in this
process. Without bubblewrap the reward must refuse; with ``sandbox: unsafe`` it runs.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import uuid
from pathlib import Path

import pytest

import ssp.reward.sandbox as sandbox
from ssp.reward import get_reward
from ssp.reward.outcome import RewardError

from .conftest import ROOT
from .helpers.machine import needs_bwrap

USER = 4242  # an ordinary uid with no passwd entry: nothing on the machine belongs to it
IS_ROOT = os.geteuid() == 0
CALLERS = ["root", "user"] if IS_ROOT else ["user"]
PWNED = [{"testtype": "stdin", "input": "", "output": "PWNED"}]
pytestmark = needs_bwrap  # strict isolation: skipped only where this machine cannot run bubblewrap


def _program(body: str) -> str:
    return f"```python\n{body}\n```"


@pytest.fixture(scope="module")
def world():
    """Host state the attacks go after: a benchmark's test file anyone may read, a folder for
    sockets, and per caller a home with a private key only that caller may read. Under /tmp, not
    pytest's 0700 folder, so that uid 4242 can reach what it is meant to."""
    token = uuid.uuid4().hex[:10]
    base = Path(tempfile.mkdtemp(prefix="ssp-attacks-"))
    os.chmod(base, 0o755)
    shared = base / "shared"
    shared.mkdir()
    os.chmod(shared, 0o777)
    answers = shared / "lcb_private_tests.json"
    answers.write_text("PWNED\n")
    os.chmod(answers, 0o644)
    homes = {}
    for caller in CALLERS:
        home = base / f"home-{caller}"
        home.mkdir()
        (home / ".ssh").mkdir()
        (home / ".ssh" / "id_rsa").write_text("PWNED\n")
        for path, mode in ((home, 0o700), (home / ".ssh", 0o700), (home / ".ssh" / "id_rsa", 0o600)):
            os.chmod(path, mode)
            if caller == "user" and IS_ROOT:
                os.chown(path, USER, USER)
        homes[caller] = home
    code = None
    if IS_ROOT:  # the project's reward code where uid 4242 can read it
        code = base / "code"
        for package in ("reward", "core"):  # reward imports nothing else of the project
            shutil.copytree(
                ROOT / package, code / "ssp" / package, ignore=shutil.ignore_patterns("__pycache__")
            )
        shutil.copy(ROOT / "tests" / "helpers" / "attack_runner.py", code / "attack_runner.py")
        for folder, dirs, files in os.walk(code):
            for name in dirs + files:
                os.chmod(os.path.join(folder, name), 0o755)
        os.chmod(code, 0o755)
    yield {"token": token, "shared": shared, "answers": answers, "homes": homes, "code": code}
    shutil.rmtree(base, ignore_errors=True)


def score(
    world, caller: str, completions: list[str], tests=None, env=None, no_bwrap=False, **options
) -> dict:
    """{"scores", "statuses"} or {"error"}: the completions scored by code_tests as ``caller``
    (``tests``: one list per completion, default one test expecting PWNED)."""
    tests = tests or [PWNED] * len(completions)
    options = {"max_concurrency": 8, **options}
    if caller == "root" or not IS_ROOT:
        old = {k: os.environ.get(k) for k in (env or {})}
        os.environ.update(env or {})
        try:
            reward = get_reward("code_tests", **options)
            return {"scores": reward(completions, tests=tests), "statuses": reward.last.statuses}
        except RewardError as err:
            return {"error": str(err)}
        finally:
            for k, v in old.items():
                os.environ.pop(k) if v is None else os.environ.__setitem__(k, v)
    payload = {"completions": completions, "tests": tests, "options": options, "no_bwrap": no_bwrap}
    run = subprocess.run(
        [sandbox.interpreter()[0], str(world["code"] / "attack_runner.py")],
        input=json.dumps(payload),
        capture_output=True,
        text=True,
        timeout=300,
        cwd="/",
        env={
            "PATH": sandbox.PATH,
            "HOME": str(world["homes"]["user"]),
            "PYTHONPATH": str(world["code"]),
            **(env or {}),
        },
        preexec_fn=lambda: (os.setgroups([]), os.setgid(USER), os.setuid(USER)),
    )
    assert run.stdout.strip(), run.stderr[-2000:]
    return json.loads(run.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("caller", CALLERS)
def test_a_program_cannot_read_the_benchmarks_tests_or_the_callers_key(world, caller):
    key = world["homes"][caller] / ".ssh" / "id_rsa"
    attack = _program(
        "import glob\n"
        f"for path in [{str(world['answers'])!r}, {str(key)!r}] + glob.glob('/tmp/**/lcb_private_tests.json', recursive=True):\n"
        "    try:\n"
        "        print(open(path).read().strip())\n"
        "        break\n"
        "    except OSError:\n"
        "        pass\n"
    )
    project = _program(f"import os\nprint('PWNED' if os.path.exists({str(ROOT / 'README.md')!r}) else 'no')")
    result = score(world, caller, [attack, project])
    assert result["scores"] == [0.0, 0.0], result


@pytest.mark.slow
@pytest.mark.parametrize("caller", CALLERS)
def test_a_program_reaches_no_listener_no_socket_and_no_secret(world, caller):
    """A TCP listener on the host's loopback, a unix socket on the host file system (as a
    multiprocessing forkserver keeps one) and an abstract one: none may be reached. The caller's
    environment holds a secret: neither the program's environment nor /proc may show it."""
    received: list[bytes] = []
    tcp = socket.socket()
    tcp.bind(("127.0.0.1", 0))
    tcp.listen()
    path = str(world["shared"] / f"forkserver-{caller}.sock")
    unix = socket.socket(socket.AF_UNIX)
    unix.bind(path)
    os.chmod(path, 0o777)
    unix.listen()
    abstract = socket.socket(socket.AF_UNIX)
    abstract.bind(f"\0ssp-attack-{world['token']}-{caller}")
    abstract.listen()
    listeners = (tcp, unix, abstract)

    done = threading.Event()

    def accept(server):
        # polled, so that the threads end as soon as the programs have run (a blocking accept with a
        # timeout kept each case waiting 15 s after a pass: ~30 s of the suite)
        server.settimeout(0.2)
        while True:
            try:
                conn, _ = server.accept()  # a connection made before `done` waits in the backlog
            except TimeoutError:
                if done.is_set():  # set after the programs ended, then one more look: drained
                    return
                continue
            except OSError:
                return
            received.append(conn.recv(100) or b"(connected)")
            conn.close()

    threads = [threading.Thread(target=accept, args=(s,), daemon=True) for s in listeners]
    for t in threads:
        t.start()
    reach = _program(
        "import socket\n"
        f"targets = [(socket.AF_INET, ('127.0.0.1', {tcp.getsockname()[1]})), (socket.AF_UNIX, {path!r}),\n"
        f"           (socket.AF_UNIX, '\\0ssp-attack-{world['token']}-{caller}')]\n"
        "for family, address in targets:\n"
        "    try:\n"
        "        s = socket.socket(family)\n"
        "        s.settimeout(2)\n"
        "        s.connect(address)\n"
        "        s.sendall(b'SECRET')\n"
        "        print('PWNED')\n"
        "        break\n"
        "    except OSError:\n"
        "        pass\n"
    )
    snoop = _program(
        "import glob, os\n"
        "found = os.environ.get('SSP_ATTACK_SECRET') == 'hunter2'\n"
        "for f in glob.glob('/proc/*/environ'):\n"
        "    try:\n"
        "        found = found or b'hunter2' in open(f, 'rb').read()\n"
        "    except OSError:\n"
        "        pass\n"
        "print('PWNED' if found else 'no')\n"
    )
    try:
        result = score(world, caller, [reach, snoop], env={"SSP_ATTACK_SECRET": "hunter2"})
    finally:
        done.set()
        for t in threads:
            t.join(timeout=20)
        for s in listeners:
            s.close()
    assert result["scores"] == [0.0, 0.0], result
    assert received == [], f"a listener was reached: {received}"


def _alive_with_name(name: str) -> list[int]:
    pids = []
    for entry in os.listdir("/proc"):
        try:
            with open(f"/proc/{entry}/comm") as f:
                if f.read().strip() != name:
                    continue
            with open(f"/proc/{entry}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] != "Z":
                    pids.append(int(entry))
        except (OSError, ValueError, IndexError):
            continue
    return pids


@pytest.mark.slow
@pytest.mark.parametrize("caller", CALLERS)
def test_no_process_outlives_its_call_and_no_sample_touches_another(world, caller):
    """One program double-forks a daemon (setsid) that keeps rewriting every main.py it can find to
    print PWNED; seven others run three tests each, which start their program afresh each time.
    Once seen as 8 wrong completions scored 1.0; now every score stays 0 and nothing survives."""
    tag = f"sspd{world['token'][:6]}{caller[0]}"
    daemon = _program(
        "import ctypes, glob, os, time\n"
        f"ctypes.CDLL(None).prctl(15, {tag.encode()!r}, 0, 0, 0)\n"
        "if os.fork() == 0:\n"
        "    os.setsid()\n"
        "    if os.fork() == 0:\n"
        "        end = time.time() + 10\n"
        "        while time.time() < end:\n"
        "            for path in glob.glob('/tmp/*/main.py') + glob.glob('/sandbox/../*/main.py') + glob.glob('/*/main.py'):\n"
        "                try:\n"
        "                    open(path, 'w').write(\"print('PWNED')\")\n"
        "                except OSError:\n"
        "                    pass\n"
        "            time.sleep(0.02)\n"
        "        os._exit(0)\n"
        "    os._exit(0)\n"
        "time.sleep(0.5)\n"
        "print('no')\n"
    )
    victim = _program("print('WRONG')")
    start = time.monotonic()
    completions = [daemon] + [victim] * 7
    tests = [PWNED] + [PWNED * 3] * 7
    result = score(world, caller, completions, tests, partial=True)
    assert result["scores"] == [0.0] * 8, result
    time.sleep(0.3)
    assert _alive_with_name(tag) == [], "a process of the sandbox outlived its call"
    assert time.monotonic() - start < 60


@pytest.mark.parametrize("caller", CALLERS)
def test_a_program_leaves_no_file_on_the_host_and_kills_nothing_outside(world, caller, monkeypatch):
    """Files written everywhere it can think of, a folder of its own locked with mode 000 (which
    its owner cannot list until the mode is restored), and kill(-1): afterwards nothing of it is on
    the host, its program folder included, and a process outside it still runs."""
    name = f"ssp-attack-{world['token']}-{caller}"
    folders = world["shared"].parent / f"sandboxes-{caller}"  # where this caller's program folders go
    folders.mkdir()
    if caller == "user" and IS_ROOT:
        os.chown(folders, USER, USER)
    monkeypatch.setattr(tempfile, "tempdir", str(folders))
    places = ["/var/tmp", "/dev/shm", "/tmp", str(ROOT), str(world["homes"][caller]), str(world["shared"])]
    write = _program(
        "import os\n"
        f"for folder in {places!r}:\n"
        "    try:\n"
        f"        open(os.path.join(folder, {name!r}), 'w').write('x')\n"
        "    except OSError:\n"
        "        pass\n"
        "os.makedirs('locked/inner')\n"
        "open('locked/inner/f', 'w').write('x')\n"
        "os.chmod('locked/inner', 0)\n"
        "os.chmod('locked', 0)\n"
        "os.kill(-1, 9)  # every process this uid may signal\n"
        "print('PWNED')\n"
    )
    if caller == "root" and IS_ROOT:  # one slot of a range no other test process uses: the program's
        # host uid is known and the victim shares it (a slot of the usual range may be taken by a
        # program of another xdist worker between calls, which may kill(-1) as that uid unsandboxed)
        monkeypatch.setattr(sandbox, "UID_BASE", 62000 + os.getpid() % 1000)
        monkeypatch.setattr(sandbox, "UID_SLOTS", 1)
    uid = sandbox.UID_BASE if caller == "root" and IS_ROOT else (USER if IS_ROOT else os.geteuid())
    victim = subprocess.Popen(
        ["sleep", "60"], preexec_fn=(lambda: (os.setgid(uid), os.setuid(uid))) if IS_ROOT else None
    )
    try:
        result = score(world, caller, [write], env={"TMPDIR": str(folders)})
        assert victim.poll() is None, "the program killed a process outside its sandbox"
    finally:
        victim.kill()
        victim.wait()
    assert [p for p in places if os.path.exists(os.path.join(p, name))] == []
    assert os.listdir(folders) == [], "a program folder was left behind"
    assert result["statuses"][0] == "scored"


@pytest.mark.parametrize("caller", CALLERS)
def test_without_bubblewrap_the_reward_refuses_unless_told_unsafe(world, caller, monkeypatch):
    """A machine without bubblewrap (a stand-in: the sandbox's probe for it answers "none"):
    building code_tests fails with the reason and the way out; `sandbox: unsafe` runs programs,
    warning, with what isolation is left."""
    ok = _program("print('PWNED')")
    if caller == "root" or not IS_ROOT:
        monkeypatch.setattr(sandbox, "_bwrap", lambda: None)
        sandbox.isolation.cache_clear()
        try:
            refused = score(world, caller, [ok])
            unsafe = score(world, caller, [ok], sandbox="unsafe")
        finally:
            sandbox.isolation.cache_clear()
    else:
        refused = score(world, caller, [ok], no_bwrap=True)
        unsafe = score(world, caller, [ok], no_bwrap=True, sandbox="unsafe")
    assert "refusing" in refused["error"] and "sandbox: unsafe" in refused["error"]
    assert unsafe.get("scores") == [1.0], unsafe
