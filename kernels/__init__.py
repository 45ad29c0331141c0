"""Hot numeric kernels (CPU path, GPU path where it pays)."""
