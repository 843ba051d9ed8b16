"""Lexer and preprocessor: quoting, continuation, comments, Include, Define, conditionals."""

from __future__ import annotations

import logging

import pytest

from portico.config.lexer import read_logical_lines, split_words
from portico.config.preprocess import preprocess


def test_split_words_follows_httpd_quoting() -> None:
    assert split_words(r'''a "b c" 'd e' "q\"z\.w" 'it\'s' x"y"''') == [
        "a", "b c", "d e", 'q"z\\.w', "it's", 'x"y"']
    assert split_words('"a"b') == ["a", "b"]
    assert split_words('""') == [""]
    with pytest.raises(ValueError, match="unterminated"):
        split_words('"open')


def test_logical_lines_join_continuations_and_skip_comments(tmp_path, caplog) -> None:
    path = tmp_path / "c.conf"
    path.write_text(
        "  # a comment\n"
        "A one \\\n"
        "  two\n"
        "B trailing-space-is-not-continuation \\ \n"
        "C after\n"
        "# comment ending in backslash \\\n"
        "D swallowed\n"
        "E last \\\n")
    with caplog.at_level(logging.WARNING, "portico.config"):
        lines = read_logical_lines(str(path))
    assert [(entry.line, entry.text) for entry in lines] == [
        (2, "A one   two"),
        (4, "B trailing-space-is-not-continuation \\"),
        (5, "C after"),
        (8, "E last"),
    ]
    assert "swallows line 7" in caplog.text


def test_define_variables_and_environment(write, monkeypatch, caplog) -> None:
    monkeypatch.setenv("PORTICO_TEST_ENV", "from-env")
    path = write("""
        Define host example.org
        Define flag
        ServerName ${host}
        ServerAlias ${PORTICO_TEST_ENV} ${flag} ${nope}
        UnDefine host
        ErrorLog ${host}
        Define multi "a b"
        ServerAlias ${multi}
    """)
    with caplog.at_level(logging.WARNING, "portico.config"):
        tree = preprocess(str(path), defines=("CLI", "K=v"))
    args = [(node.name, node.args) for node in tree.nodes]
    assert args == [
        ("ServerName", ("example.org",)),
        ("ServerAlias", ("from-env", "${flag}", "${nope}")),
        ("ErrorLog", ("${host}",)),
        ("ServerAlias", ("a", "b")),
    ]
    assert "${nope} is not defined" in caplog.text
    assert tree.defines == {"CLI": None, "K": "v", "flag": None, "multi": "a b"}


def test_conditionals(load) -> None:
    config = load("""
        Define ON
        <IfDefine ON>
            ProxyPass /defined http://a/
        </IfDefine>
        <IfDefine !ON>
            Garbage that is never read
        </IfDefine>
        <IfDefine CLI>
            ProxyPass /cli http://a/
        </IfDefine>
        <IfModule mod_proxy.c>
            <IfModule proxy_http_module>
                ProxyPass /modules http://a/
            </IfModule>
        </IfModule>
        <IfModule mod_rewrite.c>
            RewriteEngine On
            <Nested section="also skipped">
            </Nested>
        </IfModule>
        <IfModule !rewrite_module>
            ProxyPass /no-rewrite http://a/
        </IfModule>
        <IfModule proxy>
            ProxyPass /bare-name-is-not-a-module http://a/
        </IfModule>
        <IfVersion >= 2.4>
            ProxyPass /v24 http://a/
        </IfVersion>
        <IfVersion < 2.4>
            ProxyPass /v22 http://a/
        </IfVersion>
        <IfVersion = 2.4>
            ProxyPass /eq24 http://a/
        </IfVersion>
        <IfVersion ~ ^2\\.4\\.>
            ProxyPass /regex http://a/
        </IfVersion>
        <IfDirective ProxyPass>
            ProxyPass /ifdirective http://a/
        </IfDirective>
        <IfSection !VirtualHost>
            ProxyPass /never http://a/
        </IfSection>
        <IfFile main.conf>
            ProxyPass /iffile http://a/
        </IfFile>
    """, defines=("CLI",))
    assert [route.path for route in config.main.routes] == [
        "/defined", "/cli", "/modules", "/no-rewrite", "/v24", "/eq24", "/regex",
        "/ifdirective", "/iffile"]


def test_includes_globs_directories_and_server_root(write, tmp_path) -> None:
    write("ProxyPass /b http://b/\n", "conf.d/b.conf")
    write("ProxyPass /a http://a/\n", "conf.d/a.conf")
    write("ProxyPass /deep http://deep/\n", "dirs/x/sites/one.conf")
    write("ProxyPass /whole1 http://w1/\n", "whole/1.conf")
    write("ProxyPass /whole2 http://w2/\n", "whole/sub/2.conf")
    write("ProxyPass /root http://r/\n", "other-root/r.conf")
    path = write(f"""
        Include conf.d/*.conf
        Include dirs/*/sites/*.conf
        Include {tmp_path}/whole
        IncludeOptional nothing/*.conf
        IncludeOptional missing.conf
        ServerRoot {tmp_path}/other-root
        Include r.conf
    """)
    from portico.config import load_config
    config = load_config(str(path))
    routes = config.main.routes
    assert [route.path for route in routes] == [
        "/a", "/b", "/deep", "/whole1", "/whole2", "/root"]
    assert routes[0].source.file == str(tmp_path / "conf.d/a.conf")
    assert routes[0].source.line == 1
    assert config.server_root == str(tmp_path / "other-root")


def test_server_root_argument_resolves_includes(write, tmp_path) -> None:
    write("ProxyPass /x http://x/\n", "root/inc.conf")
    path = write("Include inc.conf\n", "conf/main.conf")
    from portico.config import load_config
    config = load_config(str(path), server_root=str(tmp_path / "root"))
    assert config.main.routes[0].path == "/x"
    assert config.server_root == str(tmp_path / "root")


@pytest.mark.parametrize("module", [
    "mod_proxy_hcheck.c", "proxy_hcheck_module", "mod_lbmethod_bybusyness.c",
    "mod_auth_basic.c", "authn_file_module", "mod_slotmem_shm.c", "watchdog_module"])
def test_ifmodule_is_true_for_modules_portico_implements(load, module) -> None:
    config = load(f"""
        Listen 80
        ServerName t
        <IfModule {module}>
            ProxyTimeout 7
        </IfModule>
        <IfModule !{module}>
            ProxyTimeout 9
        </IfModule>
    """)
    assert config.main.settings.timeout == 7.0
