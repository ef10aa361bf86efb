"""Configuration through real Envoy: bad plugin config is refused with a message naming the field.
(Shipped configs are validated by `make validate`, tests/validate.py.)"""
import json
import pathlib

import pytest

from harness import BUILD, KEYS, as_native, load_config, plugin_config, set_plugin_config, validate


@pytest.mark.parametrize("mutate,field", [
    (lambda c: c["providers"]["openai"].update(kind="gopher"), "providers.openai.kind"),
    (lambda c: c["providers"]["anthropic"].update(api_version="1999-01-01"), "providers.anthropic.api_version"),
    (lambda c: c["models"]["claude-sonnet"].update(provider="missing"), "models.claude-sonnet.provider"),
    (lambda c: c["providers"]["openai"].update(clustr="x"), "providers.openai.clustr"),
    (lambda c: c["models"]["gpt-4o"].update(params={"temperature": "sometimes"}), "models.gpt-4o.params.temperature"),
])
def test_bad_plugin_config_is_refused_naming_the_field(tmp_path: pathlib.Path, mutate, field):
    cfg = load_config("envoy/demo.yaml")
    plugin = plugin_config(cfg)
    mutate(plugin)
    set_plugin_config(cfg, plugin)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(as_native(cfg) if BUILD == "native" else cfg))
    result = validate(path, KEYS)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert f"invalid tollgate configuration at `{field}`" in output, output[-2000:]
