import shlex
import zipfile

import numpy as np
import pytest

from helpers.checkpoint import load_network, save_network
from helpers.errors import CheckpointError, HelpersError
from test_data import RunsACommand
from helpers.core.network import init_network, predict_proba, update_running_stats, forward_backward


def trained_looking_network(norm="batch"):
    net = init_network([12, 8, 6, 3], norm=norm, seed=1)
    rng = np.random.default_rng(0)
    X = rng.standard_normal((20, 12)).astype(np.float32)
    _, _, _, stats = forward_backward(net, X, rng.integers(0, 3, 20), 0.0)
    update_running_stats(net, stats)
    return net, X


@pytest.mark.parametrize("norm", ["batch", "none"])
def test_a_loaded_network_predicts_exactly_as_before(tmp_path, norm):
    net, X = trained_looking_network(norm)
    path = save_network(net, tmp_path / "net.npz", config={"lam": 0.005, "hidden": [8, 6]})
    loaded, config = load_network(path)
    assert config == {"lam": 0.005, "hidden": [8, 6]}
    assert loaded.dims == net.dims and loaded.norm == net.norm and loaded.alpha == net.alpha
    np.testing.assert_array_equal(predict_proba(loaded, X), predict_proba(net, X))
    for name in net.params:
        assert loaded.params[name].dtype == net.params[name].dtype
    assert loaded.running.keys() == net.running.keys()


def test_saving_over_a_file_replaces_it_whole_and_leaves_no_temporary(tmp_path):
    net, _ = trained_looking_network()
    path = tmp_path / "net.npz"
    save_network(net, path)
    other = init_network([12, 8, 6, 3], seed=7)
    save_network(other, path)
    np.testing.assert_array_equal(load_network(path)[0].params["W1"], other.params["W1"])
    assert [p.name for p in tmp_path.iterdir()] == ["net.npz"]


def test_a_crash_while_saving_keeps_the_old_file(tmp_path, monkeypatch):
    net, _ = trained_looking_network()
    path = tmp_path / "net.npz"
    save_network(net, path)

    def crash(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(np, "savez", crash)
    with pytest.raises(KeyboardInterrupt):
        save_network(init_network([12, 8, 6, 3], seed=7), path)
    monkeypatch.undo()
    np.testing.assert_array_equal(load_network(path)[0].params["W1"], net.params["W1"])
    assert [p.name for p in tmp_path.iterdir()] == ["net.npz"]


def test_missing_file(tmp_path):
    with pytest.raises(CheckpointError, match="No checkpoint"):
        load_network(tmp_path / "nothing.npz")


def test_a_file_that_is_not_an_npz(tmp_path):
    path = tmp_path / "net.npz"
    path.write_bytes(b"hello")
    with pytest.raises(CheckpointError, match="not a readable checkpoint"):
        load_network(path)


def test_a_truncated_checkpoint(tmp_path):
    net, _ = trained_looking_network()
    path = save_network(net, tmp_path / "net.npz")
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(HelpersError):
        load_network(path)


def test_an_npz_of_another_format(tmp_path):
    path = tmp_path / "other.npz"
    np.savez(path, weights=np.ones(3))
    with pytest.raises(CheckpointError, match="not a network checkpoint"):
        load_network(path)


def test_another_version(tmp_path):
    net, _ = trained_looking_network()
    path = save_network(net, tmp_path / "net.npz")
    with np.load(path) as f:
        arrays = dict(f)
    arrays["version"] = np.array(99)
    np.savez(path, **arrays)
    with pytest.raises(CheckpointError, match="version 99"):
        load_network(path)


def test_a_parameter_of_the_wrong_shape(tmp_path):
    net, _ = trained_looking_network()
    net.params["W2"] = np.zeros((8, 5), np.float32)
    path = save_network(net, tmp_path / "net.npz")
    with pytest.raises(CheckpointError, match=r"W2 has shape \(8, 5\), expected \(8, 6\)"):
        load_network(path)


def test_a_missing_parameter(tmp_path):
    net, _ = trained_looking_network()
    del net.params["gamma1"]
    path = save_network(net, tmp_path / "net.npz")
    with pytest.raises(CheckpointError, match="needs"):
        load_network(path)


def test_checkpoints_hold_no_pickles(tmp_path):
    net, _ = trained_looking_network()
    path = save_network(net, tmp_path / "net.npz", config={"init": "he"})
    with zipfile.ZipFile(path) as z:
        for name in z.namelist():
            with z.open(name) as member:
                header = member.read(128)
            assert b"'descr': '|O'" not in header, name


@pytest.mark.parametrize("key", ["format", "config", "param/W1"])
def test_a_checkpoint_holding_an_object_array_is_refused_and_runs_nothing(tmp_path, key):
    net, _ = trained_looking_network()
    path = save_network(net, tmp_path / "net.npz")
    marker = tmp_path / "the command ran"
    with np.load(path) as f:
        arrays = dict(f)
    # np.savez pickles an object array; loading it with pickles allowed would run the command.
    arrays[key] = np.array([RunsACommand(f"touch {shlex.quote(str(marker))}")], dtype=object)
    np.savez(path, **arrays)
    with np.load(path, allow_pickle=True) as f:
        f[key]
    assert marker.exists()
    marker.unlink()

    with pytest.raises(CheckpointError, match="not a readable checkpoint"):
        load_network(path)
    assert not marker.exists()


@pytest.mark.parametrize("options", [dict(dropout=0.3), dict(norm_place="after"), dict(skips=True)])
def test_the_network_options_are_saved_and_loaded(tmp_path, options):
    net = init_network([12, 6, 6, 3], seed=2, **options)
    loaded, _ = load_network(save_network(net, tmp_path / "net.npz"))
    assert (loaded.dropout, loaded.norm_place, loaded.skips) == (net.dropout, net.norm_place, net.skips)
    X = np.random.default_rng(0).standard_normal((5, 12)).astype(np.float32)
    np.testing.assert_array_equal(predict_proba(loaded, X), predict_proba(net, X))


def older_file(path, version):
    """Rewrite the checkpoint at path as format version 1 or 2 wrote it: batch_norm and bn_after_relu, not norm."""
    with np.load(path) as f:
        arrays = {key: f[key] for key in f.files}
    arrays["batch_norm"] = np.array(str(arrays.pop("norm")) == "batch")
    bn_after_relu = np.array(str(arrays.pop("option/norm_place")) == "after")
    if version == 1:
        arrays = {key: a for key, a in arrays.items() if not key.startswith("option/")}
    else:
        arrays["option/bn_after_relu"] = bn_after_relu
    arrays["version"] = np.array(version)
    np.savez(path, **arrays)
    return path


def test_a_version_1_file_loads_with_every_option_off(tmp_path):
    path = older_file(save_network(init_network([12, 6, 3], seed=2), tmp_path / "net.npz"), 1)
    old, _ = load_network(path)
    assert (old.norm, old.dropout, old.norm_place, old.skips) == ("batch", 0.0, "before", False)


@pytest.mark.parametrize("norm, options", [("batch", dict(norm_place="after", dropout=0.3)), ("batch", dict(skips=True)),
                                           ("none", dict(dropout=0.2))])
def test_a_version_2_file_with_batch_norm_and_bn_after_relu_loads_as_the_same_network(tmp_path, norm, options):
    net = init_network([12, 6, 6, 3], norm=norm, seed=2, **options)
    path = older_file(save_network(net, tmp_path / "net.npz"), 2)
    with np.load(path) as f:
        assert "norm" not in f.files and bool(f["batch_norm"]) == (norm == "batch")
    old, _ = load_network(path)
    assert (old.norm, old.dropout, old.norm_place, old.skips) == (net.norm, net.dropout, net.norm_place, net.skips)
    X = np.random.default_rng(0).standard_normal((5, 12)).astype(np.float32)
    np.testing.assert_array_equal(predict_proba(old, X), predict_proba(net, X))


def test_a_checkpoint_naming_an_unknown_normalization_is_refused(tmp_path):
    path = save_network(init_network([12, 6, 3], seed=2), tmp_path / "net.npz")
    with np.load(path) as f:
        arrays = {key: f[key] for key in f.files}
    arrays["norm"] = np.array("group")
    np.savez(path, **arrays)
    with pytest.raises(CheckpointError, match="damaged.*norm"):
        load_network(path)
