"""``ui``: the browser interface, ``nst-lightning ui`` (Gradio). The command's options and server
(``cli``), the page and its events (``page``), the runs folder: each run a real ``fit`` in a directory the
server names under ``--runs``, and the pictures it serves of them (``runs``), a run made in the process's
run thread (``runner``), and what a run hands the page while it paints, and the stop it takes back
(``live``: a callback and its channel).

Imports ``run`` (``entry.cli_main`` for every run, ``capture``, ``fit_options``), ``inputs`` (the
built-in images, the checks an upload gets, a checkpoint's image) and ``utilities``; nothing imports it
but ``__main__``. The only room that imports gradio, and only ``cli`` and ``page`` do, so the rest works
without the ``ui`` extra.
"""
