"""Hot numeric kernels (CPU path, GPU path where it pays)."""
from kernels.deferred_imports import defer_blas_check

defer_blas_check()  # numba's first compile without scipy.linalg's import (~0.3 s a process): deferred_imports.py
