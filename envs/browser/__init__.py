"""Live-browser environments (Playwright + Chromium). Importing this module is light."""


def register_browser_envs() -> None:
    """Register webgrove/WebShopBrowser-v0, webgrove/Browser-v0 and webgrove/miniwob.<task>-v0."""
    # Filled in by the browser env work (issue 3).
    return None
