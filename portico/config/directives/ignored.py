"""httpd directives that have no meaning for portico: accepted, logged at debug, no effect.

They keep stock httpd configs (Debian's apache2.conf and friends) loadable. Sections listed
here are skipped whole, content unread: portico serves no files, so <Directory> and <Files>
never match anything.
"""

from __future__ import annotations

__all__ = ["TABLE"]

from portico.config.registry import Context, DirectiveTable

TABLE = DirectiveTable("ignored")

TABLE.ignore(
    # process model and modules: portico has its own
    "LoadModule", "LoadFile", "User", "Group", "Mutex", "ScoreBoardFile", "ServerLimit",
    "StartServers", "MinSpareThreads", "MaxSpareThreads", "ThreadLimit", "ThreadsPerChild",
    "MaxRequestWorkers", "MaxClients", "MaxConnectionsPerChild", "MaxRequestsPerChild",
    "ThreadStackSize",
    # serving files and identity banners: portico serves no local files
    "TypesConfig", "DocumentRoot", "ServerAdmin", "ServerTokens", "ServerSignature",
    "TraceEnable", "AddDefaultCharset", "HostnameLookups", "AccessFileName",
    "EnableSendfile", "EnableMMAP", "AddType", "DirectoryIndex", "Options", "AllowOverride",
    # URL → file mappings: ProxyPass is matched before them in httpd too, and portico has
    # no files to serve for what they would map (Debian enables mod_alias by default)
    "Alias", "AliasMatch", "ScriptAlias",
)
TABLE.ignore("Directory", "DirectoryMatch", "Files", "FilesMatch", section=True,
             contexts=Context.SERVER | Context.VHOST | Context.LOCATION)
