# Mock: packaging is done by the real SDK.
