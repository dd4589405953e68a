"""The crfrnn_np.layers package: importing it registers every layer a module of the folder defines."""
import pathlib
import re

import crfrnn_np.layers as layers
from crfrnn_np.layer import layer_class, layer_types


def test_every_layer_module_is_registered():
    folder = pathlib.Path(layers.__file__).parent
    declared = {}
    for path in folder.glob("*.py"):
        for name in re.findall(r'^@register_layer\("(\w+)"\)', path.read_text(), re.M):
            declared[name] = path.stem
    assert len(declared) == 24
    assert set(declared) <= set(layer_types())
    for name, module in declared.items():
        assert layer_class(name).__module__ == "crfrnn_np.layers." + module
