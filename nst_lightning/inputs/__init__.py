"""Everything a run reads: where bytes come from (``sources``: files, URLs, built-ins), decoding
images (``images``), files' colour profiles to sRGB (``profiles``), pixel modes to 8 bits
(``modes``), colour transforms (``color``), region masks (``masks``), checkpoints read
as data (``checkpoints``), and the datamodule that serves the inputs at each size (``data``).

Imports ``utilities`` only (no loss, model or run).
"""
