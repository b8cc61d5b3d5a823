"""Tests of the Flask request plumbing shared by the HTTP edges."""
