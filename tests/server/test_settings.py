"""Server settings: sources and precedence, parsing, validation naming the setting."""

from __future__ import annotations

from pathlib import Path

import pytest
import trustme

from hostql.server.main import parse_args, run
from hostql.server.settings import (
    SPECS,
    Settings,
    SettingsError,
    documented,
    load_settings,
    parse_duration,
    split_listen,
    validate,
)

NO_ENV: dict[str, str] = {}


def test_defaults(tmp_path: Path) -> None:
    settings = load_settings({"data_dir": str(tmp_path)}, NO_ENV)
    assert settings.listen == "127.0.0.1:8080"
    assert settings.db == f"sqlite:///{tmp_path.resolve()}/server.db"
    assert settings.redis == ""
    assert settings.tls is True and settings.dev is False
    assert settings.session_duration == 5 * 86400
    assert settings.live_query_rest_period == 25.0
    assert settings.login_rate_limit == 10
    assert settings.result_log_plugin == ["filesystem"] and settings.status_log_plugin == ["filesystem"]
    assert settings.filesystem_result_log_file == f"{tmp_path.resolve()}/osquery_result.log"
    assert settings.query_report_cap == 1000
    assert settings.public_url == "https://127.0.0.1:8080"
    assert settings.source("listen") == "default"


def test_precedence_flags_over_env_over_yaml(tmp_path: Path) -> None:
    config = tmp_path / "server.yml"
    config.write_text("listen: 127.0.0.1:1111\nsession_duration: 2h\nlogin_rate_limit: 3\n"
                      "result_log_plugin: [stdout, filesystem]\nredis: redis://127.0.0.1:7/0\n")
    env = {"HOSTQL_CONFIG": str(config), "HOSTQL_LISTEN": "127.0.0.1:2222", "HOSTQL_SESSION_DURATION": "30m",
           "HOSTQL_UNRELATED": "ignored"}
    settings = load_settings({"listen": "127.0.0.1:3333"}, env)
    assert settings.listen == "127.0.0.1:3333"  # flag
    assert settings.source("listen") == "--listen"
    assert settings.session_duration == 1800  # env beats YAML
    assert settings.source("session_duration") == "HOSTQL_SESSION_DURATION"
    assert settings.login_rate_limit == 3  # YAML beats default
    assert settings.result_log_plugin == ["stdout", "filesystem"]
    assert settings.redis == "redis://127.0.0.1:7/0"
    assert settings.config_file == str(config)


def test_config_flag_wins_over_env_config(tmp_path: Path) -> None:
    one, two = tmp_path / "one.yml", tmp_path / "two.yml"
    one.write_text("login_rate_limit: 1\n")
    two.write_text("login_rate_limit: 2\n")
    settings = load_settings({"config": str(two)}, {"HOSTQL_CONFIG": str(one)})
    assert settings.login_rate_limit == 2


def test_env_list_is_comma_separated(tmp_path: Path) -> None:
    settings = load_settings({"data_dir": str(tmp_path)}, {"HOSTQL_STATUS_LOG_PLUGIN": "stdout, filesystem"})
    assert settings.status_log_plugin == ["stdout", "filesystem"]


def test_cli_flags_map_to_settings() -> None:
    command, flags = parse_args(["prepare-db", "--db", "sqlite:///x.db", "--dev", "--no-tls",
                                 "--result-log-plugin", "stdout", "--result-log-plugin", "filesystem",
                                 "--live-query-rest-period", "5s"])
    assert command == "prepare-db"
    settings = load_settings(flags, NO_ENV)
    assert settings.db == "sqlite:///x.db"
    assert settings.dev is True and settings.tls is False
    assert settings.result_log_plugin == ["stdout", "filesystem"]
    assert settings.live_query_rest_period == 5.0
    assert parse_args([])[0] == "serve"


@pytest.mark.parametrize(("text", "seconds"), [("25", 25), ("25s", 25), ("500ms", 0.5), ("30m", 1800),
                                               ("24h", 86400), ("5d", 432000), (7, 7)])
def test_durations(text: object, seconds: float) -> None:
    assert parse_duration(text) == seconds


def test_bad_values_name_the_setting_and_source(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match=r"setting session_duration \(from HOSTQL_SESSION_DURATION\): "):
        load_settings({}, {"HOSTQL_SESSION_DURATION": "soon"})
    with pytest.raises(SettingsError, match=r"setting login_rate_limit \(from --login-rate-limit\): "):
        load_settings({"login_rate_limit": "many"}, NO_ENV)
    config = tmp_path / "c.yml"
    config.write_text("lisen: 1.2.3.4:5\n")
    with pytest.raises(SettingsError, match=r"setting lisen: unknown setting in"):
        load_settings({"config": str(config)}, NO_ENV)
    config.write_text("- just\n- a list\n")
    with pytest.raises(SettingsError, match=r"setting config: .* must hold a mapping"):
        load_settings({"config": str(config)}, NO_ENV)
    with pytest.raises(SettingsError, match=r"setting config: cannot read .*nope.yml"):
        load_settings({"config": str(tmp_path / "nope.yml")}, NO_ENV)


def _valid(**overrides: str) -> Settings:
    return load_settings({"tls": "false", **overrides}, NO_ENV)


def test_validation_messages(tmp_path: Path) -> None:
    validate(_valid(data_dir=str(tmp_path)))
    cases = {
        "setting db: malformed database URL": {"db": "postgresql://u@h:notaport/x"},
        "setting db: unsupported database 'oracle'": {"db": "oracle://u@h/x"},
        "setting listen: expected HOST:PORT": {"listen": "localhost"},
        "setting listen: port must be 1-65535": {"listen": "127.0.0.1:70000"},
        "setting redis: malformed URL": {"redis": "localhost:6379"},
        "setting server_url: malformed URL": {"server_url": "fleet.example.com"},
        "setting log_level: expected one of": {"log_level": "loud"},
        "setting host_identifier: expected one of": {"host_identifier": "mac"},
        "setting result_log_plugin: unknown log destination 'kafka'": {"result_log_plugin": "kafka"},
    }
    for message, flags in cases.items():
        with pytest.raises(SettingsError) as caught:
            validate(_valid(**flags))
        assert str(caught.value).startswith(message.split(":")[0]), str(caught.value)
        assert message.split(": ", 1)[1] in str(caught.value)


def test_tls_files_are_checked(tmp_path: Path) -> None:
    missing = str(tmp_path / "x.pem")
    settings = load_settings({"tls_cert": missing, "tls_key": missing}, NO_ENV)
    with pytest.raises(SettingsError, match=rf"setting tls_cert \(from --tls-cert\): cannot read {missing}: "
                                            r"No such file or directory"):
        validate(settings)
    with pytest.raises(SettingsError, match=r"setting tls_cert: required when TLS is on"):
        validate(load_settings({}, NO_ENV))
    ca = trustme.CA()
    cert = ca.issue_cert("localhost")
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.cert_chain_pems[0].write_to_path(str(cert_path))
    cert.private_key_pem.write_to_path(str(key_path))
    validate(load_settings({"tls_cert": str(cert_path), "tls_key": str(key_path)}, NO_ENV))
    other_key = tmp_path / "other.pem"
    ca.issue_cert("other").private_key_pem.write_to_path(str(other_key))
    with pytest.raises(SettingsError, match=r"setting tls_cert .*cannot use"):
        validate(load_settings({"tls_cert": str(cert_path), "tls_key": str(other_key)}, NO_ENV))


def test_dev_generates_cert_paths(tmp_path: Path) -> None:
    settings = load_settings({"dev": "true", "data_dir": str(tmp_path)}, NO_ENV)
    assert settings.tls_cert == f"{tmp_path.resolve()}/server.pem"
    assert settings.source("tls_cert") == "dev"
    validate(settings)  # the files are made at start


def test_listen_forms() -> None:
    assert split_listen("[::1]:9000") == ("::1", 9000)
    assert split_listen("0.0.0.0:80") == ("0.0.0.0", 80)
    assert load_settings({"listen": "0.0.0.0:8443"}, NO_ENV).public_url == "https://localhost:8443"
    assert load_settings({"listen": "[::1]:8443", "tls": "false"}, NO_ENV).public_url == "http://[::1]:8443"
    assert load_settings({"server_url": "https://fleet.example.com/"}, NO_ENV).public_url == \
        "https://fleet.example.com"


def test_every_setting_is_documented() -> None:
    docs = (Path(__file__).resolve().parents[2] / "docs" / "server.md").read_text()
    for name, flag, env, _default, _help in documented():
        assert f"`{name}`" in docs and f"`{flag}" in docs and f"`{env}`" in docs, name
    assert len(documented()) == len(SPECS)


def test_help_lists_settings(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["--help"]) == 0
    out = capsys.readouterr().out
    assert "prepare-db" in out and "--tls-cert" in out and "HOSTQL_LIVE_QUERY_REST_PERIOD" in out


def test_usage_error_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["--no-such-flag"]) == 2
    assert "unrecognized arguments" in capsys.readouterr().err
