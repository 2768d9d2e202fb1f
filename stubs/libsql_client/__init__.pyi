"""Type stubs for libsql-client 0.3.1, which ships no ``py.typed``.

per-user-db's ``Database`` implements libsql-client's ``Client`` and returns its
``ResultSet``/``Row``; without these stubs an app under ``mypy --strict`` would see every
result as ``Any``. They ship in per-user-db's wheel as the PEP 561 stub-only package
``libsql_client-stubs``, so an app's mypy finds them in site-packages with no settings.

They cover what ``libsql_client`` exports and the modules that define it (``client``,
``result``, ``create_client``, ``sync``), with the signatures of its 0.3.1 source (mypy's
stubtest compares them in ``tests/test_typing.py``); its DB-API layer (``dbapi2``) and its
transports are not stubbed. In this repository the folder is ``stubs/libsql_client`` so
that ``mypy_path`` finds it; the wheel installs it as ``libsql_client-stubs``.
"""

from .client import Client as Client
from .client import InArgs as InArgs
from .client import InStatement as InStatement
from .client import InValue as InValue
from .client import LibsqlError as LibsqlError
from .client import Statement as Statement
from .client import Transaction as Transaction
from .create_client import create_client as create_client
from .result import ResultSet as ResultSet
from .result import Row as Row
from .result import Value as Value
from .sync import ClientSync as ClientSync
from .sync import TransactionSync as TransactionSync
from .sync import create_client_sync as create_client_sync
