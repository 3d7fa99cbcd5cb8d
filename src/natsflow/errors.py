"""The errors users catch (public): the whole tree of :mod:`natsflow_engine.errors`, where it
is drawn and where each class lives; this module re-exports it rather than listing it again."""

from natsflow_engine.errors import *  # noqa: F403  (the facade is the tree itself)
from natsflow_engine.errors import __all__ as _tree

__all__ = [name for name in _tree if name[0].isupper()]  # the classes, not the lookup helpers
