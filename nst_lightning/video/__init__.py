"""``video``: a clip as a sequence of still runs without flicker (Ruder, Dosovitskiy & Brox 2016,
"Artistic style transfer for videos"). Reading and writing clips with their timing and sound
(``io``: PyAV), optical flow, consistency masks and warping (``flow``: OpenCV's DIS), the temporal loss
as a kind of target the core adds through its ``Term`` seam (``temporal``), the frames as resumable
units each run through ``run.entry.cli_main`` (``clip``), and the command (``cli``).

Imports ``run`` (its entry, ``cli_main``) and below; nothing imports it but ``__main__``. PyAV and
OpenCV are the ``video`` extra: imported only by this room.
"""
