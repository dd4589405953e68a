"""``crfrnn demo``: the CRF improves the demo's mean IoU and the panel is written."""
from PIL import Image

from crfrnn_np.tools.main import main


def test_demo_improves_iou(tmp_path, capsys):
    out = tmp_path / "demo_panel.png"
    assert main(["demo", "--output", str(out), "--iterations", "5"]) == 0
    lines = capsys.readouterr().out.splitlines()
    before = float(lines[0].split()[-1])
    after = float(lines[1].split()[-1])
    assert after > before + 0.05
    with Image.open(out) as panel:
        assert panel.size == (3 * 200 + 2 * 4, 160)
    assert out.with_name("demo_panel_labels.png").exists()
