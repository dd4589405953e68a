"""Every tuning constant of the project, in one place, with what it trades.

None of these changes a result (outputs are identical for any value); they move time and memory around.

CPU kernels (numba range kernels run by :func:`crfrnn_np.threads.parallel_for`)
--------------------------------------------------------------------------------
``PARALLEL_MIN_WORK``
    Elements a thread gets at least in im2col/col2im and pooling: below it a problem stays on one thread,
    since waking a thread (~50 µs) would cost more than it saves.
``CPU_BLOCK``
    Vertices (blur), pixels (slice, the FUSED backward pass) or vertex rows (the FUSED products) per work item:
    large enough that a block's loop dwarfs its bookkeeping, small enough to balance two threads.
``SOFTMAX_BLOCK``
    Pixels per block of the FUSED pixel passes. Their (pixels x C) scratch stays small (10.5 KiB in float32
    for 21 classes): scratch above glibc's mmap threshold (128 KiB) is mapped and unmapped on every
    allocation, and 2048-pixel blocks cost 100 000 page faults (0.3 s) per 500 x 500 forward.
``CPU_MIN_CHUNK``
    Points per block of the lattice embedding (each block also keeps its coordinate bounds).
``CPU_NUMBER_MIN_CHUNK``
    Fewest points per chunk of the lattice's vertex numbering. Numbering in chunks on several threads needs
    a merge and a remap pass, two more kernels to compile on a first run, and gains only on large images (a
    500 x 500 bilateral lattice: 65 against 35 ms); smaller lattices are numbered in one pass.

NumPy and BLAS work
-------------------
``SOFTMAX_NUMPY_BLOCK``
    Elements (classes x positions) per block of the Softmax layer's NumPy passes: the passes of one block
    stay in the cache, and no temporary of the full size is made.
``WEIGHT_DIFF_BLOCK``
    Pixels per block of the Compatibility weight gradient: a C' x C product over a very long inner dimension
    runs far slower in one multi-threaded GEMM call than as a sum of small cache-resident ones.
``COL_BUFFER_BYTES``
    Upper bound of a convolution's im2col buffer: bands of output rows keep it below (a 64-channel 3 x 3
    convolution of a 698 x 698 map would otherwise need 1.1 GB), at the price of more, smaller GEMMs.

Caches
------
``BILATERAL_LATTICES``
    Bilateral lattices a net keeps (least recently used dropped first; raised to the batch size so that a
    forward's lattices survive until its backward). Each is about 30 MB at 500 x 500.
``SPATIAL_LATTICES``
    Spatial lattices (one per image size and bandwidth) a net keeps.

CUDA
----
``THREADS_PER_BLOCK``
    CUDA block size of every kernel (1-D grids of ``ceil(work / THREADS_PER_BLOCK)`` blocks, one thread per
    output element, point, vertex or pixel; a launch with less work gets a smaller block of whole warps).
``GEMM_TILE``
    Side of the square tiles of the device GEMMs (InnerProduct, and Convolution/Deconvolution as implicit
    GEMMs): a block of ``GEMM_TILE`` x ``GEMM_TILE`` threads, one output element each, with one tile of each
    operand in shared memory (2 x 16 x 16 x 8 bytes = 4 KiB in float64). Larger tiles reuse each loaded
    value more but leave fewer blocks per multiprocessor; 16 is the usual choice for a plain tiled kernel.
``MAX_DIM``
    Largest feature dimension d of the CUDA lattice: per-thread scratch (``cuda.local.array``) needs a
    compile-time size. The CPU and reference lattices have no limit.
``SCAN_CHUNK``
    Values one thread adds up in the device prefix sum of the CUDA lattice build (numbering the vertices and
    the gather offsets): the sums of N (d+1) entries take about N (d+1) / SCAN_CHUNK threads, then a scan of
    the chunk sums, recursively.

Data sets (``crfrnn segment --images``)
---------------------------------------
``DASK_CONNECT_TIMEOUT``
    Seconds ``--scheduler`` waits for the scheduler to answer, and then for a first worker, before it gives
    up with an error: long enough for a busy scheduler, short enough that a wrong address fails fast.
"""
PARALLEL_MIN_WORK = 1 << 16
CPU_BLOCK = 2048
SOFTMAX_BLOCK = 128
CPU_MIN_CHUNK = 4096
CPU_NUMBER_MIN_CHUNK = 65536

SOFTMAX_NUMPY_BLOCK = 1 << 17
WEIGHT_DIFF_BLOCK = 1024
COL_BUFFER_BYTES = 64 * 2**20

BILATERAL_LATTICES = 4
SPATIAL_LATTICES = 2

THREADS_PER_BLOCK = 128
GEMM_TILE = 16
MAX_DIM = 16
SCAN_CHUNK = 64

DASK_CONNECT_TIMEOUT = 5
