"""Optional compiled inner loops of the wavelet2 codec (gancomp/_w2c.c).

Everything else is in pyproject.toml. The extension is optional: without a C compiler the
install goes on and gancomp uses its numpy path, which gives the same bytes and pixels."""

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext


class BuildExt(build_ext):
    """No fused multiply-adds (the float64 results must equal numpy's bit for bit)."""

    def build_extensions(self):
        if self.compiler.compiler_type == "unix":
            for ext in self.extensions:
                ext.extra_compile_args += ["-O2", "-ffp-contract=off", "-fno-fast-math"]
        super().build_extensions()


setup(ext_modules=[Extension("gancomp._w2c", ["gancomp/_w2c.c"], optional=True)],
      cmdclass={"build_ext": BuildExt})
