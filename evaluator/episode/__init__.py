"""One episode: reset → agent loop → grade → validate → result, with an event log of every step."""
