"""End-to-end applications: the demo (the README's main job) and its failure report."""

from cirlib.util.lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    "cirlib.apps.demo": ["DEMO_DATASETS", "DemoConfig", "run_demo"],
    "cirlib.apps.failure_report": ["demo_outcomes"],
})
