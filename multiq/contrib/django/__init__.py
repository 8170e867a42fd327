"""Django integration (imported only by projects that use it)."""
