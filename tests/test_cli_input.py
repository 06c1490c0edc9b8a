"""Bad input to every command is refused before any data is read or anything is trained.

Each refusal is one `error:` line naming the flag, exit code 2, no traceback.
The functions that do the work of a command (load the data, train, check
gradients, search, download, run the notebooks) are replaced by recorders:
a bad flag must be refused before any of them is called.
"""
import errno
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from helpers import cli
from helpers.checkpoint import load_network
from helpers.core import data
from helpers.core.config import PRESETS, TrainConfig
from helpers.report import job

from conftest import WorkStarted, record_work

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def work(monkeypatch):
    """The names of the work functions called, in order; each raises WorkStarted instead of working."""
    return record_work(monkeypatch, [(data, "load_cifar10"), (data, "_fetch"), (cli, "run_experiment"),
                                     (cli, "check_gradients"), (cli, "run_search"), (job, "run_report")])


@pytest.fixture
def paths(tmp_path):
    """Stand-ins for the paths of BAD: a folder, a regular file, and a path below that file."""
    (tmp_path / "file").write_text("")
    return {"dir": str(tmp_path), "file": str(tmp_path / "file"), "under_file": str(tmp_path / "file" / "x.json"),
            "out": str(tmp_path / "out")}


HUGE = ["--hidden", "100000", "100000"]
"""10 billion weights: refused by the memory check on any machine of today."""

BAD = {
    "train": [
        (["--lam", "-1"], "--lam"),
        (["--dropout", "1"], "--dropout"),
        (["--dropout", "-0.1"], "--dropout"),
        (["--bn-after-relu", "--no-bn"], "--no-bn: norm_place 'after'"),
        (["--skips", "--hidden", "50", "30"], "skips connects hidden layers of equal width"),
        (["--optimizer", "adagrad"], "--optimizer"),
        (["--optimizer", "momentum", "--momentum", "1"], "momentum must be in (0, 1)"),
        (["--schedule", "linear"], "--schedule"),
        (["--warmup", "10"], "--warmup"),
        (["--translate", "-1"], "--translate"),
        (["--translate", "40"], "--translate"),
        (["--brightness", "1.5"], "--brightness"),
        (["--contrast", "-1"], "--contrast"),
        (["--precise-bn", "-2"], "--precise-bn"),
        (["--precise-bn", "10", "--no-bn"], "--no-bn: precise_bn"),
        (["--preset", "fastest"], "--preset"),
        (["--lam", "nan"], "--lam"),
        (["--lam", "abc"], "--lam"),
        (["--eta-min", "0"], "--eta-min"),
        (["--eta-min", "0.5"], "--eta-min"),
        (["--eta-max", "1e-6"], "--eta-max"),
        (["--eta-max", "inf"], "--eta-max"),
        (["--n-batch", "0"], "--n-batch"),
        (["--n-batch", "45001"], "--n-batch"),
        (["--n-batch", "20000", "--split", "small"], "--n-batch"),
        (["--n-s", "0"], "--n-s"),
        (["--n-s", "1.5"], "--n-s"),
        (["--cycles", "0"], "--cycles"),
        (["--hidden", "50", "0"], "--hidden"),
        (["--hidden", "-5"], "--hidden"),
        (["--hidden", "fifty"], "--hidden"),
        (["--sigma", "0"], "--sigma"),
        (["--sigma", "-0.1"], "--sigma"),
        (["--alpha", "1"], "--alpha"),
        (["--alpha", "-0.5"], "--alpha"),
        (["--seed", "-1"], "--seed"),
        (["--init", "zeros"], "--init"),
        (["--init", "he", "--sigma", "0.1"], "--sigma"),
        (["--bn", "--no-bn"], "--no-bn"),
        (["--split", "big"], "--split"),
        (["--epochs", "3"], "--epochs"),
        (HUGE, "--hidden 100000 100000"),
        (["--json", "{dir}"], "--json"),
        (["--json", "{under_file}"], "--json"),
        (["--json", "/proc/run.json"], "--json"),
        (["--save", "{under_file}"], "--save"),
        (["--save", "/dev/null"], "--save"),
        (["--json", "{out}", "--save", "{out}"], "--json and --save"),
    ],
    "gradcheck": [
        (["--dropout", "1"], "--dropout"),
        (["--skips", "--hidden", "10", "20"], "skips connects hidden layers of equal width"),
        (["--bn-after-relu", "--no-bn"], "norm_place 'after' moves the normalization after the ReLU: it needs"),
        (["--n", "0"], "--n"),
        (["--n", "10001"], "--n"),
        (["--dim", "0"], "--dim"),
        (["--dim", "3073"], "--dim"),
        (["--lam", "-0.1"], "--lam"),
        (["--h", "0"], "--h"),
        (["--h", "-1e-6"], "--h"),
        (["--h", "inf"], "--h"),
        (["--seed", "-3"], "--seed"),
        (["--hidden", "0"], "--hidden"),
        (["--method", "backward"], "--method"),
        ([*HUGE, "--n", "10000"], "--hidden 100000 100000"),
        (["--json", "{dir}"], "--json"),
        (["--json", "{under_file}"], "--json"),
    ],
    "search": [
        (["--lam-range", "0", "1"], "--lam-range"),
        (["--lam-range", "1e-1", "1e-5"], "--lam-range"),
        (["--lam-range", "1e-5", "inf"], "--lam-range"),
        (["--lam-range", "1e-5"], "--lam-range"),
        (["--param", "hidden"], "--param: 'hidden' cannot be searched"),
        (["--param", "init", "--range", "0.1", "1"], "--param: 'init' cannot be searched"),
        (["--param", "seed", "--range", "1", "5"], "--param: 'seed' cannot be searched"),
        (["--param", "no_such_field"], "--param"),
        (["--param", "eta_max"], "--param: eta_max has no default range"),
        (["--param", "eta_max", "--lam-range", "1e-3", "1e-1"], "--param: --lam-range is the range of lambda"),
        (["--param", "width", "--hidden", "--range", "10", "100"], "--hidden: width sets the widths"),
        (["--param", "eta_max", "--range", "0", "1"], "--range"),
        (["--range", "1e-1", "1e-5"], "--range"),
        (["--range", "1e-5"], "--range"),
        (["--range", "1e-5", "nan"], "--range"),
        (["--scale", "linear", "--range", "0.1", "-0.1"], "--range"),
        (["--scale", "linear", "--range", "-1", "1"], "--range"),
        (["--scale", "linear", "--lam-range", "-1", "1"], "--lam-range"),
        (["--range", "1e-5", "1e-1", "--lam-range", "1e-5", "1e-1"], "--lam-range"),
        (["--scale", "cubic"], "--scale"),
        (["--param", "eta_min", "--range", "1e-6", "0.5"], "eta_min = 0.5"),
        (["--param", "n_batch", "--range", "0.2", "100"], "n_batch = 0.2"),
        (["--param", "width", "--range", "10", "100000"], "--hidden 100000 100000 (--param width at 100000)"),
        (["--param", "eta_max", "--range", "1e-3", "1e-1", "--workers", "0"], "--workers"),
        (["--param", "eta_max", "--range", "1e-3", "1e-1", "--cycles", "0"], "--cycles"),
        (["--coarse", "0"], "--coarse"),
        (["--fine", "0"], "--fine"),
        (["--stages", "0"], "--stages"),
        (["--shrink", "0.5"], "--shrink"),
        (["--cycles", "0"], "--cycles"),
        (["--hidden", "0"], "--hidden"),
        (["--n-s", "0"], "--n-s"),
        (["--seed", "-1"], "--seed"),
        (["--seeds", "0"], "--seeds"),
        (["--seeds", "-1"], "--seeds"),
        (["--seeds", "1.5"], "--seeds"),
        (["--seeds", "two"], "--seeds"),
        (["--n-train", "0"], "--n-train"),
        (["--n-train", "50"], "--n-train"),
        (["--n-train", "45001"], "--n-train"),
        (["--workers", "0"], "--workers"),
        (["--workers", "2", "--scheduler", "tcp://127.0.0.1:1"], "--scheduler"),
        (HUGE, "--hidden 100000 100000"),
        (["--out", "{file}"], "--out"),
        (["--out", "{under_file}"], "--out"),
        (["--out", "/proc/search"], "--out"),
    ],
    "download": [
        (["--md5", "xyz"], "--md5"),
        (["--from", "ftp://example.org/cifar-10-python.tar.gz"], "--from"),
        (["--data-dir", "{under_file}"], "--data-dir"),
        (["--data-dir", "/proc/cifar"], "--data-dir"),
    ],
    "report": [
        (["--figures-dir", "{file}"], "--figures-dir"),
        (["--figures-dir", "{under_file}"], "--figures-dir"),
        (["--cache-dir", "/proc/cache"], "--cache-dir"),
        (["--quick", "nothing.ipynb"], "nothing.ipynb"),
        (["--quick", "{file}"], "is not an .ipynb file"),
        (["--quickly"], "--quickly"),
    ],
}
CASES = [(command, argv, words) for command, cases in BAD.items() for argv, words in cases]


@pytest.mark.parametrize("command, argv, words", CASES, ids=[f"{c} {' '.join(a)}" for c, a, _ in CASES])
def test_a_bad_flag_is_refused_before_any_work_with_one_line_naming_it(command, argv, words, work, paths, capsys):
    argv = [arg.format(**paths) for arg in argv]
    out = ["--out", paths["out"]] if command == "search" else []
    code = cli.main([command, *out, *argv])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("error: ") and len(err.splitlines()) == 1, err
    assert words in err
    assert "Traceback" not in err
    assert work == []
    assert not Path(paths["out"]).exists()


GOOD = [
    (["train", "--eta-min", "0.2", "--eta-max", "0.5"], "load_cifar10"),
    (["train", "--hidden"], "load_cifar10"),
    (["train", "--sigma", "1e-4", "--alpha", "0", "--seed", "0", "--textbook"], "load_cifar10"),
    (["train", "--n-batch", "10000", "--split", "small", "--json", "{out}/a/b/run.json", "--save", "{out}/n.npz"],
     "load_cifar10"),
    (["gradcheck", "--n", "10000", "--dim", "1", "--hidden", "5"], "load_cifar10"),
    (["search", "--out", "{out}", "--n-train", "100", "--lam-range", "1e-3", "1e-2"], "run_search"),
    (["search", "--out", "{out}", "--seeds", "3"], "run_search"),
    (["search", "--out", "{out}", "--param", "eta_max", "--range", "1e-3", "1"], "run_search"),
    (["search", "--out", "{out}", "--param", "n_batch", "--range", "20", "200", "--scale", "linear"], "run_search"),
    (["search", "--out", "{out}", "--param", "width_scale", "--range", "0.5", "4"], "run_search"),
    (["search", "--out", "{out}", "--scale", "linear", "--lam-range", "0", "0.01"], "run_search"),
    (["download", "--data-dir", "{out}", "--from", "file:///nowhere.tar.gz", "--md5", ""], "_fetch"),
    (["report", "--quick", "--cache-dir", "{out}/cache", "--figures-dir", "{out}/figures"], "run_report"),
]


@pytest.mark.parametrize("argv, first_work", GOOD, ids=[" ".join(a) for a, _ in GOOD])
def test_good_flags_reach_the_work(argv, first_work, work, paths):
    with pytest.raises(WorkStarted):
        cli.main([arg.format(**paths) for arg in argv])
    assert work == [first_work]


def test_an_unwritable_json_path_is_refused_before_the_data_is_read_or_training_starts(
        cifar_dir, tmp_path, monkeypatch, capsys):
    trained = []
    monkeypatch.setattr(cli, "run_experiment", lambda *args, **kwargs: trained.append(args))
    (tmp_path / "results").write_text("a file where a folder was meant")
    code = cli.main(["train", "--data-dir", str(cifar_dir), "--json", str(tmp_path / "results" / "run.json")])
    assert code == 2 and trained == []
    err = capsys.readouterr().err
    assert err == f"error: --json: cannot create {tmp_path}/results/run.json: {tmp_path}/results is a file," \
                  " not a folder. Choose another path.\n"


def test_textbook_reaches_the_training_configuration(fake_cifar, monkeypatch):
    configs = []

    def capture(config, cifar):
        configs.append(config)
        raise WorkStarted("run_experiment")

    monkeypatch.setattr(cli, "run_experiment", capture)
    for textbook in ([], ["--textbook"]):
        with pytest.raises(WorkStarted):
            cli.main(["train", "--data-dir", str(fake_cifar), "--split", "small", "--n-batch", "10", *textbook])
    assert [c.textbook for c in configs] == [False, True]


@pytest.mark.parametrize("argv, expected", [
    ([], PRESETS["report"]),
    (["--preset", "best"], PRESETS["best"]),
    # A flag given wins over the preset, even when it repeats the report's value.
    (["--preset", "best", "--lam", "0.005", "--no-bn", "--precise-bn", "0", "--dropout", "0"],
     replace(PRESETS["best"], lam=0.005, norm="none", dropout=0.0)),
    (["--dropout", "0.1", "--bn-after-relu", "--optimizer", "adam", "--schedule", "cosine", "--warmup", "5",
      "--flip", "--translate", "2", "--brightness", "0.1", "--contrast", "0.2", "--tta", "--precise-bn", "50",
      "--hidden", "40", "40", "--skips"],
     TrainConfig(hidden=(40, 40), dropout=0.1, norm_place="after", optimizer="adam", schedule="cosine", warmup=5,
                 flip=True, translate=2, brightness=0.1, contrast=0.2, tta=True, precise_bn=50, skips=True)),
])
def test_train_flags_over_a_preset_give_the_training_configuration(argv, expected, fake_cifar, monkeypatch):
    configs = []

    def capture(config, cifar):
        configs.append(config)
        raise WorkStarted("run_experiment")

    monkeypatch.setattr(cli, "run_experiment", capture)
    with pytest.raises(WorkStarted):
        cli.main(["train", "--data-dir", str(fake_cifar), "--split", "small", "--n-batch", "10", *argv])
    assert configs == [replace(expected, n_batch=10)]


def test_a_write_failing_at_the_end_is_reported_and_the_other_output_kept(fake_cifar, tmp_path, monkeypatch, capsys):
    def full_disk(path, obj):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(cli, "write_json", full_disk)
    json_path, net_path = tmp_path / "run.json", tmp_path / "net.npz"
    code = cli.main(["train", "--data-dir", str(fake_cifar), "--split", "small", "--hidden", "8", "--n-batch", "10",
                     "--n-s", "4", "--cycles", "1", "--json", str(json_path), "--save", str(net_path)])
    assert code == 2
    out, err = capsys.readouterr()
    assert "test accuracy" in out
    assert err.splitlines()[-1] == f"error: could not write --json {json_path} (No space left on device);" \
                                   f" wrote {net_path}. Free some space, or choose another path."
    assert not json_path.exists()
    assert load_network(net_path)[0].dims == [3072, 8, 10]


# --- python -m helpers.report ---------------------------------------------------------


def test_python_m_helpers_report_is_the_report_command(tmp_path):
    (tmp_path / "file").write_text("")
    env = {"PATH": "/usr/bin:/bin", "TQDM_DISABLE": "1"}
    proc = subprocess.run([sys.executable, "-m", "helpers.report", "--figures-dir", str(tmp_path / "file" / "x")],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: --figures-dir") and len(proc.stderr.splitlines()) == 1
    helped = subprocess.run([sys.executable, "-m", "helpers.report", "--help"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=120)
    assert helped.returncode == 0 and "--quick" in helped.stdout and "--no-readme" in helped.stdout


@pytest.mark.parametrize("command, owner, name", [(["search", "--out", "{out}"], cli, "run_search"),
                                                  (["report", "--quick"], job, "run_report")])
def test_a_search_or_main_job_stopped_by_a_full_disk_says_so_in_one_line(command, owner, name, paths, monkeypatch,
                                                                          capsys):
    def full_disk(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(owner, name, full_disk)
    assert cli.main([arg.format(**paths) for arg in command]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: the ") and "stopped: [Errno 28] No space left on device" in err
    assert len(err.splitlines()) == 1 and "again" in err
