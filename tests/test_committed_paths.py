"""No committed result holds an absolute path: a reader's clone is elsewhere, and a home folder is nobody's business."""

import re
import subprocess
from pathlib import Path

from helpers.files import REPO, shown_path

COMMITTED_RESULTS = ("figures", "notebooks", "benchmarks/results", "README.md", "REPORT.md")
ABSOLUTE = re.compile(rb"/(home|root|tmp|work|Users)/")


def test_no_committed_result_holds_an_absolute_path():
    listed = subprocess.run(["git", "ls-files", "--", *COMMITTED_RESULTS], cwd=REPO, capture_output=True, text=True,
                            check=True).stdout.split()
    assert "figures/06_best_model.json" in listed and "README.md" in listed
    found = {}
    for name in listed:
        content = (REPO / name).read_bytes()
        hits = [m.group().decode() for m in ABSOLUTE.finditer(content)]
        if str(REPO).encode() in content:
            hits.append(str(REPO))
        if hits:
            found[name] = hits
    assert found == {}, "absolute paths in committed files; write them with helpers.files.shown_path"


def test_a_path_inside_the_repository_is_shown_relative_to_it(tmp_path):
    assert shown_path(REPO / "figures" / "summary.md") == "figures/summary.md"
    assert shown_path(REPO) == "."
    assert shown_path(tmp_path) == tmp_path.resolve().as_posix()
    assert Path(shown_path(tmp_path)).is_absolute()
