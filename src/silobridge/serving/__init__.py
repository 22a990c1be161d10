"""Serving the LM to clients that speak the OpenAI-compatible API."""
