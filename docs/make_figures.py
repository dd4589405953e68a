"""Write every picture of ``docs/walkthrough.md`` into ``docs/figures/`` (``make docs``).

Run from anywhere: ``python docs/make_figures.py``. It needs the package and matplotlib (the ``plots``
extra) and takes about half a minute once numba's kernels are compiled.

====================  ===========================================================================
file                  what
====================  ===========================================================================
demo_overview.png     ``crfrnn trace --panels`` on the demo: image, unary argmax, Q_T argmax, label
demo_energy.png       the same trace: F(Q_t) and its change per iteration
demo_grad_norm.png    the same trace: ‖∂ℓ/∂L_t‖ against t
grad_maps.png         Σ_l |∂ℓ/∂L_t(l)| per pixel for a few t, from the same trace
lattice_toy.png       the walkthrough's 12-point lattice: points, simplices, blur graph
lattice_kernel.png    its exact Gaussian, lattice K and K − Kᵀ; one row of K on a 41 x 41 grid
parameters.png        the demo's CRF-RNN labels for some of section 5's parameter settings
====================  ===========================================================================

Every PNG is quantised to a palette (small files) and written atomically (temporary name, then rename).
"""
import os
import shutil
import sys
import tempfile

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIGURES = os.path.join(ROOT, "docs", "figures")
DEMO = {"model": os.path.join(ROOT, "models", "demo.prototxt"),
        "image": os.path.join(ROOT, "models", "demo", "image.png"),
        "coarse": os.path.join(ROOT, "models", "demo", "coarse_unary.npy"),
        "label": os.path.join(ROOT, "models", "demo", "mask.png")}


def write_png(source, name, colours=96):
    """Copy a PNG (a path, or a matplotlib figure) into docs/figures/name as a palette PNG, atomically."""
    from PIL import Image
    target = os.path.join(FIGURES, name)
    scratch = tempfile.mkdtemp(dir=FIGURES)
    try:
        if not isinstance(source, str):
            import matplotlib.pyplot as plt
            path = os.path.join(scratch, "figure.png")
            source.savefig(path, dpi=100, bbox_inches="tight")
            plt.close(source)
            source = path
        image = Image.open(source).convert("RGB").quantize(colors=colours, method=Image.Quantize.MEDIANCUT)
        tmp = os.path.join(scratch, name)
        image.save(tmp, optimize=True)
        os.replace(tmp, target)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    print("wrote %s (%.0f KB)" % (os.path.relpath(target, ROOT), os.path.getsize(target) / 1024))
    return target


def demo_trace(workdir):
    """``crfrnn trace`` on the demo with panels; returns the MeanfieldTrace."""
    from crfrnn_np.tools.main import main
    from crfrnn_np.trace import MeanfieldTrace
    output = os.path.join(workdir, "demo_trace.h5")
    panels = os.path.join(workdir, "panels")
    rc = main(["trace", "--model", DEMO["model"], "--image", DEMO["image"], "--input", "coarse=" + DEMO["coarse"],
               "--label", DEMO["label"], "--output", output, "--panels", panels])
    if rc != 0:
        raise SystemExit("crfrnn trace failed")
    for panel, name in (("overview.png", "demo_overview.png"), ("energy.png", "demo_energy.png"),
                        ("grad_norm.png", "demo_grad_norm.png")):
        write_png(os.path.join(panels, panel), name)
    return MeanfieldTrace.read_hdf5(output)


def grad_maps(trace):
    import matplotlib.pyplot as plt
    from matplotlib.colors import LogNorm
    grads = np.abs(trace["unary_grad_by_iteration"].astype(np.float64)).sum(axis=1)     # (T, H, W)
    h, w = trace.attrs.get("image_size", grads.shape[1:])
    T = grads.shape[0]
    steps = [1, 4, 7, 10]
    top = grads.max()
    fig, axes = plt.subplots(1, len(steps), figsize=(3.2 * len(steps), 3.0))
    for ax, t in zip(axes, steps):
        shown = ax.imshow(np.maximum(grads[t - 1, :h, :w], top * 1e-6), cmap="magma",
                          norm=LogNorm(vmin=top * 1e-6, vmax=top), interpolation="nearest")
        ax.set_title("t = %d: |G_t| = %.1e" % (t, np.linalg.norm(trace["unary_grad_by_iteration"][t - 1])),
                     fontsize=9)
        ax.axis("off")
    fig.suptitle("sum over classes of |dloss/dL_t| per pixel (one log scale for all maps)", fontsize=10)
    fig.colorbar(shown, ax=axes.tolist(), shrink=0.8)
    write_png(fig, "grad_maps.png")


def toy_points():
    """The walkthrough's toy (section 2): 12 points, d = 2, the same seed."""
    rng = np.random.default_rng(7)
    return rng.uniform(0.0, 3.0, (12, 2)).astype(np.float32)


def lattice_toy():
    import matplotlib.pyplot as plt
    from crfrnn_np.lattice import reference as ref
    f = toy_points()
    n, d = f.shape
    e = ref.embed(f).astype(np.float64)
    keys, weights = ref.enclosing_simplex(e.astype(np.float32))
    lattice = ref.build(f)
    vertex, neighbours = lattice["vertex"], lattice["neighbours"]
    # an orthonormal basis of the plane x0 + x1 + x2 = 0
    basis = np.array([[1.0, -1.0, 0.0], [1.0, 1.0, -2.0]]) / np.sqrt([[2.0], [6.0]])
    full = lambda key: np.append(key, -np.sum(key)).astype(np.float64)                 # noqa: E731
    table = {}
    for i in range(n):
        for r in range(d + 1):
            table[int(vertex[i, r])] = full(keys[i, r])
    vertices = np.array([table[v] for v in range(len(table))]) @ basis.T
    points = e @ basis.T
    fig, (left, right) = plt.subplots(1, 2, figsize=(10.5, 4.6), gridspec_kw={"width_ratios": [1.35, 1]})
    for j in range(d + 1):                                      # the blur graph: one colour per lattice axis
        for v in range(neighbours.shape[1]):
            u = neighbours[j, v, 1]
            if u >= 0:
                left.plot(*zip(vertices[v], vertices[u]), color="C%d" % (j + 2), linewidth=2.5, alpha=0.35,
                          label="blur axis %d" % j if v == np.flatnonzero(neighbours[j, :, 1] >= 0)[0] else None)
    for i in range(n):
        corners = np.array([table[int(vertex[i, r])] for r in range(d + 1)]) @ basis.T
        left.fill(corners[:, 0], corners[:, 1], color="0.85", alpha=0.35, zorder=0)
        for r in range(d + 1):
            left.plot(*zip(points[i], corners[r]), color="C0", linewidth=0.5 + 4.0 * weights[i, r])
    left.plot(vertices[:, 0], vertices[:, 1], "s", color="C3", markersize=6, label="lattice vertices (M = %d)"
              % len(vertices))
    left.plot(points[:, 0], points[:, 1], "o", color="C0", markersize=5, label="points (N = %d)" % n)
    for i in range(n):
        left.annotate(str(i), points[i], textcoords="offset points", xytext=(4, 3), fontsize=8, color="C0")
    left.set_aspect("equal")
    left.set_title("the lattice plane x0 + x1 + x2 = 0\nsplat weights (line width), simplices, blur graph",
                   fontsize=9)
    left.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.02), ncol=3, frameon=False)
    left.set_xticks([])
    left.set_yticks([])
    right.plot(f[:, 0], f[:, 1], "o", color="C0")
    for i in range(n):
        right.annotate(str(i), f[i], textcoords="offset points", xytext=(4, 3), fontsize=8, color="C0")
    right.set_aspect("equal")
    right.set_xlabel("feature 0")
    right.set_ylabel("feature 1")
    right.set_title("the same points in feature space", fontsize=9)
    right.grid(alpha=0.3)
    write_png(fig, "lattice_toy.png")


def lattice_kernel():
    import matplotlib.pyplot as plt
    from crfrnn_np.lattice import PermutohedralLattice, spatial_features
    f = toy_points().astype(np.float32)
    n = len(f)
    lattice = PermutohedralLattice(f, backend="reference")
    K = np.stack([lattice.filter(col) for col in np.eye(n)], axis=1)
    G = np.exp(-0.5 * ((f[:, None, :].astype(np.float64) - f[None, :, :]) ** 2).sum(-1))
    fig = plt.figure(figsize=(11, 6.6))
    grid = fig.add_gridspec(2, 3, height_ratios=[1, 0.85], hspace=0.35)
    for k, (matrix, title, cmap, limits) in enumerate((
            (G, "exact Gaussian G", "viridis", (0, 1)), (K, "lattice K (columns K e_j)", "viridis", (0, 1)),
            (K - K.T, "K - K^T (max %.2f)" % np.abs(K - K.T).max(), "RdBu_r", (-0.16, 0.16)))):
        ax = fig.add_subplot(grid[0, k])
        shown = ax.imshow(matrix, cmap=cmap, vmin=limits[0], vmax=limits[1], interpolation="nearest")
        ax.set_title(title, fontsize=10)
        ax.set_xticks(range(0, n, 2))
        ax.set_yticks(range(0, n, 2))
        fig.colorbar(shown, ax=ax, shrink=0.8)
    size, theta = 41, 3.0
    grid_lattice = PermutohedralLattice(spatial_features(size, size, theta))
    centre = np.zeros(size * size)
    centre[20 * size + 20] = 1.0
    row = grid_lattice.filter(centre, reverse=True).reshape(size, size)
    yy, xx = np.mgrid[:size, :size]
    exact = np.exp(-((xx - 20) ** 2 + (yy - 20) ** 2) / (2 * theta ** 2))
    ax = fig.add_subplot(grid[1, :])
    ax.plot(np.arange(size) - 20, row[20] / row.sum(), "o-", label="lattice: row of K through the centre pixel")
    ax.plot(np.arange(size) - 20, exact[20] / exact.sum(), "s--", label="exact Gaussian, theta_gamma = 3")
    ax.set_xlim(-12, 12)
    ax.set_xlabel("x - x_centre (pixels), y = y_centre")
    ax.set_ylabel("weight (normalised to sum 1)")
    ax.set_title("41 x 41 image, spatial kernel", fontsize=10)
    ax.legend(fontsize=9)
    ax.grid(alpha=0.3)
    write_png(fig, "lattice_kernel.png")


def parameters():
    import matplotlib.pyplot as plt
    from crfrnn_np import Net, image, proto
    rgb = image.load_image(DEMO["image"])
    data = image.preprocess(rgb)
    coarse = np.load(DEMO["coarse"])[None]

    def labels(fields=(), matrices=None):
        param = proto.read_net(DEMO["model"])
        crf = [lp for lp in param.layer if lp.type == "MultiStageMeanfield"][0]
        for name, value in fields:
            setattr(crf.multi_stage_meanfield_param, name, value)
        net = Net(param)
        if matrices:
            for k, value in matrices.items():
                net.layer_dict[crf.name].blobs[k].data[0, 0] = value
        pred = net.forward(coarse=coarse, data=data)["pred"][0]
        return net.blobs["unary"].data[0].argmax(axis=0), pred.argmax(axis=0)

    I21 = np.eye(21)
    unary, default = labels()
    settings = [("unary argmax (no CRF)", unary), ("defaults", default),
                ("W_b = 0", labels(matrices={1: 0 * I21})[1]), ("W_s = 30 I", labels(matrices={0: 30 * I21})[1]),
                ("theta_beta = 200", labels([("theta_beta", 200)])[1]),
                ("theta_gamma = 30", labels([("theta_gamma", 30)])[1]),
                ("mu = +I, T = 10", labels(matrices={2: I21})[1]),
                ("mu = +I, T = 9", labels([("num_iterations", 9)], {2: I21})[1])]
    fig, axes = plt.subplots(2, 4, figsize=(11, 4.9))
    for ax, (title, lab) in zip(axes.ravel(), settings):
        ax.imshow(image.colorize(lab), interpolation="nearest")
        ax.set_title(title, fontsize=10)
        ax.axis("off")
    fig.suptitle("the demo's CRF-RNN labels for some parameter settings (section 5)", fontsize=11)
    write_png(fig, "parameters.png", colours=32)


def main():
    import matplotlib
    matplotlib.use("Agg")
    os.makedirs(FIGURES, exist_ok=True)
    workdir = tempfile.mkdtemp()
    try:
        trace = demo_trace(workdir)
        grad_maps(trace)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    lattice_toy()
    lattice_kernel()
    parameters()
    return 0


if __name__ == "__main__":
    sys.exit(main())
