"""`ssp doctor`: the machine check `make test` runs first."""

import subprocess

import pytest

from .conftest import ROOT, ssp_cmd


@pytest.mark.slow
def test_doctor_passes_here_and_shows_a_real_reward_round_trip():
    out = subprocess.run(ssp_cmd("doctor"), capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    lines = {line.split()[0]: line for line in out.stdout.splitlines() if line.startswith("  ")}
    assert {"python", "torch", "GPUs", "DeepSpeed", "vLLM", "flash-attn", "W&B", "reward"} <= set(lines)
    assert "math right/wrong 1.0/0.0, code pass/fail 1.0/0.0" in lines["reward"]
    assert "FAIL" not in out.stdout


def test_doctor_fails_when_a_check_fails_and_checks_a_recipe(monkeypatch, capsys):
    from ssp.launch import doctor

    monkeypatch.setattr(doctor, "_roundtrip", lambda: (doctor.FAIL, "math_correctness scored [0.0, 0.0]"))
    assert doctor.main([str(ROOT / "recipes" / "tiny.yaml"), "eval.models=[base,signa]"]) == 1
    text = capsys.readouterr().out
    assert "reward round trip  FAIL  math_correctness scored [0.0, 0.0]" in text
    assert "'signa' is neither a model alias" in text
    assert "failed: reward round trip, recipe" in text
