# Mock: nothing to set up.
