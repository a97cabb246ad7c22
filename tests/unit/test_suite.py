"""The suite runs every test file it holds (pytest silently skips folders such as `build`)."""

from __future__ import annotations

from fnmatch import fnmatch

from tests.conftest import repo_path


def test_no_test_folder_is_skipped_by_norecursedirs(pytestconfig):
    patterns = pytestconfig.getini("norecursedirs")
    tests = repo_path("tests")
    for path in tests.rglob("test_*.py"):
        for part in path.relative_to(tests).parts[:-1]:
            assert not any(fnmatch(part, pattern) for pattern in patterns), f"{path} is never collected"
