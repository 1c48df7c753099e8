"""The README's first example runs and learns."""
import os
import re
import runpy

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_quickstart_trains(capsys):
    runpy.run_path(os.path.join(ROOT, "examples", "quickstart.py"), run_name="__main__")
    printed = capsys.readouterr().out
    accuracies = [float(a) for a in re.findall(r"validation accuracy ([0-9.]+)", printed)]
    assert len(accuracies) == 5 and accuracies[-1] > 0.8, printed
