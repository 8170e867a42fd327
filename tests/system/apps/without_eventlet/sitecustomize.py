"""On a subprocess's PYTHONPATH: eventlet cannot be found, as if it were not installed
(the green pools' tests of ``-P eventlet`` without eventlet)."""
import sys


class _HideEventlet:
    def find_spec(self, name, path=None, target=None):
        if name == "eventlet" or name.startswith("eventlet."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


sys.meta_path.insert(0, _HideEventlet())
