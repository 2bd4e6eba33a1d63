"""The loss: pure kernels at the bottom (``functional``), what the distribution losses share
(``samples``: which evaluation this is, a painting as a weighted sample of its features), the sliced
Wasserstein and nearest-neighbour losses (``sliced``, ``neighbours``), what "style" is (``statistics``:
the seam, Gram, Wasserstein, the registry), the guided loss of regions (``guided``), and the weighted
total (``total``), in that order, each importing only those before it.

Imports ``utilities`` and torch only: never Lightning, torchvision, the model, the inputs or the run.
"""
