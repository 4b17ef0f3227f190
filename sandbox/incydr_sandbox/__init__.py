"""incydr-sandbox: a local, deterministic Code42 Incydr + KnowBe4 Reporting API for tests and demos.

Entry points: the ``incydr-sandbox`` command (``cli``), ``server.build_app`` / ``server.serve_in_thread``
in-process, and ``process.SandboxProcess`` as a child process. See sandbox/README.md.
"""
