"""Config validation: unknown keys and bad values are rejected with the key path and what is allowed."""

from __future__ import annotations

import pytest

from assistant.config import Config, load_config, save_config
from assistant.errors import ConfigError


def _load(tmp_path, text: str) -> Config:
    p = tmp_path / "config.toml"
    p.write_text(text)
    return load_config(p)


def test_defaults_when_no_file(monkeypatch, tmp_path):
    monkeypatch.delenv("ASSISTANT_CONFIG", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    cfg = load_config()
    assert cfg.wake.models == ["hey_jarvis"]
    assert cfg.home.backend == "simulated"
    assert cfg.remote.policy == "never"


def test_valid_file(tmp_path):
    cfg = _load(tmp_path, "[wake]\nthreshold = 0.7\nmodels = ['alexa', 'hey_jarvis']\n[endpoint]\ntrailing_silence_ms = 500\n")
    assert cfg.wake.threshold == 0.7
    assert cfg.wake.models == ["alexa", "hey_jarvis"]
    assert cfg.endpoint.trailing_silence_ms == 500


def test_unknown_key_names_path_and_allowed_keys(tmp_path):
    with pytest.raises(ConfigError) as info:
        _load(tmp_path, "[wake]\ntreshold = 0.7\n")
    msg = str(info.value)
    assert "[wake] unknown key 'treshold'" in msg
    assert "threshold" in msg and "patience" in msg


def test_unknown_section(tmp_path):
    with pytest.raises(ConfigError, match="unknown key 'wakeword'; allowed keys: paths, audio, wake"):
        _load(tmp_path, "[wakeword]\nthreshold = 0.7\n")


def test_out_of_range_value(tmp_path):
    with pytest.raises(ConfigError, match=r"\[wake\] threshold = 1.5: Input should be less than or equal to 1"):
        _load(tmp_path, "[wake]\nthreshold = 1.5\n")


def test_bad_choice_lists_allowed_values(tmp_path):
    with pytest.raises(ConfigError) as info:
        _load(tmp_path, "[remote]\npolicy = 'sometimes'\n")
    assert "policy = 'sometimes'" in str(info.value)
    assert "'never', 'ask' or 'allowed'" in str(info.value)


def test_nested_list_item_key(tmp_path):
    with pytest.raises(ConfigError, match=r"\[remote.endpoints\] unknown key 'url'.*base_url"):
        _load(tmp_path, "[[remote.endpoints]]\nname='lan'\nurl='http://x'\nmodel='m'\n")


def test_toml_syntax_error(tmp_path):
    with pytest.raises(ConfigError, match="not valid TOML"):
        _load(tmp_path, "[wake\nthreshold = 0.7\n")


def test_missing_explicit_file(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.toml")


def test_overrides_are_validated():
    cfg = Config().with_overrides({"wake.threshold": 0.3})
    assert cfg.wake.threshold == 0.3
    with pytest.raises(ConfigError, match="gate_aggressiveness"):
        Config().with_overrides({"wake.gate_aggressiveness": 7})


def test_save_and_reload_round_trip(tmp_path):
    cfg = Config().with_overrides({"wake.threshold": 0.42, "tools.block": ["search"]})
    path = save_config(cfg, tmp_path / "sub" / "config.toml")
    again = load_config(path)
    assert again == cfg
    text = path.read_text()
    assert "threshold = 0.42" in text and "[asr]" not in text  # only changed keys are written
