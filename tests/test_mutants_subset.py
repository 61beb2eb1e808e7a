"""A fast subset of the curated mutants, run with the suite (CI included): one each from the critical modules.

``make mutants`` runs all of mutants/mutants.yaml (363 s on an idle 2-core machine, 12.5 min on a busy one), too
long beside CI's suite; these five, one per module that every number in the README goes through, run in about a
minute with two at a time. Each is applied to a temporary copy by mutants/run.py's own ``attempt`` and must make
its named tests fail. No unmutated baseline runs here: the suite itself runs the same tests unmutated.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from tests.test_mutants_list import MUTANTS, mutants_run

SUBSET = {
    "recall-cut-one-short": "cirlib/metrics/recall.py",  # metrics: R@K counts rank K
    "sweep-map-no-clamp": "cirlib/weimocir/",  # the fast α/β sweep's CIRCO mAP
    "moe-no-output-relu": "cirlib/fusion/moe.py",  # fusion: the MoE combiner
    "stage2-best-epoch-later-tie": "cirlib/train/stage2.py",  # stage-2 training: the best epoch
    "topk-block-unsorted": "cirlib/index/topk.py",  # index: block top-k with ties
}
TIMEOUT_S = 240.0


def test_the_subset_covers_the_critical_modules():
    chosen = {mutant.name: mutant.file for mutant in MUTANTS if mutant.name in SUBSET}
    assert chosen.keys() == SUBSET.keys(), f"not in mutants/mutants.yaml: {sorted(SUBSET.keys() - chosen.keys())}"
    assert all(chosen[name].startswith(where) for name, where in SUBSET.items()), chosen


def test_the_subset_of_mutants_is_killed():
    chosen = [mutant for mutant in MUTANTS if mutant.name in SUBSET]
    with ThreadPoolExecutor(2) as pool:
        outcomes = mutants_run.run_all(pool, chosen, TIMEOUT_S, baseline=False)
    survivors = [f"{o.name} ({o.status}, {o.seconds:.0f} s): {o.detail}" for o in outcomes if o.status != "killed"]
    assert not survivors, "mutants its tests did not catch (run `python mutants/run.py --only NAME`):\n" + \
        "\n".join(survivors)
