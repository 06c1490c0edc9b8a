"""Progress bars: tqdm.auto, a widget in a notebook and text in a terminal."""

from tqdm.auto import tqdm


def progress_bar(total, enabled=True, **options):
    """A bar over `total` items. TQDM_DISABLE=1 in the environment turns every bar off.

    tqdm reads TQDM_* variables as defaults for the options left unset, so the
    bar is only forced off here, never forced on.
    """
    if not enabled:
        options["disable"] = True
    return tqdm(total=total, **options)
