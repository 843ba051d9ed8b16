"""Bad configs: every error names file:line and the directive."""

from __future__ import annotations

import pytest

from portico.config import ConfigError, load_config

# (config text, line of the error, directive, words the message must contain)
CASES = [
    # syntax
    ("Listen 80\n<VirtualHost *:80>\nServerName a\n", 2, "<VirtualHost>", "was not closed"),
    ("<VirtualHost *:80>\n<Location />\n</VirtualHost>\n", 3, "</VirtualHost>",
     "expected </Location>"),
    ("</Location>\n", 1, "</Location>", "without a matching"),
    ("<Location /\n</Location>\n", 1, "<Location>", "missing its closing '>'"),
    ("ServerName \"open\n", 1, "ServerName", "unterminated"),
    ("<IfDefine X>\n<IfModule y>\n</IfModule>\n", 1, "<IfDefine>", "was not closed"),
    ("<IfDefine X>\n</IfModule>\n", 2, "</IfModule>", "expected </IfDefine>"),
    ("<IfDefine>\n</IfDefine>\n", 1, "<IfDefine>", "exactly one argument"),
    ("<IfVersion >> 2.4>\n</IfVersion>\n", 1, "<IfVersion>", "unknown operator"),
    ("<IfVersion = two>\n</IfVersion>\n", 1, "<IfVersion>", "not a version"),
    ("Include nothing/*.conf\n", 1, "Include", "no file matches"),
    ("Include missing.conf\n", 1, "Include", "does not exist"),
    ("Include main.conf\n", 1, "Include", "includes itself"),
    ("Define a:b c\n", 1, "Define", "must not contain ':'"),
    # registry
    ("ProxyPas / http://a/\n", 1, "ProxyPas", "Invalid command 'ProxyPas'"),
    ("<Foo>\n</Foo>\n", 1, "<Foo>", "Invalid section '<Foo>'"),
    ("<VirtualHost *:80>\nListen 80\n</VirtualHost>\n", 2, "Listen",
     "not allowed in <VirtualHost>"),
    ("<Location />\nProxyVia On\n</Location>\n", 2, "ProxyVia", "not allowed in <Location>"),
    ("<Proxy http://a/>\nProxyPreserveHost On\n</Proxy>\n", 2, "ProxyPreserveHost",
     "not allowed in <Proxy>"),
    ("SetHandler proxy:http://a/\n", 1, "SetHandler", "not allowed in server config"),
    ("<VirtualHost *:80>\n<VirtualHost *:81>\n</VirtualHost>\n</VirtualHost>\n", 2,
     "<VirtualHost>", "not allowed in <VirtualHost>"),
    ("<Location /a>\n<Location /b>\n</Location>\n</Location>\n", 2, "<Location>",
     "not allowed in <Location>"),
    ("ServerAlias a\n", 1, "ServerAlias", "not allowed in server config"),
    ("ProxyVia\n", 1, "ProxyVia", "takes 1 argument, got 0"),
    ("ServerName a b\n", 1, "ServerName", "takes 1 argument, got 2"),
    ("Require ip 10.0.0.1\n", 1, "Require", "access control is not supported yet"),
    ("<Location />\nOrder deny,allow\n</Location>\n", 2, "Order", "access control"),
    ("Allow from all\n", 1, "Allow", "access control"),
    ("Deny from all\n", 1, "Deny", "access control"),
    ("<RequireAll>\n</RequireAll>\n", 1, "<RequireAll>", "access control"),
    # core values
    ("Listen 80\nListen 0080\n", 2, "Listen", "already listened on"),
    ("Listen 1.2.3.4:80\nListen 1.2.3.4:80\n", 2, "Listen", "main.conf:1"),
    ("Listen 70000\n", 1, "Listen", "above the maximum"),
    ("Listen 1.2.3.4\n", 1, "Listen", "no port"),
    ("Listen ::1:80\n", 1, "Listen", "brackets"),
    ("ServerName a:port\n", 1, "ServerName", "whole number"),
    ("<VirtualHost :80>\n</VirtualHost>\n", 1, "<VirtualHost>", "no address"),
    ("<LocationMatch (>\n</LocationMatch>\n", 1, "<LocationMatch>", "bad regular expression"),
    ("<Location x y>\n</Location>\n", 1, "<Location>", "~ and a regular expression"),
    ("Timeout soon\n", 1, "Timeout", "whole number"),
    ("KeepAlive maybe\n", 1, "KeepAlive", "On or Off"),
    ("KeepAliveTimeout -1\n", 1, "KeepAliveTimeout", "negative"),
    ("MaxKeepAliveRequests -1\n", 1, "MaxKeepAliveRequests", "below the minimum"),
    ("LimitRequestBody 1.5\n", 1, "LimitRequestBody", "whole number"),
    ("LimitRequestFields x\n", 1, "LimitRequestFields", "whole number"),
    ("AllowEncodedSlashes Decode\n", 1, "AllowEncodedSlashes", "On, Off or NoDecode"),
    ("ErrorDocument 200 /x\n", 1, "ErrorDocument", "below the minimum 400"),
    ("ServerRoot /definitely/not/here\n", 1, "ServerRoot", "not a directory"),
    # proxy
    ("ProxyPass /a\n", 1, "ProxyPass", "needs a path and a URL"),
    ("ProxyPass /a http://a/?q=1\n", 1, "ProxyPass", "query string"),
    ("ProxyPass /a a.example/\n", 1, "ProxyPass", "not an absolute URL"),
    ("ProxyPass /a http:///\n", 1, "ProxyPass", "no host"),
    ("ProxyPass /a http://a:99999/\n", 1, "ProxyPass", "out of range"),
    ("ProxyPass /a unix:/run/x.sock\n", 1, "ProxyPass", "needs '|scheme://host/path'"),
    ("ProxyPass /a http://a/ bogus\n", 1, "ProxyPass", "neither key=value nor"),
    ("ProxyPass /a http://a/ timeout=0\n", 1, "ProxyPass", "timeout=0"),
    ("ProxyPass /a http://a/ weight=2\n", 1, "ProxyPass", "unknown Worker parameter"),
    ("ProxyPass /a http://a/ status=Z\n", 1, "ProxyPass", "unknown status flag"),
    ("ProxyPass /a http://a/ mapping=raw\n", 1, "ProxyPass", "encoded or servlet"),
    ("ProxyPass /a balancer://c/ ttl=5\n", 1, "ProxyPass", "unknown Balancer parameter"),
    ("ProxyPass ~ ( http://a/\n", 1, "ProxyPass", "bad regular expression"),
    ("ProxyPassMatch ^/(x http://a/$1\n", 1, "ProxyPassMatch", "bad regular expression"),
    ("<Location /l>\nProxyPass /l http://a/\n</Location>\n", 2, "ProxyPass",
     "can not have a path when defined in a location"),
    ("<Location /l>\nProxyPass http://a/ bare\n</Location>\n", 2, "ProxyPass",
     "neither key=value"),
    ("<Location /l>\nProxyPass http://a/\nProxyPass http://b/\n</Location>\n", 3,
     "ProxyPass", "only one ProxyPass"),
    ("<Location /l>\nProxyPassReverse /l http://a/\n</Location>\n", 2, "ProxyPassReverse",
     "can not have a path"),
    ("ProxyPassReverse http://a/\n", 1, "ProxyPassReverse", "needs a path and a URL"),
    ("ProxyPassReverseCookieDomain a\n", 1, "ProxyPassReverseCookieDomain", "got 1"),
    ("ProxyPassReverseCookiePath a b c\n", 1, "ProxyPassReverseCookiePath",
     "internal and a public"),
    ("ProxyPassInherit sometimes\n", 1, "ProxyPassInherit", "On or Off"),
    ("ProxyErrorOverride On 302\n", 1, "ProxyErrorOverride", "below the minimum 400"),
    ("ProxyErrorOverride Off 502\n", 1, "ProxyErrorOverride", "only meaningful with On"),
    ("ProxyVia Sometimes\n", 1, "ProxyVia", "Off, On, Full, Block"),
    ("ProxyBadHeader Drop\n", 1, "ProxyBadHeader", "Iserror, Ignore, Startbody"),
    ("ProxyTimeout 0\n", 1, "ProxyTimeout", "below the minimum 1"),
    ("ProxyIOBufferSize 100\n", 1, "ProxyIOBufferSize", "at least 512"),
    ("ProxyReceiveBufferSize 1\n", 1, "ProxyReceiveBufferSize", "at least 512"),
    ("ProxyMaxForwards many\n", 1, "ProxyMaxForwards", "whole number"),
    ("ProxySourceAddress example.com\n", 1, "ProxySourceAddress", "not an IP address"),
    ("ProxySet http://a/\n", 1, "ProxySet", "at least one key=value"),
    ("ProxySet http://a/ novalue\n", 1, "ProxySet", "key=value"),
    ("ProxySet http://a/ bogus=1\n", 1, "ProxySet", "unknown Worker parameter"),
    ("<Proxy http://a/>\nProxySet http://a/ ttl=1\n</Proxy>\n", 2, "ProxySet",
     "URL comes from the section"),
    ("<Proxy *>\nProxySet ttl=1\n</Proxy>\n", 2, "ProxySet", "wildcard"),
    ("<ProxyMatch ^http>\nProxySet ttl=1\n</ProxyMatch>\n", 2, "ProxySet", "not supported"),
    ("<Proxy http://a/ ttl=x>\n</Proxy>\n", 1, "<Proxy>", "ttl=x"),
    ("<Proxy http://a/>\nSSLProxyEngine On\n</Proxy>\n", 2, "SSLProxyEngine",
     "not supported yet"),
    # ssl
    ("SSLProxyEngine yes\n", 1, "SSLProxyEngine", "On or Off"),
    ("SSLProxyVerify always\n", 1, "SSLProxyVerify", "none, optional"),
    ("SSLProxyVerifyDepth -1\n", 1, "SSLProxyVerifyDepth", "below the minimum"),
    ("SSLProxyCACertificateFile nope.pem\n", 1, "SSLProxyCACertificateFile", "does not exist"),
    ("SSLProxyCACertificatePath nope\n", 1, "SSLProxyCACertificatePath", "does not exist"),
    ("SSLProxyProtocol TLSv9\n", 1, "SSLProxyProtocol", "not a protocol"),
    ("SSLProxyCipherSuite TLSv1.2 HIGH\n", 1, "SSLProxyCipherSuite", "SSL or TLSv1.3"),
    # log
    ("LogLevel loud\n", 1, "LogLevel", "not a log level"),
    ("LogLevel proxy:loud\n", 1, "LogLevel", "not a log level"),
    ("LogLevel :debug\n", 1, "LogLevel", "empty module name"),
    ("CustomLog /tmp/x common when=1\n", 1, "CustomLog", "env=[!]VAR or expr="),
    ("CustomLog /tmp/x common env=\n", 1, "CustomLog", "variable name"),
    ("CustomLog /tmp/x\n", 1, "CustomLog", "got 1"),
    ("LogFormat a b c\n", 1, "LogFormat", "got 3"),
]


@pytest.mark.parametrize(("text", "line", "directive", "words"), CASES)
def test_error_names_file_line_and_directive(fails, text, line, directive, words) -> None:
    error = fails(text, line, directive)
    assert words in error.message, str(error)


def test_error_inside_included_file_names_that_file(write) -> None:
    write("ProxyPass /ok http://a/\n\nProxyVia Bogus\n", "conf.d/bad.conf")
    path = write("ServerName a\nInclude conf.d/*.conf\n")
    with pytest.raises(ConfigError) as info:
        load_config(str(path))
    assert info.value.file is not None and info.value.file.endswith("conf.d/bad.conf")
    assert (info.value.line, info.value.directive) == (3, "ProxyVia")


def test_error_after_continuation_names_first_physical_line(fails) -> None:
    fails("ServerName a\nProxyPass /a \\\n  http://a/ \\\n  bogus\n", 2, "ProxyPass")


def test_unreadable_main_file(tmp_path) -> None:
    with pytest.raises(ConfigError, match="could not read"):
        load_config(str(tmp_path / "absent.conf"))


def test_include_depth_is_bounded(write) -> None:
    for index in range(130):
        write(f"Include f{index + 1}.conf\n", f"f{index}.conf")
    write("ServerName deep\n", "f130.conf")
    path = write("Include f0.conf\n")
    with pytest.raises(ConfigError, match="nested deeper than 128"):
        load_config(str(path))
