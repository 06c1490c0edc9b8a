"""The speed benchmark, run for a few steps: it must keep running and its figures must add up.

Its timings are never asserted: they are for a human to read on a quiet machine.
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_the_speed_benchmark_runs_and_its_ratios_add_up(cifar_dir, tmp_path):
    out = tmp_path / "speed.json"
    args = [sys.executable, "benchmarks/speed.py", "--steps", "40", "--rounds", "2", "--skip-gradcheck",
            "--skip-memory", "--data-dir", str(cifar_dir), "--out", str(out)]
    printed = subprocess.run(args, cwd=ROOT, check=True, capture_output=True, text=True, timeout=600).stdout
    results = json.loads(out.read_text())
    assert set(results["networks"]) == {"3-layer BN", "9-layer BN"}
    for name, row in results["networks"].items():
        assert name in printed
        rounds = row["rounds"]
        assert len(rounds) == 2
        for r in rounds:
            assert r["steps"] == 40
            assert min(r["numpy_ms_per_step"], r["torch_ms_per_step"], r["matmul_floor_ms_per_step"]) > 0
            assert r["numpy_over_torch"] == pytest.approx(r["numpy_ms_per_step"] / r["torch_ms_per_step"])
            assert r["numpy_over_floor"] == pytest.approx(r["numpy_ms_per_step"] / r["matmul_floor_ms_per_step"])
            assert r["textbook_ms_per_step"] > 0
        for key in ("numpy_ms_per_step", "torch_ms_per_step", "matmul_floor_ms_per_step", "textbook_ms_per_step"):
            assert min(r[key] for r in rounds) <= row[key] <= max(r[key] for r in rounds)
            assert row["best_of_rounds"][key] == min(r[key] for r in rounds)
        best = row["best_of_rounds"]
        assert best["numpy_over_floor"] == pytest.approx(best["numpy_ms_per_step"] / best["matmul_floor_ms_per_step"])
        for key, target in row["targets"].items():
            assert target["met"] == (best[key] <= target["target"])
        phases = row["phases_ms_per_step"]
        assert list(phases) == ["gather the batch", "forward and loss", "backward", "update"]
        assert all(ms > 0 for ms in phases.values())
    assert results["torch"].startswith("2.13.0")
    augmentation = results["augmentation"]
    assert "augmentation, 3-layer BN" in printed
    kinds = augmentation["kinds"]
    assert list(kinds) == ["plain", "flip", "translate 2", "translate 4", "flip + translate 2 (the best model's)",
                           "jitter", "flip + translate 4 + jitter"]
    plain = kinds["plain"]
    assert plain["ratio_best_blocks"] == 1
    for kind, row in kinds.items():
        assert row["ms_per_step"] > 0 and row["best_block_ms_per_step"] <= row["ms_per_step"]
        assert row["ratio_best_blocks"] == pytest.approx(row["best_block_ms_per_step"] / plain["best_block_ms_per_step"])
        assert row["added_ms_per_step"] == pytest.approx(row["best_block_ms_per_step"] - plain["best_block_ms_per_step"])
        assert row["batch_ms"] > 0 and row["setup_seconds"] > 0
        if kind != "plain":
            target = augmentation["targets"][kind]
            assert target["target"] == 1.15
            assert target["met"] == (row["ratio_best_blocks"] <= 1.15)
            assert f"  {kind}: batch" in printed


def test_the_fast_path_benchmark_times_every_trick_and_both_steps(tmp_path):
    out = tmp_path / "fast_path.json"
    args = [sys.executable, "benchmarks/fast_path.py", "--number", "5", "--out", str(out)]
    printed = subprocess.run(args, cwd=ROOT, check=True, capture_output=True, text=True, timeout=300).stdout
    results = json.loads(out.read_text())
    assert [name.split(".")[0] for name in results["tricks"]] == ["1", "2", "3", "4", "5-7", "8", "9"]
    for name, trick in results["tricks"].items():
        assert name in printed
        assert trick["plain_us"] > 0 and trick["fast_us"] >= 0
        assert trick["saved_us"] == pytest.approx(trick["plain_us"] - trick["fast_us"])
    assert set(results["steps"]) == {"3-layer BN", "9-layer BN", "best model (--preset best, with dropout)"}
    for step in results["steps"].values():
        assert step["speedup"] == pytest.approx(step["textbook_us"] / step["fast_us"])
