"""Helpers shared by the test suites: a recording origin server and a proxy runner."""
