import json

import pytest

from helpers.cli import main


def test_train_writes_the_summary_the_issue_asks_for(cifar_dir, tmp_path, capsys):
    out = tmp_path / "run.json"
    code = main(["train", "--data-dir", str(cifar_dir), "--split", "small", "--hidden", "20",
                 "--n-s", "50", "--cycles", "1", "--json", str(out)])
    assert code == 0
    printed = capsys.readouterr().out
    assert "test accuracy" in printed and "ensemble of 1 snapshots" in printed
    summary = json.loads(out.read_text())
    for key in ("test_accuracy", "val_accuracy", "ensemble_test_accuracy", "steps", "train_seconds",
                "history", "config"):
        assert key in summary
    assert summary["steps"] == 100
    assert summary["config"]["hidden"] == [20]
    assert summary["config"]["norm"] == "batch"
    assert len(summary["history"]["eta"]) == 100
    assert 0.2 < summary["test_accuracy"] < 1


@pytest.mark.parametrize(
    "argv, words",
    [
        (["train", "--lam", "-1"], "lam"),
        (["train", "--eta-min", "0.5", "--eta-max", "0.1"], "eta_min"),
        (["train", "--hidden", "50", "0"], "hidden width"),
        (["train", "--n-batch", "0"], "n_batch"),
        (["train", "--sigma", "0"], "sigma"),
        (["gradcheck", "--n", "0"], "--n"),
        (["gradcheck", "--lam", "-0.1"], "--lam"),
    ],
)
def test_bad_settings_get_a_message_and_exit_2_not_a_traceback(argv, words, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and words in err
    assert "Traceback" not in err


def test_n_batch_larger_than_the_data_is_refused(cifar_dir, capsys):
    assert main(["train", "--data-dir", str(cifar_dir), "--split", "small", "--n-batch", "20000"]) == 2
    assert "n_batch" in capsys.readouterr().err


def test_contradictory_flags_are_refused_by_argparse(capsys):
    assert main(["train", "--bn", "--no-bn"]) == 2
    assert main(["train", "--init", "xavier", "--sigma", "0.1"]) == 2
    err = capsys.readouterr().err
    assert err.count("error: argument") == 2 and "not allowed with" in err


def test_missing_data_says_how_to_get_it(tmp_path, capsys):
    assert main(["train", "--data-dir", str(tmp_path / "nowhere")]) == 2
    assert "python -m helpers download" in capsys.readouterr().err


def test_train_saves_a_checkpoint_that_predicts_like_the_run(cifar_dir, tmp_path):
    from helpers.checkpoint import load_network
    from helpers.core.data import load_cifar10
    from helpers.core.network import accuracy

    out, ckpt = tmp_path / "run.json", tmp_path / "net.npz"
    assert main(["train", "--data-dir", str(cifar_dir), "--split", "small", "--hidden", "20",
                 "--n-s", "50", "--cycles", "1", "--json", str(out), "--save", str(ckpt)]) == 0
    net, config = load_network(ckpt)
    assert config["hidden"] == [20] and net.dims == [3072, 20, 10]
    test = load_cifar10(cifar_dir, split="small").test
    assert accuracy(net, test.X, test.y) == json.loads(out.read_text())["test_accuracy"]
