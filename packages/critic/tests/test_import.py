import importlib


def test_package_imports_and_has_version():
    module = importlib.import_module("vlforge.critic")
    assert module.__version__ == "0.1.0"
