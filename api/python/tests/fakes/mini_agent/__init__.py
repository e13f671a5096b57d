"""Stand-in for Mini-Agent's package (see ../README.md); the real one also
imports its Agent and LLM clients here."""
