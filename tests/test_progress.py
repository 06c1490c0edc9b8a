from helpers.progress import progress_bar


def test_tqdm_disable_turns_the_bar_off(monkeypatch):
    monkeypatch.setenv("TQDM_DISABLE", "1")
    assert progress_bar(10).disable
    monkeypatch.setenv("TQDM_DISABLE", "0")
    assert not progress_bar(10).disable


def test_a_caller_can_turn_the_bar_off(monkeypatch):
    monkeypatch.delenv("TQDM_DISABLE", raising=False)
    assert progress_bar(10, enabled=False).disable
    assert not progress_bar(10).disable
