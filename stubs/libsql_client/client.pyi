"""libsql_client.client: statements, errors and the Client/Transaction interfaces."""

from abc import ABC, abstractmethod
from datetime import datetime
from typing import Any, Self, TypeAlias

from _typeshed import ReadableBuffer

from .result import ResultSet, Value

InValue: TypeAlias = Value | bool | datetime | ReadableBuffer
InArgs: TypeAlias = list[InValue] | tuple[InValue, ...] | dict[str, InValue] | None
InStatement: TypeAlias = Statement | str | tuple[str] | tuple[str, InArgs]

class Statement:
    sql: str
    args: InArgs
    def __init__(self, sql: str, args: InArgs = None) -> None: ...
    @staticmethod
    def convert(stmt: InStatement, args: InArgs = None) -> Statement: ...

class LibsqlError(RuntimeError):
    """A failure; ``code`` says which kind (``SQLITE_CONSTRAINT_…``, ``URL_INVALID``, …)."""

    code: str
    explanation: str
    def __init__(self, message: str, code: str) -> None: ...

class Client(ABC):
    @abstractmethod
    async def execute(self, stmt: InStatement, args: InArgs = None) -> ResultSet: ...
    @abstractmethod
    async def batch(self, stmts: list[InStatement]) -> list[ResultSet]: ...
    @abstractmethod
    def transaction(self) -> Transaction: ...
    @abstractmethod
    async def close(self) -> None: ...
    @property
    @abstractmethod
    def closed(self) -> bool: ...
    async def __aenter__(self) -> Self: ...
    async def __aexit__(self, exc_type: Any, exc_val: Any, exc_tb: Any) -> None: ...

class Transaction(ABC):
    @abstractmethod
    async def execute(self, stmt: InStatement, args: InArgs = None) -> ResultSet: ...
    @abstractmethod
    async def rollback(self) -> None: ...
    @abstractmethod
    async def commit(self) -> None: ...
    @abstractmethod
    def close(self) -> None: ...
    @property
    @abstractmethod
    def closed(self) -> bool: ...
    def __enter__(self) -> Self: ...
    def __exit__(self, exc_type: Any, exc_val: Any, exc_tb: Any) -> None: ...
