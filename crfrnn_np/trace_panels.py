"""Pictures of a :class:`~crfrnn_np.trace.MeanfieldTrace` for a slide (``crfrnn trace --panels DIR``).

Written into DIR (PNG through matplotlib, the ``plots`` extra; every file atomically):

=====================  ===================================================================================
``overview.png``       the image, the unary's argmax, Q_T's argmax and the label (when given)
``q_argmax.png``       argmax of Q_t for t = 0..T (VOC colours)
``q_maxprob.png``      max_l Q_t(l) for t = 0..T: how sure each pixel is
``q_change.png``       Σ_l |Q_t(l) − Q_{t−1}(l)| for t = 1..T: where each iteration still changes things
``energy.png``         the free energy F(Q_t) against t, and its change per iteration (rises in red)
``grad_norm.png``      ‖∂ℓ/∂L_t‖ against t: the gradient reaching the unary through iteration t (with a label)
``trace.csv``          the per-iteration table (always, matplotlib or not)
=====================  ===================================================================================
"""
import csv
import io
import os

import numpy as np

from .atomic import atomic_path, write_bytes
from .image import colorize

NO_MATPLOTLIB = ("matplotlib is not installed (pip install 'crfrnn-np[plots]'): no pictures, the numbers are in "
                 "%s")


def write_csv(trace, path):
    """The per-iteration table as CSV: t, energy, delta_energy, mean_abs_dq, flips, grad_norm."""
    text = io.StringIO()
    writer = csv.writer(text)
    writer.writerow(["t", "energy", "delta_energy", "mean_abs_dq", "flips", "grad_norm"])
    for row in trace.rows():
        writer.writerow(["" if isinstance(v, float) and np.isnan(v) else v for v in row])
    write_bytes(path, text.getvalue().encode("utf-8"))
    return path


def _save(fig, path):
    import matplotlib.pyplot as plt
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    return path


def _grid(maps, titles, suptitle, **imshow):
    """A figure of small maps, at most six to a row, with one colour bar when ``imshow`` gives a colour map."""
    import matplotlib.pyplot as plt
    cols = min(6, len(maps))
    rows = (len(maps) + cols - 1) // cols
    h, w = maps[0].shape[:2]
    size = 2.2
    fig, axes = plt.subplots(rows, cols, figsize=(cols * size, rows * size * h / w + 0.6), squeeze=False)
    shown = None
    for ax in axes.ravel():
        ax.axis("off")
    for ax, image, title in zip(axes.ravel(), maps, titles):
        shown = ax.imshow(image, interpolation="nearest", **imshow)
        ax.set_title(title, fontsize=9)
    if "cmap" in imshow:
        fig.colorbar(shown, ax=axes.ravel().tolist(), shrink=0.8)
    fig.suptitle(suptitle, fontsize=11)
    return fig


def _axes(ax, t, ylabel, title):
    ax.set_xlabel("iteration t")
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.set_xticks(t)
    ax.grid(alpha=0.3)


def _plot(values, ylabel, title, log=False, start=0):
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(5.0, 3.2))
    t = np.arange(start, start + len(values))
    ax.plot(t, values, "o-", color="tab:blue")
    if log:
        ax.set_yscale("log")
    _axes(ax, t, ylabel, title)
    return fig


def _energy_figure(energy, guaranteed):
    """F(Q_t) against t, and its change ΔF_t = F(Q_t) − F(Q_{t−1}) on a symmetric log scale, where the small
    late rises (red) show."""
    import matplotlib.pyplot as plt
    energy = np.asarray(energy, np.float64)
    t = np.arange(len(energy))
    fig, (left, right) = plt.subplots(1, 2, figsize=(10.0, 3.2))
    fig.subplots_adjust(wspace=0.4)
    left.plot(t, energy, "o-", color="tab:blue")
    _axes(left, t, "F(Q_t)", "mean-field free energy%s" % ("" if guaranteed else " (decrease not guaranteed)"))
    delta = np.diff(energy)
    colours = ["tab:red" if d > 0 else "tab:blue" for d in delta]
    right.bar(t[1:], delta, color=colours)
    right.set_yscale("symlog", linthresh=max(1e-6, float(np.abs(delta).min()) if delta.size else 1.0))
    right.axhline(0.0, color="black", linewidth=0.8)
    _axes(right, t[1:], "F(Q_t) - F(Q_t-1)", "change per iteration (red: F rose)")
    return fig


def write_panels(trace, folder):
    """Write the pictures and ``trace.csv`` into ``folder``.

    Returns
    -------
    (list of str, str or None)
        The files written, and a note for the user when matplotlib is missing (then only the CSV).
    """
    os.makedirs(folder, exist_ok=True)
    written = [write_csv(trace, os.path.join(folder, "trace.csv"))]
    try:
        import matplotlib
        matplotlib.use("Agg")
    except ImportError:
        return written, NO_MATPLOTLIB % written[0]
    q = trace["Q"].astype(np.float64)
    T = trace.num_iterations
    h, w = trace.attrs.get("image_size", q.shape[2:])
    q = q[:, :, :h, :w]
    argmax = q.argmax(axis=1)
    path = lambda name: os.path.join(folder, name)                     # noqa: E731
    tiles = [trace["image"][:h, :w], colorize(trace["unary"][:, :h, :w].argmax(axis=0)), colorize(argmax[T])]
    titles = ["image", "unary argmax (FCN)", "Q_%d argmax (CRF-RNN)" % T]
    if "label" in trace:
        tiles.append(colorize(trace["label"][:h, :w]))
        titles.append("label (255: ignored)")
    written.append(_save(_grid(tiles, titles, "layer '%s', T = %d" % (trace.attrs["layer"], T)),
                         path("overview.png")))
    written.append(_save(_grid([colorize(a) for a in argmax], ["t = %d" % t for t in range(T + 1)],
                               "argmax Q_t"), path("q_argmax.png")))
    written.append(_save(_grid(list(q.max(axis=1)), ["t = %d" % t for t in range(T + 1)],
                               "max probability of Q_t", cmap="viridis", vmin=0.0, vmax=1.0), path("q_maxprob.png")))
    change = np.abs(np.diff(q, axis=0)).sum(axis=1)
    written.append(_save(_grid(list(change), ["|Q_%d - Q_%d|" % (t, t - 1) for t in range(1, T + 1)],
                               "change of Q per iteration (sum over classes)", cmap="magma", vmin=0.0,
                               vmax=max(float(change.max()), 1e-12)), path("q_change.png")))
    written.append(_save(_energy_figure(trace["energy"], trace.attrs["energy_decrease_guaranteed"]),
                         path("energy.png")))
    if "unary_grad_by_iteration" in trace:
        norms = [float(np.linalg.norm(g.astype(np.float64))) for g in trace["unary_grad_by_iteration"]]
        written.append(_save(_plot(norms, "||d loss / d L_t||", "gradient reaching the unary through iteration t",
                                   log=min(norms) > 0, start=1), path("grad_norm.png")))
    return written, None
