"""The one exception type of the project.

Every error caused by bad input (a wrong shape, a missing file, an unsupported layer) is an
``LSTMBenchError`` whose message says what is wrong and where. The CLI prints it as one line
on stderr and exits with code 2; anything else that escapes is a bug.
"""


class LSTMBenchError(Exception):
    """Bad input to lstm-bench: the message names the input and what was expected."""
