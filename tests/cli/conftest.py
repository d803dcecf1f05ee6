from tests.privatizer.conftest import tiny_cache, tiny_checkpoint  # noqa: F401 - shared fixtures
