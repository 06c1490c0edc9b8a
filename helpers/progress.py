"""Progress bars: tqdm.auto, a widget in a notebook and text in a terminal."""

import os

from tqdm.auto import tqdm


def progress_bar(total, enabled=True, **options):
    """A bar over `total` items. TQDM_DISABLE=1 in the environment turns every bar off.

    The variable is read here because tqdm's notebook bar does not honour it.
    """
    if not enabled or os.environ.get("TQDM_DISABLE", "").lower() not in ("", "0", "false"):
        options["disable"] = True
    return tqdm(total=total, **options)
