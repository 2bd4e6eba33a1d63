"""The loss: pure kernels at the bottom (``functional``), what "style" is (``statistics``: Gram,
Wasserstein), the guided loss of regions (``guided``), and the weighted total (``total``), in that
order, each importing only those before it.

Imports ``utilities`` and torch only: never Lightning, torchvision, the model, the inputs or the run.
"""
