from __future__ import annotations

import pytest

from harness.plugin_manager import PluginHost
from tests.fakes import ToyPlugin

# The example plugin's own tests run against the installed plugin (tests/test_plugin_author.py runs them).
collect_ignore = ["example_plugin"]


@pytest.fixture
def toy_plugin() -> ToyPlugin:
    return ToyPlugin()


@pytest.fixture
def host(toy_plugin: ToyPlugin) -> PluginHost:
    """Built-in plugins plus the toy plugin; no third-party plugins from the environment."""
    host = PluginHost(env={"HARNESS_LOAD_PLUGINS": ""})
    host.register(toy_plugin, "toy-plugin")
    return host


@pytest.fixture(autouse=True)
def torch_engine_only(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Outside the tests marked `engines`, engine=auto finds torch alone, as on a machine without the extras.

    Measuring the engines exports each model several times, a minute for a model
    of any size; the engine tests measure it, every other test scores with torch.
    """
    if request.node.get_closest_marker("engines") is None:
        from harness.plugins.engines import choice as engine_choice

        monkeypatch.setattr(engine_choice, "AUTO_ENGINES", ())


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A test that starts the compiled log-probability server is `served`, whichever file it is in."""
    for item in items:
        if "llama_server" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.served)
