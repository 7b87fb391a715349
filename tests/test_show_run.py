"""``ssp show-run``: an offline W&B run read back here, checked against the values that were logged.

The runs are written by real wandb (offline, in a subprocess: wandb's service should not outlive
a test inside pytest's process), a stage's resume included.
"""

import subprocess
import sys
import textwrap

import pytest

from ssp.core.errors import DataError
from ssp.launch.cli import main
from ssp.launch.show_run import show_run
from ssp.launch.wandb_file import read

WRITE = textwrap.dedent(
    """
    import sys, wandb
    run_dir, start, stop = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    run = wandb.init(mode="offline", dir=run_dir, project="p", name="demo/sft", group="demo",
                     job_type="sft", id="abc123", resume="allow", settings=wandb.Settings(console="off"))
    for s in range(start, stop):
        run.log({"train/loss": 1 / s, "train/global_step": s, "profiling/t": 0.5})
        run.log({"cost/usd": 0.1 * s, "train/global_step": s})  # ssp's cost row of the same step
    run.finish()
    """
)


@pytest.fixture(scope="module")
def logged(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("run")
    for start, stop in ((1, 4), (4, 6)):  # steps 1-3, then a resumed stage: steps 4-5
        subprocess.run(
            [sys.executable, "-c", WRITE, str(run_dir), str(start), str(stop)],
            check=True,
            capture_output=True,
            env={"WANDB_SILENT": "true", "PATH": "/usr/bin:/bin", "HOME": str(run_dir)},
            timeout=120,
        )
    return run_dir


@pytest.mark.slow
def test_every_logged_value_is_read_back_and_a_resume_is_one_run(logged):
    files = sorted((logged / "wandb").glob("offline-run-*/run-abc123.wandb"))
    assert len(files) == 2
    text = show_run(logged, steps=True)
    assert "## demo/sft (group demo, id abc123, 5 logged steps, 2 files)" in text
    assert (
        "| train/loss | 5 | 1 | 0.2 | 1 | 0.2 | █▄▂▁▁ |" in text
    )  # 1, 1/2, 1/3, 1/4, 1/5: round(7 (x - 0.2) / 0.8)
    assert "| cost/usd | 5 | 0.1 | 0.1 | 0.5 | 0.5 |" in text
    assert "| 3 | 0.3 | 0.3333 |" in text  # step 3: the cost row and the trainer row joined
    assert "profiling" not in text and "_runtime" not in text  # bookkeeping hidden by default
    assert "profiling/t" in show_run(logged, keys=["profiling/*"])


@pytest.mark.slow
def test_a_file_cut_short_shows_what_it_holds_and_says_where_it_stops(logged, tmp_path):
    """A run killed while writing: the records before the cut are read, the cut is named."""
    first = sorted((logged / "wandb").glob("offline-run-*/run-abc123.wandb"))[0]
    data = first.read_bytes()
    whole = read(first)
    cut = tmp_path / "run-x.wandb"
    for lost in (3, 40, 400):  # inside the last chunk's header, inside its body, a few records back
        cut.write_bytes(data[: len(data) - lost])
        part = read(cut)
        assert not part.finished and 0 < len(part.records) < len(whole.records), lost
        assert part.records == whole.records[: len(part.records)]
    assert whole.finished and whole.truncated_at is None
    cut.write_bytes(data[: len(data) - 3])  # inside the last chunk: where it starts is named
    assert read(cut).truncated_at is not None
    run = tmp_path / "run"
    (run / "wandb" / first.parent.name).mkdir(parents=True)
    (run / "wandb" / first.parent.name / first.name).write_bytes(data[:-40])
    assert "killed" in show_run(run) and "| train/loss |" in show_run(run)


@pytest.mark.slow
def test_cli_prints_the_table_and_names_what_it_cannot_read(logged, tmp_path, capsys):
    assert main(["show-run", str(logged), "--stage", "sft", "--keys", "loss"]) == 0
    out = capsys.readouterr().out
    assert "train/loss" in out and "cost/usd" not in out
    assert main(["show-run", str(logged), "--stage", "rl"]) == 2
    assert f"ssp: error: {logged}: no W&B run of stage 'rl'" in capsys.readouterr().err
    assert main(["show-run", str(tmp_path)]) == 2
    assert "no W&B run files under" in capsys.readouterr().err


def test_a_file_that_is_not_a_wandb_run_is_named(tmp_path):
    bad = tmp_path / "run-x.wandb"
    bad.write_bytes(b"PK\x03\x04 not a run")
    with pytest.raises(DataError, match=f"{bad}: not a W&B run file"):
        read(bad)
