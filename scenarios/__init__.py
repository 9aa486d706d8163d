"""Built-in scenario packs (one folder per service) and assurance plans (plans/): data, not code."""
