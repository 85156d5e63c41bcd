"""Support library for deltabox's end-to-end tests (see integration/README.md)."""
