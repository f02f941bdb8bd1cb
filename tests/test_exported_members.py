"""The public API is exactly what __all__ says, and each name is importable."""

import ometria_sync


def test_all_names_exist() -> None:
    for name in ometria_sync.__all__:
        assert hasattr(ometria_sync, name), name


def test_public_api_is_pinned() -> None:
    assert sorted(ometria_sync.__all__) == sorted([
        "AuthenticationError", "BatchRejectedError", "ConfigError", "ExitCode", "FatalApiError",
        "Job", "JobResult", "JobSettings", "OmetriaSyncError", "PushResult", "Pusher",
        "RetriesExhaustedError", "RetryableError", "RunOptions", "SourceError", "StateError",
        "ThrottledError", "TransientError", "__version__", "load_job", "run_job",
    ])
