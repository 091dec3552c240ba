"""Thin HTTP handlers: parse, call dispatch, render JSON or SSE."""
