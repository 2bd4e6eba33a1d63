"""The core: ``StyleTransfer`` (the image parameter, ``forward``, ``training_step``, the optimizer, the
checkpoint's shape), its options grouped (``options``), its targets (``targets``: one concept, one
kind per input), VGG19 with the papers' layer names (``vgg``); the callbacks every run has are the
``callbacks`` room's (``StyleTransfer.configure_callbacks`` adds them).

Imports ``callbacks``, ``scale``, ``inputs``, ``loss`` and ``utilities``; never the run, the CLI or a command.
"""
