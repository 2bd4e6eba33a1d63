"""Making a run fit and converge at any size: exact tiling (``tiling``), the memory model and the tile a
budget allows (``memory``, ``budget``), coarse-to-fine stages' sizes and resizing (``multiscale``; the
callback that moves a run between them is ``callbacks/coarse_to_fine.py``) and the average of the
iterates (``iterate_average``).

Imports ``loss`` and ``utilities``; duck-types the model (``vgg.features``) rather than importing it.
"""
