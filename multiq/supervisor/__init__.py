"""The process supervisor behind ``multiq multi``: pidfiles, daemonizing, systemd notification."""
