"""What a run writes into its directory besides checkpoints: its result images (``results``: 8 or 16
bits, tagged with their colour profile, the run's configuration embedded, and that configuration read
back for a rerun) and its lock, one writer per run directory (``run_lock``; ``_lock_file``, the lock's
file, written whole and read warily). ``inputs`` is what a run reads; this room is what it writes.

Imports ``utilities`` only.
"""
