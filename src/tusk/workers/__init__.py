"""Workers: what runs a datum's user code, and how (the Runtime interface and its runtimes).

``base`` holds the interface (``Runtime``, ``Capabilities``, ``Workspace``, ``Invocation``,
``Outcome``); ``runtimes`` the implementations (``process``, ``sandbox``) and the choice of one
per pipeline; ``limits`` the bounds every runtime puts on user code; ``user_env`` the
environment user code starts with.
"""
