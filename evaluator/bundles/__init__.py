"""Task bundles: the manifest model, loading with validation, and the data stage."""
from .manifest import Bundle, Limits, Target, ToolSpec
from .loader import load_bundle

__all__ = ["Bundle", "Limits", "Target", "ToolSpec", "load_bundle"]
