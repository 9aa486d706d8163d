"""The exchange this thread is answering: read on every step of a request, so kept in a context variable of its own
rather than behind Flask's context-local proxies (`g`), which cost several calls per access."""

from __future__ import annotations

from contextvars import ContextVar
from typing import Any

_exchange: ContextVar[Any] = ContextVar("sandbox_exchange", default=None)


def exchange() -> Any:
    """The pipeline's ExchangeContext for the request being answered; None outside a service request."""
    return _exchange.get()


def set_exchange(ex: Any) -> None:
    _exchange.set(ex)
