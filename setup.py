"""The project is configured in pyproject.toml; this only adds the build step that puts
openapi.yaml, kept once at the top of the repository, inside the wheel's certapi
package, where certapi/spec.py looks for it first."""
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

SPEC = "openapi.yaml"


class BuildPyWithSpec(build_py):
    def run(self) -> None:
        super().run()
        # An editable install reads the checkout's own file; a copy inside the source
        # package would be a second contract to keep in step.
        if not getattr(self, "editable_mode", False):
            self.copy_file(SPEC, str(Path(self.build_lib) / "certapi" / SPEC))

    def get_outputs(self, include_bytecode: bool = True) -> list[str]:
        outputs = super().get_outputs(include_bytecode)
        if not getattr(self, "editable_mode", False):
            outputs.append(str(Path(self.build_lib) / "certapi" / SPEC))
        return outputs


setup(cmdclass={"build_py": BuildPyWithSpec})
