"""Launching headless Chromium through Playwright, and relaunching it when it dies.

Playwright's sync API allows one driver per thread, so the driver is shared by the
`Chromium` objects of a thread (reference-counted, stopped with its last user).
Each `Chromium` is one browser process; each env takes its own context in one.
Nothing starts at import time.
"""
from __future__ import annotations

import os
import signal
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

if TYPE_CHECKING:
    from playwright.sync_api import Browser, BrowserContext, Playwright

LAUNCH_ARGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
)
DEBIAN_CHROMIUM = "/usr/bin/chromium"
INSTALL_HINT = (
    "Install a browser with `apt-get install chromium` (Debian/Ubuntu) or "
    "`python -m playwright install chromium`, or point WEBGROVE_CHROMIUM at a Chromium "
    "or Chrome executable."
)


class BrowserLaunchError(RuntimeError):
    """Chromium could not be found or started."""


def _import_sync_playwright() -> Any:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as e:  # pragma: no cover - depends on the installed extras
        raise ImportError(
            "browser envs need Playwright: pip install 'webgrove[browser]'") from e
    return sync_playwright


class _Driver:
    """This thread's Playwright driver and how many Chromium objects use it."""

    def __init__(self) -> None:
        sync_playwright = _import_sync_playwright()
        try:
            self.playwright: Playwright = sync_playwright().start()
        except Exception as e:
            raise BrowserLaunchError(
                f"could not start the Playwright driver ({e}). Browser envs use Playwright's "
                "sync API, which cannot run inside an asyncio event loop: create the env in "
                "a plain thread or process.") from e
        self.users = 0
        self.pid = os.getpid()


_drivers = threading.local()


def _acquire_playwright() -> Playwright:
    driver = getattr(_drivers, "driver", None)
    if driver is not None and driver.pid != os.getpid():
        driver = None  # inherited through fork: the driver belongs to the parent
    if driver is None:
        driver = _drivers.driver = _Driver()
    driver.users += 1
    return driver.playwright


def _replace_dead_driver(dead: Playwright) -> Playwright:
    """A new driver for this thread when `dead`'s process has gone (killed, crashed).

    Other `Chromium` objects still holding `dead` get the new one the same way.
    """
    driver = getattr(_drivers, "driver", None)
    if driver is not None and driver.playwright is dead:
        _drivers.driver = None
        try:
            dead.stop()
        except Exception:
            pass  # its connection is closed: only the event loop is left to close
    return _acquire_playwright()


def _driver_gone(e: Exception) -> bool:
    """Whether a Playwright call failed because the driver process is gone."""
    return "connection closed" in str(e).lower()


def _release_playwright() -> None:
    driver = getattr(_drivers, "driver", None)
    if driver is None or driver.pid != os.getpid():
        return
    driver.users -= 1
    if driver.users <= 0:
        _drivers.driver = None
        try:
            driver.playwright.stop()
        except Exception:
            pass  # the driver process is already gone


def chromium_executable(playwright: Playwright | None = None) -> str | None:
    """The Chromium to launch: WEBGROVE_CHROMIUM, else Playwright's own, else Debian's.

    Returns None when Playwright's own downloaded browser should be used.
    Raises BrowserLaunchError (with install instructions) when there is none.
    """
    configured = os.environ.get("WEBGROVE_CHROMIUM")
    if configured:
        if not Path(configured).is_file():
            raise BrowserLaunchError(f"WEBGROVE_CHROMIUM={configured} does not exist. {INSTALL_HINT}")
        return configured
    if playwright is not None:
        try:
            if Path(playwright.chromium.executable_path).is_file():
                return None
        except Exception:
            pass
    if Path(DEBIAN_CHROMIUM).is_file():
        return DEBIAN_CHROMIUM
    raise BrowserLaunchError(f"no Chromium found. {INSTALL_HINT}")


class Chromium:
    """One headless Chromium process; hands out browser contexts.

    If the process has died (crash, kill, watchdog), the next `new_context` launches
    a new one; if the Playwright driver has died too, a new driver first. `close()` is safe to call twice; a `Chromium` is a context manager.
    Like all Playwright sync objects it must be used from the thread that made it.

    Args:
        headless: run without a window.
        executable: a Chromium executable; default `chromium_executable()`.
        extra_args: command-line flags added to LAUNCH_ARGS.
    """

    def __init__(self, headless: bool = True, executable: str | None = None,
                 extra_args: tuple[str, ...] = ()) -> None:
        self.headless = headless
        self.executable = executable
        self.extra_args = tuple(extra_args)
        self.launches = 0
        self._playwright: Playwright | None = None
        self._browser: Browser | None = None
        self._pid: int | None = None
        self._closed = False

    # -- lifecycle ---------------------------------------------------------------------

    def _launch(self) -> None:
        if self._playwright is None:
            self._playwright = _acquire_playwright()
        executable = self.executable or chromium_executable(self._playwright)
        try:
            try:
                browser = self._launch_browser(executable)
            except Exception as e:
                if not _driver_gone(e):
                    raise
                self._playwright = _replace_dead_driver(self._playwright)
                browser = self._launch_browser(executable)
        except Exception as e:
            raise BrowserLaunchError(
                f"could not launch Chromium ({executable or 'Playwright default'}): "
                f"{str(e).splitlines()[0]}. {INSTALL_HINT}") from e
        self._browser = browser
        self._pid = _browser_pid(browser)
        self.launches += 1

    def _launch_browser(self, executable: str | None) -> Browser:
        return self._playwright.chromium.launch(
            executable_path=executable, headless=self.headless, args=[*LAUNCH_ARGS, *self.extra_args])

    def new_context(self, **options: Any) -> BrowserContext:
        """A fresh browser context (own cookies, storage and history); Playwright's options."""
        if self._closed:
            raise RuntimeError("this Chromium is closed")
        if self._browser is None or not self._browser.is_connected():
            self._discard_browser()
            self._launch()
        try:
            return self._browser.new_context(**options)
        except Exception:
            # Died after our last look (is_connected lags a kill): relaunch once.
            self._discard_browser()
            self._launch()
            return self._browser.new_context(**options)

    @property
    def connected(self) -> bool:
        """Whether the browser process is up, as far as Playwright knows."""
        return self._browser is not None and self._browser.is_connected()

    @property
    def pid(self) -> int | None:
        """The browser process id, or None before the first launch."""
        return self._pid

    def kill(self) -> None:
        """SIGKILL the browser process (tests, watchdog). Safe from any thread."""
        pid = self._pid
        if pid is not None and _is_browser_process(pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass

    @contextmanager
    def watchdog(self, seconds: float) -> Iterator[threading.Event]:
        """Kill the browser if the block runs longer than `seconds`.

        A hung page (say, an endless script) blocks Playwright calls that take no
        timeout; killing the process makes them fail at once. Yields an Event that
        is set if the watchdog fired.
        """
        fired = threading.Event()

        def fire() -> None:
            fired.set()
            self.kill()

        timer = threading.Timer(seconds, fire)
        timer.daemon = True
        timer.start()
        try:
            yield fired
        finally:
            timer.cancel()

    def _discard_browser(self) -> None:
        browser, self._browser = self._browser, None
        if browser is not None:
            try:
                browser.close()
            except Exception:
                self.kill()  # half-dead: make sure the process is gone
        self._pid = None

    def close(self) -> None:
        """Close the browser and release the driver. Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        self._discard_browser()
        if self._playwright is not None:
            self._playwright = None
            _release_playwright()

    def __deepcopy__(self, memo: dict) -> Chromium:
        # A handle on a running process: copies (e.g. of an env spec's kwargs, as
        # Gymnasium's check_env makes) share it.
        return self

    def __enter__(self) -> Chromium:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _browser_pid(browser: Browser) -> int | None:
    """The browser process id, read over CDP (Playwright does not expose it)."""
    try:
        session = browser.new_browser_cdp_session()
        try:
            info = session.send("SystemInfo.getProcessInfo")
        finally:
            session.detach()
    except Exception:
        return None
    for proc in info.get("processInfo", []):
        if proc.get("type") == "browser":
            return int(proc["id"])
    return None


def _is_browser_process(pid: int) -> bool:
    """Whether pid still names a Chromium process (guards against a reused pid)."""
    if not Path("/proc/self").exists():
        return True  # no procfs (macOS): trust the pid
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return b"chrom" in cmdline.lower()
