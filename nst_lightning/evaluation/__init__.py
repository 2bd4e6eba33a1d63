"""Measuring the product, independent of any run: the quality harness's judge (``scorer.Scorer``:
content and style distances of a result, for ``benchmarks/evaluate.py`` and the quality tests), and a
run's peak memory against the memory model's estimate (``peak``: for ``benchmarks/memory_model.py``
and ``tests/scale/test_memory.py``).

Imports ``model`` (VGG19, the module), ``inputs``, ``scale``, ``loss`` and ``utilities``.
"""
