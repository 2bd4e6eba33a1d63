"""The callbacks a run adds to write its files, one per file: ``checkpoint.StepCheckpoint``
(``--checkpoint.*``), ``result.SaveGeneratedImage`` (``--result.*``), ``image_logger.ImageLogger``
(``--image_logger.*``). The callbacks every ``StyleTransfer`` has are the model's (``model/``).

Import ``model`` and below, and ``run``'s own ``signals``, ``checkpoint_io`` and ``output``.
"""
