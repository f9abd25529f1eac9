"""Browser tests of the built site: Debian Chromium driven by Playwright, served from 127.0.0.1 only."""
