"""The error tree shared by every layer.

`PlatformError` is the root. `ConfigError` and `DataError` are raised at the edges (config
loading, data loading/validation); the CLI turns them into a one-line message and exit code 2.
`live_bridge.errors` extends the tree with exchange errors.
"""


class PlatformError(Exception):
    """Root of every error this project raises on purpose."""


class ConfigError(PlatformError):
    """A configuration file or value is wrong.

    The CLI prints it and exits 2; the daemon refuses to start.
    """


class DataError(PlatformError):
    """Market data violates the bar schema (unsorted, duplicated, non-finite, high < low, bad ts).

    The message names the symbol and the timestamp. The CLI exits 2; the live daemon skips the bar
    for that symbol (no trade on it) and logs the error.
    """
