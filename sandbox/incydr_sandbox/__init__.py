"""incydr-sandbox: a local, deterministic Code42 Incydr + KnowBe4 Reporting API for tests and demos."""
