"""``ui``: the browser interface, ``nst-lightning ui`` (Gradio). The command's options and server
(``cli``); the page (``page``: a Photo tab, ``page_photo`` and ``page_runs``, and a Video tab, ``page_video``;
what their run events share, ``page_events``); the runs folder: each run a real ``fit`` in a directory the
server names under ``--runs``, and the pictures it serves of them (``runs``, ``pictures``), a run made in the
process's run thread (``runner``), a clip as the real ``video`` command in a process of its own (``clips``),
what a run hands the page while it paints and the stop it takes back (``live``: a callback and its channel),
the controls as fit options (``controls``), a run's settings in words and as a file (``words``), and this
machine's speed for the time estimates (``speed``).

Imports ``run`` (``entry.cli_main`` for every run, ``capture``, ``fit_options``), ``inputs`` (the
built-in images, the checks an upload gets, a checkpoint's image), ``scale`` (the coarse-to-fine stage
sizes, for estimates) and ``utilities``; nothing imports it but ``__main__``. It does not import ``video``
(a sibling): a clip runs the ``video`` command. The only room that imports gradio, and only ``cli`` and the
``page*`` modules do, so the rest works without the ``ui`` extra.
"""
