"""The callbacks a run adds to write its files, one per file: ``checkpoint.StepCheckpoint``
(``--checkpoint.*``), ``result.SaveGeneratedImage`` (``--result.*``), ``image_logger.ImageLogger``
(``--image_logger.*``), ``run_lock.HoldRunLock`` (the run directory's lock, held to the fit's end),
``progress.StepProgressBar`` (the progress bar, in steps). The callbacks every ``StyleTransfer`` has are the model's (``model/``).

Import ``model`` and below, and ``run``'s own ``signals``, ``checkpoint_io``, ``output`` and ``run_lock``.
"""
