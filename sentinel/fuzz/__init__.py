"""Coverage-guided fuzzing of the parsers of outside bytes: targets, runner and command."""
