"""trace_panels: the per-iteration CSV (written atomically; the pictures are checked through ``crfrnn trace
--panels`` in tests/tools/test_trace.py)."""
import csv

import numpy as np

from crfrnn_np.trace import MeanfieldTrace
from crfrnn_np.trace_panels import write_csv


def test_csv_rows(tmp_path):
    q = np.zeros((3, 2, 1, 1))
    q[:, 0] = [[[0.8]], [[0.3]], [[0.2]]]
    q[:, 1] = 1 - q[:, 0]
    trace = MeanfieldTrace({"Q": q, "energy": np.array([-2.0, -3.0, -3.5])}, {"T": 2})
    path = tmp_path / "t.csv"
    assert write_csv(trace, str(path)) == str(path)
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["t", "energy", "delta_energy", "mean_abs_dq", "flips", "grad_norm"]
    assert rows[1] == ["0", "-2.0", "", "", "0", ""]                  # nothing before t = 0; no gradients
    t, energy, delta, change, flips, norm = rows[2]
    assert (t, float(energy), float(delta), flips, norm) == ("1", -3.0, -1.0, "1", "")
    assert float(change) == np.float64(0.5)
    assert rows[3][:2] == ["2", "-3.5"] and rows[3][4] == "0"
    assert [p.name for p in tmp_path.iterdir()] == ["t.csv"]
