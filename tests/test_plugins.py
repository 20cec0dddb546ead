"""Plugin loading through real entry-point metadata: isolation, strict mode, allow-list, collisions."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest

from harness import hookspecs
from harness.errors import CollisionError, UnknownNameError
from harness.plugin_manager import BUILTIN_PLUGINS, PluginHost, PluginLoadError

ROOT = Path(__file__).resolve().parent.parent


def install_fake_distribution(site: Path, dist: str, module: str, source: str, version: str = "1.0") -> None:
    """A real installed distribution (dist-info with entry points) in a directory on sys.path."""
    (site / f"{module}.py").write_text(textwrap.dedent(source))
    info = site / f"{dist.replace('-', '_')}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
    (info / "entry_points.txt").write_text(f"[harness]\n{dist} = {module}\n")


GOOD = """
    from harness.hookspecs import hookimpl

    @hookimpl
    def register_models(register):
        register("fake-good", lambda arg, ctx: None, description="a good plugin's model")
"""
BROKEN_IMPORT = """
    raise ImportError("missing dependency: somelib")
"""
BROKEN_REGISTER = """
    from harness.hookspecs import hookimpl

    @hookimpl
    def register_models(register):
        register("half-registered", lambda arg, ctx: None)
        raise RuntimeError("registration exploded")
"""
COLLIDING = """
    from harness.hookspecs import hookimpl

    @hookimpl
    def register_models(register):
        register("minilm", lambda arg, ctx: None)
"""


@pytest.fixture
def site(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


def test_third_party_plugin_is_loaded_with_its_distribution_and_version(site):
    install_fake_distribution(site, "fake-good", "fake_good_mod", GOOD, version="2.3")
    host = PluginHost(env={})
    info = host.plugins["fake-good"]
    assert info.source == "fake-good 2.3" and info.hooks == ["register_models"] and not info.errors
    assert host.registries.models.get("fake-good").plugin == "fake-good"


def test_builtins_are_registered_like_third_party_plugins():
    host = PluginHost(env={"HARNESS_LOAD_PLUGINS": ""})
    for name in BUILTIN_PLUGINS:
        assert host.plugins[name].source == "built-in"
    assert host.registries.routers.get("confidence").plugin == "harness.plugins.routing.routers"
    assert host.registries.backends.get("cpu").plugin == "harness.plugins.backends.torch_devices"


def test_plugin_failing_on_import_is_reported_and_skipped(site):
    install_fake_distribution(site, "fake-broken", "fake_broken_mod", BROKEN_IMPORT)
    install_fake_distribution(site, "fake-good", "fake_good_mod", GOOD)
    with pytest.warns(UserWarning, match="fake-broken"):
        host = PluginHost(env={})
    assert "missing dependency: somelib" in host.plugins["fake-broken"].errors[0]
    assert "fake-good" in host.registries.models


def test_plugin_failing_in_registration_is_reported_and_none_of_its_names_registered(site):
    install_fake_distribution(site, "fake-halfway", "fake_halfway_mod", BROKEN_REGISTER)
    host = PluginHost(env={})
    with pytest.warns(UserWarning, match="registration exploded"):
        registries = host.registries
    assert "half-registered" not in registries.models
    assert "register_models" in host.plugins["fake-halfway"].errors[0]
    assert "minilm" in registries.models


def test_strict_mode_makes_a_broken_plugin_fatal(site):
    install_fake_distribution(site, "fake-broken", "fake_broken_mod", BROKEN_IMPORT)
    with pytest.raises(PluginLoadError, match="fake-broken"):
        PluginHost(env={"HARNESS_STRICT_PLUGINS": "1"})


def test_allow_list_loads_only_the_named_third_party_plugins(site):
    install_fake_distribution(site, "fake-good", "fake_good_mod", GOOD)
    install_fake_distribution(site, "fake-broken", "fake_broken_mod", BROKEN_IMPORT)
    only_good = PluginHost(env={"HARNESS_LOAD_PLUGINS": "fake-good"})
    assert "fake-good" in only_good.plugins and "fake-broken" not in only_good.plugins
    builtins_only = PluginHost(env={"HARNESS_LOAD_PLUGINS": ""})
    assert not {"fake-good", "fake-broken"} & set(builtins_only.plugins)
    assert "minilm" in builtins_only.registries.models


def test_two_plugins_registering_one_name_is_an_error_naming_both(site):
    install_fake_distribution(site, "fake-collider", "fake_collider_mod", COLLIDING)
    host = PluginHost(env={})
    with pytest.raises(CollisionError) as error:
        host.registries  # noqa: B018 - building the registries is what fails
    assert "'minilm'" in str(error.value)
    assert "harness.plugins.models.classifiers" in str(error.value) and "fake-collider" in str(error.value)


def test_unknown_name_suggests_the_closest():
    host = PluginHost(env={"HARNESS_LOAD_PLUGINS": ""})
    with pytest.raises(UnknownNameError, match="did you mean 'confidence'"):
        host.registries.routers.get("confidense")
    with pytest.raises(UnknownNameError, match="harness list routers"):
        host.registries.routers.get("zzzz")


def hook_names() -> list[str]:
    return sorted(name for name in dir(hookspecs) if hasattr(getattr(hookspecs, name), "harness_spec"))


def test_every_hook_is_documented_in_the_plugin_guide():
    guide = (ROOT / "docs" / "plugins" / "reference.md").read_text()
    documented = set(re.findall(r"^### `(\w+)", guide, flags=re.MULTILINE))
    assert set(hook_names()) == documented


def test_every_hook_has_a_test():
    tests = "\n".join(p.read_text() for p in (ROOT / "tests").rglob("test_*.py"))
    untested = [
        name for name in hook_names() if not re.search(rf"^def test_hook_{name}\b", tests, re.MULTILINE)
    ]
    assert not untested, f"hooks without a test_hook_<name> test: {untested}"
