"""The compiled pieces of the package, each optional: where one cannot be built (no C
compiler, no OpenSSL headers) the install goes on and the Python reference runs instead.
Everything else about the package is in pyproject.toml.

`pip install -e .` builds them in place (next to their sources under src/); after editing
a .pyx, `make native` rebuilds them (`python setup.py build_ext --inplace`)."""

from Cython.Build import cythonize
from setuptools import Extension, setup

# The bucket tree's hashing (ADR 0007, step 2): Cython over libcrypto's SHA-256.
TREE_EXTENSIONS = [
    Extension(
        "gridtokenx.ledger._tree_hashing",
        ["src/gridtokenx/ledger/_tree_hashing.pyx"],
        libraries=["crypto"],
        # SHA256_Init & co. are deprecated since OpenSSL 3 but are the cheapest way to copy
        # a started context (a struct copy, not an EVP allocation); declared without the
        # deprecation warnings.
        define_macros=[("OPENSSL_API_COMPAT", "0x10100000L")],
    ),
]


def optional(extensions: list[Extension]) -> list[Extension]:
    """Each extension optional: a failed compile or link is a warning and the Python
    reference runs. Set after `cythonize`, which drops the flag from the ones it returns."""
    for extension in extensions:
        extension.optional = True
    return extensions


setup(ext_modules=optional(cythonize(TREE_EXTENSIONS, language_level=3)))
