"""The ground floor: the errors that end a run on purpose and how they name options (``errors``), the
finite-number option types (``option_types``), atomic files and the download cache (``files``), and
how SIGINT, SIGTERM and SIGHUP end a run (``signals``: ``__main__`` installs its handlers before torch loads).

Imports nothing of the package, and neither torch nor Lightning: every other room may import it.
"""
