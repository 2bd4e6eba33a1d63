"""``batch``: a collection of photos x paintings as resumable jobs. Planning (``plan``), one job as a
fit (``jobs``), where jobs run (``launchers``: sequential, Ray), ``summary.csv`` and the contact sheet
(``report``), and the command (``cli``).

Imports ``run`` (its entry, ``cli_main``) and below; nothing imports it but ``__main__``.
"""
