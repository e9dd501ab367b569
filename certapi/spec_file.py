"""Where openapi.yaml is read from.

The repository keeps the contract as one file at its top level. A built wheel has no
top level to put it in, so the build copies it into the certapi package (setup.py);
a source checkout or an editable install has no such copy and reads the original."""
from importlib.resources import files
from pathlib import Path

CHECKOUT_SPEC = Path(__file__).resolve().parent.parent / "openapi.yaml"


def spec_file() -> Path:
    """The openapi.yaml this installation serves."""
    packaged = Path(str(files("certapi") / "openapi.yaml"))
    return packaged if packaged.is_file() else CHECKOUT_SPEC
