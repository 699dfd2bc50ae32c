class HfTransferError(Exception):
    """Base class for all hf_transfer errors."""


class ConfigError(HfTransferError, ValueError):
    """Raised when a configuration is invalid."""


class DataError(HfTransferError, ValueError):
    """Raised when data cannot be found, loaded or validated."""
