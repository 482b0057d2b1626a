"""Images tagged by a hash of their inputs: the base image (registry or offline) and bundle images."""
from .builder import ImageBuilder, ImageRef

__all__ = ["ImageBuilder", "ImageRef"]
