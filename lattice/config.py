"""Launch settings and limits of the lattice kernels, in one place.

``THREADS_PER_BLOCK``
    CUDA block size of every lattice kernel (one thread per point, per vertex x channel or per
    channel x pixel; 1-D grids of ``ceil(work / THREADS_PER_BLOCK)`` blocks).
``MAX_DIM``
    Largest feature dimension d of the CUDA backend: per-thread scratch (``cuda.local.array``) needs a
    compile-time size. The CPU and reference backends have no limit.
``CPU_MIN_CHUNK``
    Fewest points per chunk of the parallel CPU build (smaller lattices are built by one thread).
``CPU_BLOCK``
    Vertices (blur) or pixels (slice) per work item of the parallel CPU filter loops.
``CPU_NUMBER_MIN_CHUNK``
    Fewest points per chunk of the CPU build's vertex numbering. Numbering in chunks on several threads
    needs a merge and a remap pass, two more kernels to compile on a first run, and gains only on large
    images (a 500 x 500 bilateral lattice: 65 against 35 ms); smaller lattices are numbered in one pass.
"""
THREADS_PER_BLOCK = 128
MAX_DIM = 16
CPU_MIN_CHUNK = 4096
CPU_BLOCK = 2048
CPU_NUMBER_MIN_CHUNK = 65536
