"""Making a run fit and converge at any size: exact tiling (``tiling``), the memory model and the tile a
budget allows (``memory``, ``budget``), coarse-to-fine stages (``multiscale``) and the average of the
iterates (``iterate_average``).

Imports ``loss`` and ``utilities``; duck-types the model (``vgg.features``, ``refresh_targets``) rather
than importing it.
"""
