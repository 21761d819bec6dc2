"""Tests for the device simulator."""
