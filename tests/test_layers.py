"""The package's layering contract (`.importlinter`): every import points down the layers, none up or sideways.

import-linter reads every module's imports (function-local and `TYPE_CHECKING` ones included), so a cycle cannot
hide behind either. The contract itself says what each layer is for.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_every_import_points_down_the_layers():
    lint = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run([str(lint), str(ROOT / ".importlinter"), "--no-cache", "--no-logo"], cwd=ROOT,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    assert "1 kept, 0 broken" in result.stdout
