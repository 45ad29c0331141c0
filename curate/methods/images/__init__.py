"""Image checks: the `image_info` stage (does the image decode, and what is it) and the `image_size` policy."""
from curate.methods.images.policy import ImageSize
from curate.methods.images.stage import ImageInfo

__all__ = ["ImageInfo", "ImageSize"]
