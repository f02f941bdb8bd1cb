"""The public API is exactly what __all__ says, and each name is importable."""

import types

import ometria_sync


def test_all_names_exist() -> None:
    for name in ometria_sync.__all__:
        assert hasattr(ometria_sync, name), name


def test_all_is_the_real_namespace() -> None:
    """Every public name the package binds (submodules aside) is in __all__, and no other."""
    bound = {
        name for name, value in vars(ometria_sync).items()
        if (not name.startswith("_") or name == "__version__")
        and not isinstance(value, types.ModuleType)
    }
    assert sorted(ometria_sync.__all__) == sorted(bound)


def test_public_api_is_pinned() -> None:
    assert sorted(ometria_sync.__all__) == sorted([
        "AuthenticationError", "BatchRejectedError", "ConfigError", "ExitCode", "FatalApiError",
        "Job", "JobResult", "JobSettings", "OmetriaSyncError", "PushResult", "Pusher",
        "RetriesExhaustedError", "RetryableError", "RunOptions", "SourceError", "StateError",
        "StreamStats", "ThrottledError", "TransientError", "__version__", "load_job", "run",
        "run_job",
    ])


def test_a_result_is_made_of_exported_types() -> None:
    """What run_job returns can be named: its streams are StreamStats, its exit code ExitCode."""
    hints = ometria_sync.JobResult.__annotations__
    assert hints["streams"] == "list[StreamStats]"
    assert hints["exit_code"] == "ExitCode"
