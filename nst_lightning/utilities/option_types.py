"""Option types for finite numbers.

jsonargparse's ``NonNegativeFloat`` and ``PositiveFloat`` accept ``inf`` (and ``1e400``, which parses
to it), which makes every loss infinite or every image empty only once the run has started. These
reject it, and NaN, when the options are parsed, with an error naming the option.
"""

from __future__ import annotations

import math

from jsonargparse.typing import restricted_number_type

FiniteNonNegativeFloat = restricted_number_type(
    "FiniteNonNegativeFloat", float, [(">=", 0), ("<", math.inf)], docstring="a finite float >= 0"
)
FinitePositiveFloat = restricted_number_type(
    "FinitePositiveFloat", float, [(">", 0), ("<", math.inf)], docstring="a finite float > 0"
)
PositiveFraction = restricted_number_type("PositiveFraction", float, [(">", 0), ("<=", 1)], docstring="a float in (0, 1]")
