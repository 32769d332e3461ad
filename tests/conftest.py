"""Shared test settings."""

import pytest
import torch


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread():
    # Tiny networks on a shared 2-core machine: more intra-op threads only thrash
    # (SB3 PPO ran ~5x slower with 2 threads while other tests used the other core).
    torch.set_num_threads(1)
    yield
