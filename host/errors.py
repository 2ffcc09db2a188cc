"""Host-side errors; all derive from ``kpdev.protocol.errors.KpdevError``."""

from kpdev.protocol.errors import KpdevError


class UsageError(KpdevError):
    """The user asked for something that cannot work (bad file, bad option value)."""


class BoardError(KpdevError):
    """A board is unknown, not connected, or its simulator would not start."""


class LinkError(KpdevError):
    """The link to a device could not be opened or broke."""


class LinkTimeout(LinkError):
    """The device did not answer in time."""


class AuthError(KpdevError):
    """Frames from the device failed authentication, or the two sides disagree about the key."""


class ConfigError(KpdevError):
    """The user's configuration file (or a setting in it) cannot be used."""
