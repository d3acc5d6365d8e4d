"""The user-resolution engine: the one place that decides who belongs to which account, who
may sign in, with which tier and under which addresses. Doors receive :class:`ResolutionEngine`."""

from bridge.engine.facade import ResolutionEngine
from bridge.engine.session_checks import (
    SESSION_ENDED,
    SESSION_EXPIRED,
    SESSION_UNKNOWN,
    SessionCheck,
)
from bridge.engine.unit_of_work import UnitOfWork

__all__ = ["SESSION_ENDED", "SESSION_EXPIRED", "SESSION_UNKNOWN", "ResolutionEngine",
           "SessionCheck", "UnitOfWork"]
