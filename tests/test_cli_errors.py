"""The command line as a careless or unlucky user meets it: a message, exit code 2, no traceback."""
import pickle
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import write_fake_cifar
from test_data import evil_file, make_archive

ROOT = Path(__file__).resolve().parent.parent


def run(*args, env_extra=None):
    env = {"PATH": "/usr/bin:/bin", "TQDM_DISABLE": "1", **(env_extra or {})}
    return subprocess.run([sys.executable, "-m", "helpers", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


def assert_clean_failure(proc, *words):
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stderr.startswith("error: ")
    for w in words:
        assert w in proc.stderr


def test_missing_data_folder(tmp_path):
    assert_clean_failure(run("train", "--data-dir", str(tmp_path / "nowhere")), "python -m helpers download")


def test_environment_variable_pointing_nowhere(tmp_path):
    proc = run("gradcheck", env_extra={"CIFAR10_DIR": str(tmp_path / "nowhere")})
    assert_clean_failure(proc, "CIFAR10_DIR")


def test_truncated_batch_names_the_file(tmp_path):
    folder = write_fake_cifar(tmp_path)
    batch = folder / "data_batch_2"
    batch.write_bytes(batch.read_bytes()[:100])
    assert_clean_failure(run("train", "--data-dir", str(tmp_path), "--split", "small"), str(batch))


def test_labels_out_of_range_name_the_file(tmp_path):
    folder = write_fake_cifar(tmp_path)
    batch = folder / "data_batch_1"
    content = pickle.loads(batch.read_bytes())
    content[b"labels"][0] = 12
    batch.write_bytes(pickle.dumps(content))
    assert_clean_failure(run("train", "--data-dir", str(tmp_path), "--split", "small"), str(batch), "0..9")


def test_download_with_the_wrong_checksum_leaves_nothing(tmp_path):
    archive = tmp_path / "cifar.tar.gz"
    make_archive(archive, write_fake_cifar(tmp_path / "src"))
    target = tmp_path / "data"
    proc = run("download", "--data-dir", str(target), "--from", archive.as_uri())
    assert_clean_failure(proc, "MD5", "--md5")
    assert not (target / "cifar-10-batches-py").exists()
    assert list(target.iterdir()) == [] if target.exists() else True


def test_download_of_an_archive_escaping_its_folder_leaves_nothing(tmp_path):
    archive = tmp_path / "evil.tar.gz"
    md5 = make_archive(archive, write_fake_cifar(tmp_path / "src"), extra=[evil_file("../../evil")])
    target = tmp_path / "data"
    proc = run("download", "--data-dir", str(target), "--from", archive.as_uri(), "--md5", md5)
    assert_clean_failure(proc, "../../evil")
    assert not (tmp_path / "evil").exists()
    assert not (target / "cifar-10-batches-py").exists()


def test_download_from_an_unreachable_address(tmp_path):
    proc = run("download", "--data-dir", str(tmp_path), "--from", (tmp_path / "absent.tar.gz").as_uri())
    assert_clean_failure(proc, "CIFAR10_DIR")


@pytest.mark.parametrize(
    "args, words",
    [
        (["train", "--lam", "-0.5"], "lam"),
        (["train", "--eta-min", "1", "--eta-max", "0.1"], "eta_min"),
        (["train", "--hidden", "0"], "hidden width"),
        (["train", "--sigma", "0"], "sigma"),
        (["train", "--cycles", "0"], "cycles"),
    ],
)
def test_bad_settings_are_refused_before_the_data_is_read(tmp_path, args, words):
    # The data folder does not exist: the settings must be refused first.
    assert_clean_failure(run(*args, "--data-dir", str(tmp_path / "nowhere")), words)


def test_a_good_download_from_a_local_archive(tmp_path):
    archive = tmp_path / "cifar.tar.gz"
    md5 = make_archive(archive, write_fake_cifar(tmp_path / "src"))
    proc = run("download", "--data-dir", str(tmp_path / "data"), "--from", archive.as_uri(), "--md5", md5)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "data" / "cifar-10-batches-py" / "test_batch").is_file()


def test_ctrl_c_during_training_keeps_what_was_trained(cifar_dir, tmp_path):
    import json
    import signal
    import time

    out, ckpt = tmp_path / "run.json", tmp_path / "net.npz"
    proc = subprocess.Popen(
        [sys.executable, "-m", "helpers", "train", "--data-dir", str(cifar_dir), "--split", "small",
         "--n-s", "100000", "--json", str(out), "--save", str(ckpt)],
        cwd=ROOT, env={"PATH": "/usr/bin:/bin", "TQDM_DISABLE": "1"},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        # Ctrl-C as in a terminal: a shell that ran these tests in the background
        # leaves SIGINT ignored, and a child would inherit that.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    assert proc.stdout.readline().startswith("training on 10000 images")
    time.sleep(1.5)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0, stderr
    assert "(interrupted)" in stdout and "Traceback" not in stderr
    summary = json.loads(out.read_text())
    assert summary["interrupted"] is True
    assert 0 < summary["steps"] < 400_000
    assert summary["history"]["step"][-1] == summary["steps"]
    assert ckpt.is_file()
