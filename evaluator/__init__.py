"""ctxeval's host-side evaluator: bundles, images, sandboxes, agents, episodes and runs."""

__version__ = "0.1.0"
