"""Sandbox: the stand-in served on 127.0.0.1, in the running loop or on its own thread."""

from __future__ import annotations

from aiohttp import web

from ._app import make_app
from ._faults import parse_faults
from ._loop import ThreadedServer
from ._openai import API_ROOT
from ._state import OPENAI_APIS, SITES, RecordedRequest, SandboxSettings, State

__all__ = ["Sandbox"]


class Sandbox(ThreadedServer):
    """The sites on one port; ``base_url(site)`` is what a provider is given.

    ``async with Sandbox(port=0) as sb`` serves in the running loop;
    ``Sandbox().start_in_thread()`` serves from a daemon thread (then ``stop()``).
    """

    def __init__(
        self, settings: SandboxSettings | None = None, *, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        self.settings = settings or SandboxSettings()
        self.host = host
        self.port = port
        self.state = State(settings=self.settings)
        self.app = make_app(state=self.state)
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def base_url(self, site: str) -> str:
        """A provider's ``base_url``: a site's address, or for an OpenAI-compatible API its root.

        Besides ``openai``, the presets of local servers (``ollama``, ``llamacpp``, ``vllm``,
        ``lmstudio``) each have the same API under their own name, wanting no key.
        """
        if site in OPENAI_APIS:
            # OpenAI clients take the API root, version included (as for Ollama's /v1)
            return f"{self.url}/{site}{API_ROOT}"
        if site not in SITES:
            raise ValueError(f"No such site {site!r}. Sites: {', '.join(SITES)}.")
        return f"{self.url}/{site}"

    @property
    def sites(self) -> tuple[str, ...]:
        return SITES

    async def start(self) -> Sandbox:
        # A short shutdown timeout: a stalled answer must not hold up stop() for 30 s.
        runner = web.AppRunner(self.app, access_log=None, shutdown_timeout=0.5)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port)
        await site.start()
        self._runner = runner
        server = site._server  # the bound socket tells the port picked for port=0
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
        return self

    async def aclose(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    # --- control, safe from any thread ---

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request received so far (a copy)."""
        return self.state.snapshot()

    def clear(self) -> None:
        self.state.clear()

    def expire_tokens(self, site: str | None = None) -> None:
        """Invalidate every nonce issued so far (for one site or all)."""
        self.state.expire_tokens(site)

    def faults(self) -> list[tuple[str, tuple[str, ...], int]]:
        """The injected faults still waiting: (site, faults, chat requests left)."""
        return self.state.pending()

    def clear_faults(self) -> int:
        """Forget the injected faults still waiting (requests stay recorded); how many there were."""
        return self.state.clear_faults()

    def inject(self, site: str, *faults: str, times: int = 1) -> None:
        """Apply ``faults`` to the next ``times`` chat requests to ``site``."""
        if site not in SITES and site not in OPENAI_APIS:
            raise ValueError(f"No such site {site!r}. Sites: {', '.join(SITES)}.")
        parse_faults(",".join(faults))
        self.state.inject(site, tuple(faults), times)
