"""Real-browser tests: the ``browser`` marker, registered here so ``-W error`` accepts it."""

from __future__ import annotations

import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "browser: drives JupyterLab in headless Chromium (needs .ci/browser-setup.sh)"
    )
