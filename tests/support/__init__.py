"""Test support: the real server as a subprocess, PostgreSQL, spec validation, SDK clients."""
