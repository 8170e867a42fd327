"""The dashboard's routes, one module per page family; each page's data is also in the
JSON API under ``/api/``, from the same module."""
