"""Dynamic sampling: only groups with mixed correctness are trained on, the batch is filled from fresh
prompts, the bound is counted, and MGPO's weights (lambda = 0: GRPO) act on the kept groups.

Expected groups are computed here from the test's own reward patterns, not read back from the code."""

import random

import pytest
import torch

from ssp.train.dynamic_sampling import RoundResult, fill_batch, mixed_groups, refill_indices
from ssp.train.mgpo import max_entropy_weight

from .conftest import prompt_dataset, tiny_grpo_args


def test_mixed_groups_are_the_groups_whose_flags_differ():
    flags = torch.tensor([1, 1, 1, 1, 0, 1, 0, 0, 0, 0, 0, 0, 1, 0, 1, 1], dtype=torch.bool)
    assert mixed_groups(flags, 4).tolist() == [False, True, False, True]


def test_refill_indices_walk_seeded_permutations_without_repeats_in_a_pass():
    a = refill_indices(10, seed=3, start=0, count=10)
    assert sorted(a) == list(range(10))  # one pass is a permutation
    assert refill_indices(10, seed=3, start=4, count=3) == a[4:7]  # a pure function of (seed, position)
    assert refill_indices(10, seed=4, start=0, count=10) != a
    assert sorted(refill_indices(10, seed=3, start=10, count=10)) == list(range(10))  # the next pass too


def _round(r: int, flags: list[int], G: int, rank: int, procs: int, width: int):
    """A GRPOTrainer-like batch dict of one process: its rows carry (round, global row) in their ids."""
    local = len(flags) // procs
    rows = range(rank * local, (rank + 1) * local)
    out = {
        "prompt_ids": torch.tensor([[r, i] for i in rows]),
        "prompt_mask": torch.ones(local, 2, dtype=torch.long),
        "completion_ids": torch.tensor([[1000 * r + i] * width for i in rows]),
        "completion_mask": torch.ones(local, width, dtype=torch.long),
        "advantages": torch.tensor([float(1000 * r + i) for i in rows]),
        "old_per_token_logps": torch.zeros(local, width),
        "num_items_in_batch": torch.tensor(local * width),
    }
    return RoundResult(out, torch.tensor(flags, dtype=torch.bool))


@pytest.mark.parametrize("procs", [1, 2])
def test_fill_batch_keeps_mixed_groups_in_draw_order_and_fills_the_batch(procs):
    G, groups = 4, 4 * procs  # each process holds 4 groups of 4
    rng = random.Random(procs)
    rounds = []  # random correctness patterns: some groups all 0, some all 1, some mixed
    for _ in range(6):
        flags = []
        for _ in range(groups):
            kind = rng.choice(["zero", "one", "mixed"])
            g = [0] * G if kind == "zero" else [1] * G if kind == "one" else [1] + [0] * (G - 1)
            rng.shuffle(g)
            flags += g
        rounds.append(flags)
    quota = groups // procs
    # expected, computed independently: per rank, its mixed groups in (round, group) order, until every rank
    # has `quota` or the bound; the bound here is large enough
    expected = {}
    for rank in range(procs):
        mine = []
        for r, flags in enumerate(rounds):
            for j in range(quota):
                g = flags[(rank * quota + j) * G : (rank * quota + j + 1) * G]
                if 0 < sum(g) < G:
                    mine.append((r, rank * quota + j))
        expected[rank] = mine
    need_rounds = max(
        next(r for r in range(len(rounds)) if sum(1 for x in expected[k] if x[0] <= r) >= quota)
        for k in expected
    )
    batches = {}
    for rank in range(procs):
        batch, stats = fill_batch(
            lambda r, rank=rank: _round(r, rounds[r], G, rank, procs, width=3 + r),
            num_generations=G,
            local_rows=quota * G,
            process_index=rank,
            num_processes=procs,
            max_refill_rounds=10,
            pad_token_id=-1,
        )
        batches[rank] = (batch, stats)
        assert stats.rounds == need_rounds + 1 and stats.filler == 0
        kept = [x for x in expected[rank] if x[0] <= need_rounds][:quota]
        rows = [1000 * r + g * G + i for r, g in kept for i in range(G)]
        assert batch["advantages"].tolist() == rows  # exactly these groups' rows, in draw order
        assert batch["completion_ids"][:, 0].tolist() == rows
        assert batch["completion_ids"].shape[1] == 3 + need_rounds  # padded to the widest round
        # padding is on the right of completions, masked out
        for row, (r, _g) in zip(batch["completion_mask"], [k for k in kept for _ in range(G)], strict=True):
            assert row.tolist() == [1] * (3 + r) + [0] * (need_rounds - r)
    # every rank took the same decisions
    assert len({tuple(s.kept_groups) for _, s in batches.values()}) == 1


def test_the_bound_fills_with_masked_groups_and_counts_them():
    G = 4
    flat = [0] * 16  # nothing mixed, ever
    mixed_once = [0] * 12 + [1, 0, 0, 0]
    rounds = [flat, mixed_once, flat]
    batch, stats = fill_batch(
        lambda r: _round(r, rounds[r], G, 0, 1, width=2),
        num_generations=G,
        local_rows=16,
        process_index=0,
        num_processes=1,
        max_refill_rounds=2,
        pad_token_id=-1,
    )
    assert stats.rounds == 3 and stats.kept == 1 and stats.filler == 3 and stats.groups_drawn == 12
    assert batch["completion_mask"][:4].sum() == 8  # the kept group (round 1, group 3)
    assert batch["advantages"][:4].tolist() == [1012.0, 1013.0, 1014.0, 1015.0]
    assert batch["completion_mask"][4:].sum() == 0 and batch["advantages"][4:].abs().sum() == 0


def test_local_batches_must_hold_whole_groups():
    with pytest.raises(ValueError, match="whole groups"):
        fill_batch(
            lambda r: None,
            num_generations=4,
            local_rows=6,
            process_index=0,
            num_processes=1,
            max_refill_rounds=1,
            pad_token_id=0,
        )


# ------------------------------------------------------------------ through MGPOTrainer

PATTERN = [1.0, 0.0, 0.0, 0.0]  # a "mixed" prompt's group: p_c = 1/4


def pattern_reward(completions, kind, **kwargs):
    """Position-based: the i-th completion of a mixed prompt's group gets PATTERN[i]; flat prompts get 0."""
    return [PATTERN[i % 4] if k == "mixed" else 0.0 for i, k in enumerate(kind)]


@pytest.fixture(scope="module")
def tiny(tiny_rl_data):
    model, rows = tiny_rl_data
    return model, rows[:12]


def _trainer(model, rows, kinds, out, lam):
    from ssp.train.mgpo import MGPOConfig, MGPOTrainer

    ds = prompt_dataset([r["problem"] for r in rows], kind=kinds)
    args = MGPOConfig(
        **tiny_grpo_args(
            out, mgpo_lambda=lam, dynamic_sampling=True, dynamic_sampling_max_refills=6, data_seed=0
        )
    )
    trainer = MGPOTrainer(model=model, reward_funcs=[pattern_reward], args=args, train_dataset=ds)
    trainer.model.train()
    return trainer, ds


@pytest.mark.parametrize("lam", [0.0, 4.0])
def test_the_trainer_trains_only_mixed_groups_with_grpo_advantages_times_the_weight(tiny, tmp_path, lam):
    model, rows = tiny
    # the dataloader's first batch (2 prompts x 4, TRL's seeded sampler) holds only flat prompts, so the
    # kept groups must come from refills; every third of the other prompts is mixed
    probe, _ = _trainer(model, rows, ["flat"] * len(rows), tmp_path / "probe", lam)
    first_texts = {r["prompt"][0]["content"] for r in next(iter(probe.get_train_dataloader()))}
    others = [i for i, r in enumerate(rows) if r["problem"] not in first_texts]
    kinds = ["mixed" if i in others[::3] else "flat" for i in range(len(rows))]
    trainer, ds = _trainer(model, rows, kinds, tmp_path, lam)
    first = next(iter(trainer.get_train_dataloader()))
    assert {r["prompt"][0]["content"] for r in first} == first_texts
    batch = trainer._generate_and_score_completions(first)
    # the prompts the test expects: the first batch's, then the refill stream's, mixed ones kept in order
    drawn = [r["prompt"][0]["content"] for r in first[::4]]
    refills = refill_indices(len(ds), seed=0, start=0, count=2 * 6)
    drawn += [ds[i]["prompt"][0]["content"] for i in refills]
    mixed = {r["problem"] for r, k in zip(rows, kinds, strict=True) if k == "mixed"}
    want = [p for p in drawn if p in mixed][:2]
    assert len(want) == 2, "the refill stream must reach two mixed prompts within the bound"
    assert not mixed & first_texts
    tok = trainer.processing_class
    got = [
        tok.decode(ids[m.bool()]) for ids, m in zip(batch["prompt_ids"], batch["prompt_mask"], strict=True)
    ]
    assert all(want[i // 4] in got[i] for i in range(8)), (want, got)
    # GRPO's advantages of a group with PATTERN, computed here: (r - mean) / (unbiased std + 1e-4)
    r = torch.tensor(PATTERN * 2)
    grpo = (r - r.mean()) / (torch.tensor(PATTERN).std() + 1e-4)
    w = max_entropy_weight(torch.tensor([0.25]), lam).item()
    torch.testing.assert_close(batch["advantages"], grpo * w)
    assert batch["num_items_in_batch"].item() == batch["completion_mask"].sum().item()
    stats = trainer.last_fill
    assert stats.kept == 2 and stats.filler == 0
    logged = {k: v[-1] for k, v in trainer._metrics["train"].items() if v}
    assert logged["dynamic_sampling/groups_kept"] == 2 and logged["mgpo/frac_pc_0_or_1"] == 0.0
    assert logged["mgpo/weight_mean"] == pytest.approx(w, abs=1e-6)  # over the kept groups only
