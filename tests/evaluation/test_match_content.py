"""The quality harness's matching of content (benchmarks/evaluate.py --match-content): the secant step on
log weight against log content, on made-up tries, and the style weight a run gets from its configs."""

from __future__ import annotations

import importlib.util
import math
import sys
import time

import pytest

from tests.helpers import REPO


@pytest.fixture(scope="module")
def harness():
    sys.path.insert(0, str(REPO / "benchmarks"))  # evaluate.py imports benchmark.py beside it, as a script does
    try:
        spec = importlib.util.spec_from_file_location("evaluate_harness", REPO / "benchmarks" / "evaluate.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.path.remove(str(REPO / "benchmarks"))


def test_one_try_steps_along_the_assumed_power(harness):
    # content 0.943x the target at weight 9: the weight that closes the gap along content ~ weight^0.45
    # is 9 * (1 / 0.94317)^(1 / 0.45) = 10.2495, rounded to 3 significant digits.
    assert harness.next_weight([(9.0, 0.5208207)], 0.5521998) == 10.2
    assert harness.next_weight([(45.0, 0.60)], 0.50) == pytest.approx(45 * (0.5 / 0.6) ** (1 / 0.45), rel=5e-3)


def test_two_tries_take_the_secant_through_them(harness):
    def content(weight):  # a made-up pair on which content grows as the 0.3rd power, not the assumed 0.45th
        return 0.2 * weight**0.3

    tries = [(9.0, content(9.0)), (10.2, content(10.2))]
    assert harness.next_weight(tries, content(20.0)) == 20.0
    # The last two tries only: an earlier one far off the curve does not bend the step.
    assert harness.next_weight([(1.0, 5.0), *tries], content(20.0)) == 20.0


def test_a_secant_that_does_not_rise_falls_back_and_a_step_is_at_most_4x(harness):
    # Two tries whose difference is noise (content falls as the weight rises): the assumed power instead.
    assert harness.next_weight([(9.0, 0.53), (10.0, 0.52)], 0.55) == pytest.approx(10 * (0.55 / 0.52) ** (1 / 0.45), rel=5e-3)
    assert harness.next_weight([(10.0, 0.1)], 0.9) == 40.0
    assert harness.next_weight([(10.0, 0.9)], 0.1) == 2.5
    assert not math.isnan(harness.next_weight([(10.0, 0.5), (10.0, 0.6)], 0.55))


def test_the_style_weight_a_run_gets(harness):
    quick = REPO / "configs" / "quick.yaml"
    assert harness.style_weight_of([], quick) == 9.25
    assert harness.style_weight_of(harness.OPTION_SETS["gram"], quick) == 10.0  # the style losses' comparison, on the pixels
    assert harness.style_weight_of(["--config", "configs/nearest_neighbour.yaml"], quick) == 9.0
    assert harness.style_weight_of(["--config", "configs/sliced_wasserstein.yaml", "--data.image_size", "512"], quick) == 45.0
    assert harness.style_weight_of(["--config", "configs/sliced_wasserstein.yaml", "--model.style_weight", "12.5"], quick) == 12.5
    # A config after the flag overrides it, as the command line reads them: the loss configs' option sets
    # (the pixels' --model.style_weight 10, then the loss's config) run at the config's weight.
    assert harness.style_weight_of(harness.OPTION_SETS["sliced wasserstein"], quick) == 45.0
    assert harness.style_weight_of(harness.OPTION_SETS["nearest neighbour"], quick) == 9.0
    assert harness.style_weight_of([*harness.OPTION_SETS["sliced wasserstein"], "--model.style_weight", "56.8"], quick) == 56.8


def test_match_until_is_a_time_of_day_in_utc(harness):
    midnight = harness.until("00:00")
    assert midnight <= time.time() < midnight + 86400
    assert harness.until("11:50") - midnight == 11 * 3600 + 50 * 60
