"""One run, from its command line to its files: the one entry (``entry.cli_main``), the LightningCLI
and its checks (``cli``, ``resume``), the precision chosen by the machine (``precision``), reruns from a
result image (``rerun``), what the output leaves out (``quiet``), and ``stylize()`` (``api``; its
arguments checked through the CLI's typed signatures in ``_api_arguments``, its in-memory images in
``_api_images``). The callbacks it adds are in ``callbacks/``, the files it writes in ``outputs/``.

Imports ``model`` and everything below it; never a command above it (``batch``, ``__main__``).
"""
