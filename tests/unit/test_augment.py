"""Slot permutations (`train.augment`): every column and action lands where its slot went."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from metamon_sp import augment
from metamon_sp.checkpoint import load_checkpoint
from metamon_sp.config import load_config
from metamon_sp.features import FEATURE_SPEC, N_ACTIONS, N_CAT, N_MOVES, N_NUM, N_SLOTS
from metamon_sp.model import PolicyModel
from metamon_sp.train import train
from metamon_sp.train_data import Batch
from tests.factories import structured_dataset

NUM, CAT = list(FEATURE_SPEC.num), list(FEATURE_SPEC.cat)
OWN = np.array([[3, 0, 5, 1, 4, 2]])
OPP = np.array([[1, 2, 0, 5, 3, 4]])
MOVES = np.array([[2, 3, 1, 0]])


def _batch(B: int = 1, L: int = 3) -> Batch:
    """Each column holds its own index; each window's actions and masks name their slots."""
    num = torch.arange(N_NUM, dtype=torch.float32).expand(B, L, N_NUM).clone()
    cat = torch.arange(N_CAT).expand(B, L, N_CAT).clone()
    mask = torch.zeros(B, L, N_ACTIONS, dtype=torch.bool)
    mask[..., [0, 2, N_MOVES + 3]] = True
    zeros = torch.zeros(B, L)
    return Batch(num=num, cat=cat, mask=mask, actions=torch.tensor([[0, 2, N_MOVES + 3]] * B),
                 rewards=zeros, dones=zeros, valid=zeros.bool(), cut=zeros.bool(),
                 explored=zeros.bool(),
                 search_prior=torch.arange(N_ACTIONS, dtype=torch.float32).expand(B, L, -1))


def test_every_column_reads_the_slot_it_was_relabelled_from():
    out = augment.relabel_batch(_batch(), OWN, OPP, MOVES)
    num, cat = out.num[0, 0].long().tolist(), out.cat[0, 0].tolist()
    for i in range(N_SLOTS):
        assert num[NUM.index(f"own{i}_hp")] == NUM.index(f"own{OWN[0, i]}_hp")
        assert num[NUM.index(f"own{i}_threat")] == NUM.index(f"own{OWN[0, i]}_threat")
        assert num[NUM.index(f"opp{i}_base_spe")] == NUM.index(f"opp{OPP[0, i]}_base_spe")
        assert cat[CAT.index(f"own{i}_species")] == CAT.index(f"own{OWN[0, i]}_species")
        assert cat[CAT.index(f"opp{i}_type2")] == CAT.index(f"opp{OPP[0, i]}_type2")
        for j in range(N_MOVES):  # the Pokémon moved, and its moveset was reordered
            assert cat[CAT.index(f"own{i}_move{j}")] == \
                CAT.index(f"own{OWN[0, i]}_move{MOVES[0, j]}")
            assert cat[CAT.index(f"opp{i}_move{j}")] == \
                CAT.index(f"opp{OPP[0, i]}_move{MOVES[0, j]}")
    for j in range(N_MOVES):
        assert num[NUM.index(f"move{j}_damage")] == NUM.index(f"move{MOVES[0, j]}_damage")
        assert cat[CAT.index(f"move{j}_id")] == CAT.index(f"move{MOVES[0, j]}_id")
    for name in ("turn", "own_alive", "opp_active_boost_spe"):  # a side's, not a slot's
        assert num[NUM.index(name)] == NUM.index(name)
    assert cat[CAT.index("opp_last_move")] == CAT.index("opp_last_move")
    assert sorted(num) == list(range(N_NUM)) and sorted(cat) == list(range(N_CAT))


def test_actions_masks_and_search_labels_follow_their_slots():
    out = augment.relabel_batch(_batch(), OWN, OPP, MOVES)
    # move slot 0 is now slot 3 (μ[3] = 0), move slot 2 is slot 0, own slot 3 is slot 0
    assert out.actions[0].tolist() == [3, 0, N_MOVES + 0]
    assert out.mask[0, 0].nonzero().flatten().tolist() == [0, 3, N_MOVES + 0]
    assert all(out.mask[0, t, a] for t, a in enumerate(out.actions[0].tolist()))
    assert out.search_prior[0, 0].tolist() == [*MOVES[0], *(N_MOVES + OWN[0])]


def test_the_models_action_embeddings_move_with_their_slots():
    torch.manual_seed(0)
    model = PolicyModel(load_config(["model=tiny"]).model)
    g = torch.Generator().manual_seed(0)
    batch = _batch(B=2, L=4)
    batch.num = torch.randn(2, 4, N_NUM, generator=g)
    batch.cat = torch.randint(1, 8, (2, 4, N_CAT), generator=g)
    same = np.tile(np.arange(N_MOVES), (1, 1))  # a switch slot embeds its moveset in order
    out = augment.relabel_batch(batch, OWN.repeat(2, 0), OPP.repeat(2, 0), same.repeat(2, 0))
    _, before = model.body.encoder(batch.num, batch.cat)
    _, after = model.body.encoder(out.num, out.cat)
    order = [*range(N_MOVES), *(N_MOVES + OWN[0])]
    torch.testing.assert_close(after, before[..., order, :])


def test_permutations_differ_per_window_and_are_permutations():
    own, opp, moves = augment.permutations(np.random.default_rng(0), 64)
    for p, k in ((own, N_SLOTS), (opp, N_SLOTS), (moves, N_MOVES)):
        assert (np.sort(p, axis=1) == np.arange(k)).all()
        assert len({tuple(r) for r in p}) > 10


def test_symmetric_stats_pool_each_kinds_slots_by_hand():
    mean, second = np.zeros(N_NUM), np.ones(N_NUM)
    hp = augment.NUM_OWN[:, 0]
    mean[hp] = [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]
    second[hp] = mean[hp] ** 2 + 0.01  # each slot's own std: 0.1
    m, s = augment.symmetric_stats(mean, second, min_std=0.05)
    pooled_var = np.mean(mean[hp] ** 2 + 0.01) - 0.5 ** 2
    np.testing.assert_allclose(m[hp], 0.5, rtol=1e-6)
    np.testing.assert_allclose(s[hp], np.sqrt(pooled_var), rtol=1e-5)
    turn = NUM.index("turn")  # not a slot's column: its own statistics, floored
    assert m[turn] == 0 and s[turn] == 1


@pytest.mark.parametrize("augment_on", [False, True])
def test_training_from_scratch_under_augmentation_pools_the_input_scales(tmp_path, augment_on):
    data = structured_dataset(tmp_path / "d")
    cfg = load_config(["model.context=8", "train.batch_size=8", "train.warmup_steps=2",
                       "train.progress=false", "train.steps=6", "train.compile=false",
                       f"train.augment={augment_on}"])
    model, _ = load_checkpoint(train(cfg, [data], tmp_path / "run"))
    std = model.body.encoder.num_std[torch.from_numpy(augment.NUM_OPP[:, 3])]  # opp{i}_revealed
    assert torch.isfinite(std).all()
    assert bool((std == std[0]).all()) == augment_on
