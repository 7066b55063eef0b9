"""Engines that turn a coaching request into an answer: offline, LLM, and a fake for tests."""
