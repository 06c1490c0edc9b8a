"""The memory estimate that refuses a network before any data is read: a lower bound, and the memory there is."""
import os
import tracemalloc

import pytest

from helpers import memory
from helpers.core import data
from helpers.core.network import init_network
from helpers.core.config import TrainConfig
from helpers.core.training import train
from helpers.errors import ConfigError


@pytest.mark.parametrize("dims", [[3072, 50, 50, 10], [12, 10], [3072, 50, 30, 20, 20, 10, 10, 10, 10, 10]])
@pytest.mark.parametrize("norm", ["batch", "layer", "none"])
def test_parameter_count_counts_every_parameter_of_the_network(dims, norm):
    net = init_network(dims, norm)
    assert memory.parameter_count(dims, norm) == sum(p.size for p in net.params.values())


def test_memory_needed_is_a_lower_bound_of_what_training_takes(fake_cifar):
    cifar = data.load_cifar10(fake_cifar, split="small")
    config = TrainConfig(hidden=(400, 400), n_batch=10, n_s=2, cycles=1, evals_per_cycle=1)
    dims = [3072, 400, 400, 10]
    parts = memory.memory_needed(dims, "batch", 4, 2 + config.cycles, rows=len(cifar.train.X), images=0)
    tracemalloc.start()
    try:
        train(config, cifar.train, cifar.val, progress=False)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert sum(parts.values()) <= peak
    assert sum(parts.values()) > peak / 3  # and not a useless one


def test_the_reports_network_fits_in_2_gb_and_a_hundred_thousand_wide_one_is_refused(monkeypatch):
    monkeypatch.setattr(memory, "machine_memory", lambda: 2e9)
    dims = [3072, 50, 50, 10]
    report = memory.memory_needed(dims, "batch", 4, 4, rows=10_000, images=60_000)
    memory.check_memory(report, 10_000, "--hidden 50 50", "Use fewer.")
    monkeypatch.setattr(memory, "machine_memory", lambda: 0.5e9)
    with pytest.raises(ConfigError, match="the data 0.74 GB"):
        memory.check_memory(report, 10_000, "--hidden 50 50", "Use fewer.")

    monkeypatch.setattr(memory, "machine_memory", lambda: 16e9)
    huge = [3072, 100_000, 100_000, 10]
    weights = 4 * 4 * memory.parameter_count(huge, "batch")
    with pytest.raises(ConfigError) as caught:
        memory.check_memory(memory.memory_needed(huge, "batch", 4, 4, 10_000, 60_000), 10_000, "--hidden 100000 100000",
                         "Use narrower layers.")
    message = str(caught.value)
    assert message.startswith("--hidden 100000 100000 needs at least ")
    assert f"the weights and their copies alone need {weights / 1e9:,.2f} GB" in message
    assert "the activations of 10,000 images at a time 16.00 GB" in message
    assert "more than the 16.00 GB there is" in message and message.endswith("Use narrower layers.")


def test_machine_memory_is_at_most_the_physical_memory():
    assert 0 < memory.machine_memory() <= os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


@pytest.mark.parametrize("n_batch, rows", [(100, 10_000), (20_000, 20_000)])
def test_training_memory_holds_a_mini_batch_or_an_evaluation_chunk_whichever_is_more(n_batch, rows):
    config = TrainConfig(hidden=(50, 30), n_batch=n_batch, cycles=3)
    parts, found = memory.training_memory(config, (45_000, 5_000, 10_000))
    assert found == rows
    assert parts == memory.memory_needed([3072, 50, 30, 10], "batch", 4, copies=5, rows=rows, images=60_000)
