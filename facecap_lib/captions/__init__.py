"""Caption synthesis: turning AU and emotion labels into training text (paper stage 1)."""
