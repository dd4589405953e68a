"""Numba CPU kernels for the permutohedral lattice (being written; the NumPy reference stands in)."""
from .reference import ReferenceLattice as CpuLattice  # noqa: F401
