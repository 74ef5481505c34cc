"""The plugin registry: every hook spec, entry-point discovery, failure isolation, conflicts."""
from __future__ import annotations

import sys
import textwrap
import types

import pytest
import torch

import zoo
from zoo import hookimpl
from zoo.errors import PluginError
from zoo.registry import Registry


def _plugin(name: str, **hooks) -> types.ModuleType:
    module = types.ModuleType(name)
    for hook, fn in hooks.items():
        setattr(module, hook, hookimpl(fn))
    return module


def test_builtin_plugin_is_found_through_the_entry_point(fresh_registry):
    enc = fresh_registry.get("encoder", "mlp")
    assert enc.owner.distribution == "latent-zoo"
    assert enc.owner.module == "zoo_plugins.builtin"
    assert {"mlp", "conv"} <= set(fresh_registry.names("encoder"))
    assert {"standard-normal", "mixture-of-gaussians"} <= set(fresh_registry.names("prior"))
    assert {"vae-mnist", "beta-vae-mnist", "vae-cifar10"} <= set(fresh_registry.cards)
    assert not fresh_registry.failures


def test_register_encoders_hook():
    reg = Registry()
    reg.add_plugin(_plugin("p", register_encoders=lambda register: register("enc-x", dict)))
    assert reg.get("encoder", "enc-x").factory is dict
    assert reg.names("decoder") == [] and reg.names("prior") == []


def test_register_decoders_hook():
    reg = Registry()
    reg.add_plugin(_plugin("p", register_decoders=lambda register: register("dec-x", dict)))
    assert reg.get("decoder", "dec-x").factory is dict
    assert reg.names("encoder") == []


def test_register_priors_hook():
    reg = Registry()
    reg.add_plugin(_plugin("p", register_priors=lambda register: register("prior-x", dict)))
    assert reg.get("prior", "prior-x").owner.module == "p"


def test_register_cards_hook_takes_files_and_folders(tmp_path):
    (tmp_path / "one.md").write_text("---\nzoo: {}\n---\n")
    folder = tmp_path / "more"
    folder.mkdir()
    (folder / "two.md").write_text("---\nzoo: {}\n---\n")
    (folder / "README.md").write_text("not a card")
    reg = Registry()

    def register_cards(register):
        register(tmp_path / "one.md")
        register(folder)

    reg.add_plugin(_plugin("p", register_cards=register_cards))
    assert sorted(reg.cards) == ["one", "two"]


def test_unmarked_functions_are_not_hooks():
    module = types.ModuleType("plain")
    module.register_priors = lambda register: register("sneaky", dict)  # no @hookimpl
    reg = Registry()
    reg.add_plugin(module)
    assert reg.names("prior") == []


def test_a_plugin_raising_in_a_hook_is_skipped_and_rolled_back():
    def bad(register):
        register("half-done", dict)
        raise RuntimeError("boom")

    reg = Registry()
    reg.add_plugin(_plugin("bad_plugin", register_priors=bad))
    reg.add_plugin(_plugin("good_plugin", register_priors=lambda register: register("fine", dict)))
    assert reg.names("prior") == ["fine"]
    assert len(reg.failures) == 1
    failure = str(reg.failures[0])
    assert "bad_plugin" in failure and "register_priors" in failure and "boom" in failure


def test_bad_hook_signature_is_reported_not_fatal():
    reg = Registry()
    reg.add_plugin(_plugin("wrong_args", register_priors=lambda registrar, extra: None))
    assert reg.failures and reg.failures[0].stage == "validate"


def test_two_plugins_registering_one_name_is_an_error_naming_both():
    reg = Registry()
    reg.add_plugin(_plugin("first_plugin", register_priors=lambda register: register("dup", dict)))
    reg.add_plugin(_plugin("second_plugin", register_priors=lambda register: register("dup", list)))
    with pytest.raises(PluginError) as err:
        reg.get("prior", "dup")
    assert "first_plugin" in str(err.value) and "second_plugin" in str(err.value)


def test_strict_mode_turns_skips_into_errors():
    reg = Registry(strict=True)
    with pytest.raises(PluginError, match="boom"):
        reg.add_plugin(_plugin("bad", register_encoders=lambda register: (_ for _ in ()).throw(RuntimeError("boom"))))


def test_unknown_component_suggests_close_names():
    reg = Registry().load_entry_points()
    with pytest.raises(PluginError, match="did you mean 'standard-normal'"):
        reg.get("prior", "standard-normall")


@pytest.fixture
def broken_distribution(tmp_path, monkeypatch):
    """A real installed distribution (dist-info on sys.path) whose plugin module fails to import."""
    (tmp_path / "zoo_broken_plugin.py").write_text("raise ImportError('missing dependency xyz')\n")
    info = tmp_path / "zoo_broken_plugin-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: zoo-broken-plugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(textwrap.dedent("""\
        [zoo]
        broken = zoo_broken_plugin
        """))
    monkeypatch.syspath_prepend(str(tmp_path))
    yield
    sys.modules.pop("zoo_broken_plugin", None)


def test_a_plugin_that_fails_to_import_is_reported_by_distribution(broken_distribution, fresh_registry):
    reg = Registry().load_entry_points()
    failures = [f for f in reg.failures if f.owner.distribution == "zoo-broken-plugin"]
    assert len(failures) == 1 and failures[0].stage == "import"
    assert "missing dependency xyz" in failures[0].error
    assert failures[0].owner.module == "zoo_broken_plugin"
    # the rest of the zoo keeps working
    model = zoo.load("vae-mnist", pretrained=False)
    assert torch.isfinite(model.elbo(torch.rand(2, 1, 28, 28)).elbo).all()
    with pytest.raises(PluginError, match="zoo-broken-plugin"):
        Registry(strict=True).load_entry_points()


def test_cli_plugins_lists_owner_and_failures(broken_distribution, fresh_registry, capsys):
    from zoo.cli import main

    assert main(["plugins"]) == 0
    out, err = capsys.readouterr()
    assert "standard-normal" in out and "latent-zoo (zoo_plugins.builtin)" in out
    assert "zoo-broken-plugin" in err


def test_factory_named_by_module_path_is_imported_on_first_use(tmp_path, monkeypatch):
    (tmp_path / "zoo_lazy_example.py").write_text(
        "IMPORTED = True\n"
        "def make(*, latent_shape, data_shape=None, scale=1.0):\n"
        "    return ('built', tuple(latent_shape), scale)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    reg = Registry()
    reg.add_plugin(_plugin("p", register_priors=lambda register: (
        register("lazy", "zoo_lazy_example:make"), register("missing", "zoo_lazy_example:nope"))))
    assert "zoo_lazy_example" not in sys.modules  # listing imports nothing
    assert reg.get("prior", "lazy").factory(latent_shape=[2], scale=3.0) == ("built", (2,), 3.0)
    assert "zoo_lazy_example" in sys.modules
    with pytest.raises(PluginError, match="zoo_lazy_example:nope"):
        reg.get("prior", "missing").factory(latent_shape=[2])
    sys.modules.pop("zoo_lazy_example", None)


def test_a_string_factory_must_name_module_and_attribute():
    reg = Registry()
    reg.add_plugin(_plugin("p", register_priors=lambda register: register("bad", "no_colon_here")))
    assert "module:attribute" in str(reg.failures[0])


def test_listing_the_zoo_imports_no_torch():
    import subprocess

    code = "import sys, zoo; zoo.list_models(); zoo.get_registry(); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
