"""The quality harness's judge (``scorer.Scorer``): content and style distances of a result, for
``scripts/evaluate.py`` and the quality tests. Independent of any run.

Imports ``model`` (VGG19), ``loss`` and ``utilities``.
"""
