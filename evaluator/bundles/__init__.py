"""Task bundles: the manifest model, loading with validation, finding them by id, and the data stage."""
from .manifest import MANIFEST_NAME, Bundle, Limits, Target, ToolSpec
from .loader import load_bundle
from .registry import BundleRegistry, UnknownBundle, bundle_registry

__all__ = ["MANIFEST_NAME", "Bundle", "BundleRegistry", "Limits", "Target", "ToolSpec", "UnknownBundle",
           "bundle_registry", "load_bundle"]
