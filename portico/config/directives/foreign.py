"""Directives of httpd modules portico does not implement but stock configs use unguarded.

Debian enables mod_mime, mod_autoindex, mod_alias, mod_deflate, ... by default and includes
their .conf files without <IfModule>, so these directives must load. File-serving ones have
no meaning for a proxy and are logged at debug; ones that would change proxied traffic
(compression, request timeouts) are logged as warnings so nobody relies
on them by accident. A misspelled name is still an error.
"""

from __future__ import annotations

__all__ = ["TABLE"]

import logging

from portico.config.build import BuildContext
from portico.config.registry import ALL_CONTEXTS, DirectiveTable
from portico.config.tree import Node

_log = logging.getLogger("portico.config")

TABLE = DirectiveTable("foreign")

# module → directives; file serving only, no effect on proxied requests
_FILE_SERVING = {
    "mime": ("AddCharset", "AddEncoding", "AddHandler", "AddInputFilter", "AddLanguage",
             "AddOutputFilter", "DefaultLanguage", "RemoveCharset", "RemoveEncoding",
             "RemoveHandler", "RemoveInputFilter", "RemoveLanguage", "RemoveOutputFilter",
             "RemoveType", "MimeOptions", "ModMimeUsePathInfo", "MultiviewsMatch"),
    "autoindex": ("AddAlt", "AddAltByEncoding", "AddAltByType", "AddDescription", "AddIcon",
                  "AddIconByEncoding", "AddIconByType", "DefaultIcon", "HeaderName",
                  "IndexHeadInsert", "IndexIgnore", "IndexIgnoreReset", "IndexOptions",
                  "IndexOrderDefault", "IndexStyleSheet", "ReadmeName"),
    "negotiation": ("CacheNegotiatedDocs", "ForceLanguagePriority", "LanguagePriority"),
    "dir": ("DirectoryCheckHandler", "DirectorySlash", "FallbackResource"),
    "status": ("SeeRequestTail",),
    "alias": ("RedirectMatch", "RedirectPermanent", "RedirectTemp", "ScriptAliasMatch"),
}

# module → directives whose absence changes what clients or backends see
_BEHAVIOUR = {
    "deflate/filter": ("AddOutputFilterByType", "DeflateCompressionLevel", "DeflateBufferSize",
                       "DeflateMemLevel", "DeflateWindowSize", "SetOutputFilter",
                       "SetInputFilter", "FilterDeclare", "FilterProvider", "FilterChain"),
    "reqtimeout": ("RequestReadTimeout",),
}


def _debug(module: str):
    def handler(ctx: BuildContext, node: Node) -> None:
        _log.debug("%s: ignoring %s (mod_%s is not part of portico)", ctx.source, node.name,
                   module)
    return handler


def _warn(module: str):
    def handler(ctx: BuildContext, node: Node) -> None:
        _log.warning("%s: %s is ignored: mod_%s is not implemented by portico", ctx.source,
                     node.name, module)
    return handler


for _module, _names in _FILE_SERVING.items():
    for _name in _names:
        TABLE.directive(_name, ALL_CONTEXTS, args=(0, None))(_debug(_module))
for _module, _names in _BEHAVIOUR.items():
    for _name in _names:
        TABLE.directive(_name, ALL_CONTEXTS, args=(0, None))(_warn(_module))
