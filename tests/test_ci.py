"""CI reads its test command from README.md; a README edit must not silently break that."""

import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_ci_finds_the_readme_test_command():
    out = subprocess.run(
        ["bash", str(ROOT / ".ci" / "run"), "--print-test-command"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()
    assert "pytest" in out
    assert '-m "not slow and not gpu"' in out
    assert not out.startswith(" ")
