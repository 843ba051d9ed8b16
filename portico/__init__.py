"""portico: a reverse proxy and load balancer that speaks httpd's mod_proxy configuration."""

__version__ = "0.1.0"
SERVER_SOFTWARE = f"portico/{__version__}"

__all__ = ["SERVER_SOFTWARE", "__version__"]
