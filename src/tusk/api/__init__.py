"""tusk's HTTP surface: the server (``server``), its wire format (``codec``, ``methods``), the
services as HTTP proxies (``remote``) and the Python SDK (``client``)."""
