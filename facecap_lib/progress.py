"""Progress bars: widgets in a live Jupyter kernel, text everywhere else.

In JupyterLab (``make lab``) tqdm's notebook bars are ipywidgets. An executed copy of a chapter
must not hold widgets: the book renders outputs as HTML and cannot show them, and a widget with
no kernel behind it is an empty box. The runner (:mod:`facecap_lib.notebooks`) therefore gives
its kernels ``FACECAP_PROGRESS=text``, and bars then print as text, which the book shows as it
would a terminal's. Outside Jupyter they are text anyway.
"""

from __future__ import annotations

import os

ENVIRONMENT = "FACECAP_PROGRESS"  # "text": text bars even in a Jupyter kernel


def progress_bar(iterable=None, **options):
    """A ``tqdm`` bar over ``iterable`` (or of ``total``): a widget in a live notebook kernel,
    text in the runner's kernels and outside Jupyter. ``options`` go to ``tqdm``."""
    if os.environ.get(ENVIRONMENT) == "text":
        from tqdm.std import tqdm
    else:
        from tqdm.auto import tqdm
    return tqdm(iterable, **options)
