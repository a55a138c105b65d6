"""Tests of `sentinel`, the command line."""
