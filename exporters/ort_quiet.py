"""onnxruntime's own log lines kept off the user's terminal.

Every onnxruntime failure lstm-bench meets is raised as an exception and reported once, in one
line, by lstm-bench; onnxruntime also logs it natively on stderr first (in red, with ANSI
escapes, the whole C++ status). Every session lstm-bench makes takes its options from
``session_options`` here, and the default logger (for sessions onnxruntime makes on its own, as
its quantizer may) is set to the same level.
"""

from __future__ import annotations

LOG_SEVERITY = 4  # fatal only: errors and warnings reach the user through lstm-bench


def quiet_default_logger() -> None:
    """onnxruntime's process-wide logger at ``LOG_SEVERITY``."""
    import onnxruntime

    onnxruntime.set_default_logger_severity(LOG_SEVERITY)


def session_options():
    """A fresh ``onnxruntime.SessionOptions`` that logs nothing below ``LOG_SEVERITY``."""
    import onnxruntime

    quiet_default_logger()
    options = onnxruntime.SessionOptions()
    options.log_severity_level = LOG_SEVERITY
    return options
