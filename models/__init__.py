"""The nets and data shipped with crfrnn-np, found through the package (so from any folder, installed or not).

* ``crfrnn_deploy.prototxt``: the CRF-RNN deploy net (FCN-8s + MultiStageMeanfield), written from the spec;
* ``demo.prototxt`` and ``demo/``: the ``crfrnn demo`` net, its 200 x 160 image, label and coarse scores.

``--model crfrnn_deploy`` (or ``Net("crfrnn_deploy")``) names a shipped net; :func:`resolve` turns such a name
into its file.
"""
import importlib.resources
import os

#: Name -> file of every shipped net.
NETS = {"crfrnn_deploy": "crfrnn_deploy.prototxt", "demo": "demo.prototxt"}


def path(*parts):
    """The file ``parts`` (e.g. ``"demo", "image.png"``) of the shipped models folder, as a string."""
    return os.fspath(importlib.resources.files(__name__).joinpath(*parts))


def resolve(model):
    """``model`` itself when it is a file (or not a name), else the shipped net of that name, or None.

    Parameters
    ----------
    model : str or os.PathLike
        A path, or the name of a shipped net (``crfrnn_deploy``, ``demo``; the ``.prototxt`` may be given).
    """
    text = os.fspath(model)
    if os.path.exists(text):
        return text
    name = text[:-len(".prototxt")] if text.endswith(".prototxt") else text
    if name in NETS:
        return path(NETS[name])
    return None


def read_net(model):
    """The upgraded ``NetParameter`` of a net file or a shipped net's name.

    Raises
    ------
    NetError
        When ``model`` is neither an existing file nor a shipped net.
    """
    from crfrnn_np import proto
    from crfrnn_np.errors import NetError
    found = resolve(model)
    if found is None:
        raise NetError("model file '%s' does not exist (nor is it a shipped net: %s)"
                       % (os.fspath(model), ", ".join(sorted(NETS))))
    return proto.read_net(found)
