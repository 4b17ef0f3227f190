"""User mapping: Code42 actors -> KnowBe4 KSAT users, by ordered rules and CSV overrides."""
