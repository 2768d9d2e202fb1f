#!/usr/bin/env python3
"""Interop probe: drive the official PyPI ``libsql`` package (sqlite3-like, Rust
core) against a Hrana-over-HTTP server and print ONE JSON object on stdout.

Usage::

    python tests/interop/libsql_py_probe.py URL [AUTH_TOKEN]
        [--steps a,b] [--table NAME] [--no-record] [--timeout SECONDS]

(or PROBE_URL / PROBE_AUTH_TOKEN / PROBE_STEPS / PROBE_TABLE / PROBE_TIMEOUT in the environment).
URL is ``http://127.0.0.1:PORT/db/<name>/`` (with or without the trailing slash;
``libsql://`` means TLS and cannot reach a plain-HTTP server).

By default the probe puts a small recording reverse proxy on 127.0.0.1 between
the client and URL, so the JSON also lists every HTTP request the client sent
("wire") and a summary (endpoints, request types, batons, close...).

Exit status: 0 when every selected step behaved as expected, 1 when a step
failed unexpectedly or a check did not hold, 2 on bad usage or when ``libsql``
cannot be imported. The JSON object is printed in every case except usage errors.

This file is standard library only apart from ``libsql`` itself.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import http.client
import importlib
import json
import math
import os
import sys
import threading
import time
import traceback
import urllib.parse
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

ALL_STEPS = [
    "setup",
    "execute_positional",
    "execute_named",
    "execute_error",
    "integers",
    "floats",
    "executescript",
    "executescript_atomic_failure",
    "executemany",
    "transaction_commit",
    "transaction_rollback",
    "explicit_transaction",
    "cleanup",
]


# --------------------------------------------------------------------------
# recording reverse proxy (127.0.0.1 only)
# --------------------------------------------------------------------------
def _summarize_stmt(stmt: dict[str, Any] | None) -> dict[str, Any] | None:
    if not isinstance(stmt, dict):
        return None
    out: dict[str, Any] = {}
    for key in ("sql", "sql_id", "want_rows"):
        if stmt.get(key) is not None:
            out[key] = stmt[key]
    if stmt.get("args"):
        out["args"] = stmt["args"]
    if stmt.get("named_args"):
        out["named_args"] = stmt["named_args"]
    return out


def _summarize_request(req: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"type": req.get("type")}
    if req.get("type") == "execute":
        out["stmt"] = _summarize_stmt(req.get("stmt"))
    elif req.get("type") == "batch":
        out["steps"] = [
            {
                "stmt": _summarize_stmt(s.get("stmt")),
                **({"condition": s["condition"]} if s.get("condition") else {}),
            }
            for s in (req.get("batch") or {}).get("steps", [])
        ]
    elif req.get("type") in ("describe", "sequence", "store_sql", "close_sql"):
        for key in ("sql", "sql_id"):
            if req.get(key) is not None:
                out[key] = req[key]
    return out


class RecordingProxy:
    """Forwards every request to ``target`` (an http:// base URL on loopback)
    and remembers a short description of it."""

    def __init__(self, target: str, log_path: str | None = None) -> None:
        parsed = urllib.parse.urlsplit(target)
        if parsed.scheme != "http":
            raise ValueError("recording proxy only forwards plain http:// URLs")
        self.host = parsed.hostname or "127.0.0.1"
        self.port = parsed.port or 80
        self.wire: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        # kept open for the life of the (child) proxy process
        self._log = open(log_path, "a", encoding="utf-8") if log_path else None  # noqa: SIM115
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:  # silence
                pass

            def _forward(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else b""
                entry: dict[str, Any] = {"method": self.command, "path": self.path.split("?")[0]}
                entry["authorization"] = (
                    "Bearer <redacted>" if self.headers.get("authorization") else None
                )
                if body:
                    try:
                        parsed_body = json.loads(body)
                        if "baton" not in parsed_body:
                            entry["baton_field"] = "absent"
                        else:
                            entry["baton_field"] = (
                                "null" if parsed_body["baton"] is None else "string"
                            )
                        if isinstance(parsed_body.get("requests"), list):
                            entry["requests"] = [
                                _summarize_request(r) for r in parsed_body["requests"]
                            ]
                        if isinstance(parsed_body.get("batch"), dict):
                            entry["cursor_batch"] = _summarize_request(
                                {"type": "batch", "batch": parsed_body["batch"]}
                            )["steps"]
                    except ValueError:
                        entry["body_unparsed"] = body[:200].decode("utf-8", "replace")
                with proxy._lock:
                    proxy.wire.append(entry)
                headers = {
                    k: v
                    for k, v in self.headers.items()
                    if k.lower() not in ("host", "connection", "keep-alive")
                }
                conn = http.client.HTTPConnection(proxy.host, proxy.port, timeout=60)
                try:
                    conn.request(self.command, self.path, body=body or None, headers=headers)
                    resp = conn.getresponse()
                    data = resp.read()
                finally:
                    conn.close()
                entry["status"] = resp.status
                ctype = resp.getheader("content-type") or ""
                try:
                    if "json" in ctype and data:
                        rb = json.loads(data)
                        if isinstance(rb, dict) and "baton" in rb:
                            entry["response_baton"] = "null" if rb["baton"] is None else "string"
                        if isinstance(rb, dict) and isinstance(rb.get("results"), list):
                            entry["response_types"] = [
                                r.get("response", {}).get("type")
                                if r.get("type") == "ok"
                                else f"error:{(r.get('error') or {}).get('code', '')}"
                                for r in rb["results"]
                            ]
                except ValueError:
                    pass
                self.send_response(resp.status)
                for k, v in resp.getheaders():
                    if k.lower() not in ("transfer-encoding", "connection", "content-length"):
                        self.send_header(k, v)
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                if proxy._log is not None:
                    with proxy._lock:
                        proxy._log.write(json.dumps(entry) + "\n")
                        proxy._log.flush()

            do_GET = do_POST = do_PUT = do_DELETE = _forward

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True

    def serve(self) -> None:
        """Serve until the parent process goes away (used in the child)."""
        parent = os.getppid()

        def watch_parent() -> None:
            while os.getppid() == parent:
                time.sleep(0.5)
            os._exit(0)

        threading.Thread(target=watch_parent, daemon=True).start()
        print(self.server.server_address[1], flush=True)
        self.server.serve_forever()


class ProxyProcess:
    """Runs RecordingProxy in a child process. libsql's blocking calls keep the
    GIL while they wait on the network, so a proxy (or any server) in a thread
    of the client's own process would never get to answer."""

    def __init__(self, target: str) -> None:
        import subprocess
        import tempfile

        fd, self.log_path = tempfile.mkstemp(prefix="libsql-probe-wire-", suffix=".jsonl")
        os.close(fd)
        self.proc = subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), "--serve-proxy", target, self.log_path],
            stdout=subprocess.PIPE,
            text=True,
        )
        line = self.proc.stdout.readline() if self.proc.stdout else ""
        if not line.strip().isdigit():
            self.proc.kill()
            raise RuntimeError("recording proxy did not start")
        self.port = int(line)

    def url_for(self, target: str) -> str:
        parsed = urllib.parse.urlsplit(target)
        return urllib.parse.urlunsplit(
            ("http", f"127.0.0.1:{self.port}", parsed.path, parsed.query, "")
        )

    @property
    def wire(self) -> list[dict[str, Any]]:
        with open(self.log_path, encoding="utf-8") as f:
            return [json.loads(line) for line in f if line.strip()]

    def stop(self) -> list[dict[str, Any]]:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=5)
        except Exception:
            self.proc.kill()
            self.proc.wait()
        wire = self.wire
        os.unlink(self.log_path)
        return wire


# --------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------
def jv(v: Any) -> Any:
    """JSON-safe rendering of a value returned by the client."""
    if isinstance(v, (bytes, bytearray, memoryview)):
        return {"blob_base64": base64.b64encode(bytes(v)).decode()}
    if isinstance(v, float) and not math.isfinite(v):
        return {"float": repr(v)}
    if isinstance(v, int) and not isinstance(v, bool) and abs(v) > 2**53:
        return {"int": str(v)}  # keep JSON readers from rounding it
    return v


def rows_json(rows: Any) -> Any:
    if rows is None:
        return None
    return [[jv(x) for x in row] for row in rows]


def err_json(e: BaseException) -> dict[str, Any]:
    return {"type": type(e).__name__, "message": str(e)}


def redact(url: str) -> str:
    return urllib.parse.urlsplit(url)._replace(query="").geturl()


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("url", nargs="?", default=os.environ.get("PROBE_URL"))
    ap.add_argument("token", nargs="?", default=os.environ.get("PROBE_AUTH_TOKEN") or "")
    ap.add_argument("--steps", default=os.environ.get("PROBE_STEPS"))
    ap.add_argument("--table", default=os.environ.get("PROBE_TABLE"))
    ap.add_argument("--no-record", action="store_true", help="connect directly, no recording proxy")
    ap.add_argument(
        "--timeout",
        type=float,
        default=float(os.environ.get("PROBE_TIMEOUT", "120")),
        help="seconds for the whole run; on expiry the probe dies with exit 1, "
        "a traceback on stderr and no JSON",
    )
    args = ap.parse_args(argv)
    if not args.url:
        ap.error("no URL given (argument or PROBE_URL)")
    steps = (
        [s.strip() for s in args.steps.split(",") if s.strip()] if args.steps else list(ALL_STEPS)
    )
    for s in steps:
        if s not in ALL_STEPS:
            ap.error(f"unknown step {s!r}; known: {','.join(ALL_STEPS)}")
    table = args.table or f"probe_py_{os.getpid()}_{int(time.time() * 1000) % 10**9}"
    if not table.replace("_", "a").isalnum() or table[0].isdigit():
        ap.error("--table must be a plain identifier")

    # libsql blocks inside Rust while holding the GIL, so neither signals nor
    # threads can interrupt a hung request; faulthandler's watchdog is C-level.
    import faulthandler

    faulthandler.dump_traceback_later(args.timeout, exit=True)

    try:
        # imported by name: libsql ships no type information, and it may be absent
        libsql: Any = importlib.import_module("libsql")
    except Exception as e:
        print(f"libsql_py_probe: cannot import libsql: {e}", file=sys.stderr)
        return 2
    try:
        from importlib.metadata import version as _v

        libsql_version = _v("libsql")
    except Exception:
        libsql_version = None

    out: dict[str, Any] = {
        "probe": "libsql-python",
        "client": {"name": "libsql", "version": libsql_version},
        "python": sys.version.split()[0],
        "url": redact(args.url),
        "table": table,
        "steps_requested": steps,
        "results": {},
        "checks": {},
        "observations": {},
        "unexpected_errors": [],
    }

    proxy: ProxyProcess | None = None
    if not args.no_record and urllib.parse.urlsplit(args.url).scheme == "http":
        proxy = ProxyProcess(args.url)
        url = proxy.url_for(args.url)
    else:
        url = args.url
    T = table

    def connect(**kw: Any) -> Any:
        return libsql.connect(database=url, auth_token=args.token, **kw)

    def check(name: str, cond: Any) -> None:
        out["checks"][name] = bool(cond)

    def step(name: str, fn: Callable[[], dict[str, Any] | None]) -> None:
        if name not in steps:
            return
        start = len(proxy.wire) if proxy else None
        try:
            res = fn() or {}
            out["results"][name] = {"ok": True, **res}
        except Exception as e:
            out["results"][name] = {"ok": False, "error": err_json(e)}
            out["unexpected_errors"].append(
                {"step": name, "error": err_json(e), "traceback": traceback.format_exc(limit=3)}
            )
        if proxy is not None:
            out["results"][name]["wire_range"] = [start, len(proxy.wire)]

    # autocommit connection (isolation_level=None) for plain statements
    auto = None

    def a() -> Any:
        nonlocal auto
        if auto is None:
            auto = connect(isolation_level=None)
        return auto

    def count(where: str) -> int:
        # a fresh connection, so we only see committed data
        c = connect(isolation_level=None)
        try:
            return int(c.execute(f"SELECT count(*) FROM {T} WHERE {where}").fetchone()[0])
        finally:
            c.close()

    def s_setup() -> dict[str, Any]:
        a().execute(f"DROP TABLE IF EXISTS {T}")
        a().execute(
            f"CREATE TABLE {T} (id INTEGER PRIMARY KEY, tag TEXT, i INTEGER, f REAL, "
            "s TEXT, b BLOB, n ANY, x)"
        )
        return {}

    def s_execute_positional() -> dict[str, Any]:
        blob = bytes([0, 1, 2, 250, 255])
        text = "héllo ✓ 'q' \"dq\""
        cur = a().execute(
            f"INSERT INTO {T} (tag, i, f, s, b, n) VALUES (?, ?, ?, ?, ?, ?)",
            ("pos", 42, 1.5, text, blob, None),
        )
        ins = {"rowcount": cur.rowcount, "lastrowid": cur.lastrowid}
        cur = a().execute(
            "SELECT i, typeof(i), f, typeof(f), s, b, typeof(b), n, typeof(n) "
            f"FROM {T} WHERE tag = ?",
            ["pos"],
        )
        desc = [d[0] for d in (cur.description or ())]
        rows = cur.fetchall()
        r = rows[0] if rows else (None,) * 9
        check("positional_int_roundtrip", r[0] == 42 and type(r[0]) is int and r[1] == "integer")
        check("positional_float_roundtrip", r[2] == 1.5 and r[3] == "real")
        check("positional_text_roundtrip", r[4] == text)
        check("positional_blob_roundtrip", r[5] == blob and r[6] == "blob")
        check("positional_null_roundtrip", r[7] is None and r[8] == "null")
        check("insert_rowcount", ins["rowcount"] == 1)
        check("insert_lastrowid", isinstance(ins["lastrowid"], int) and ins["lastrowid"] > 0)
        check("description_names", desc[:2] == ["i", "typeof(i)"])
        return {"insert": ins, "description": desc, "rows": rows_json(rows)}

    def s_execute_named() -> dict[str, Any]:
        try:
            a().execute(f"INSERT INTO {T} (tag, i) VALUES (:tag, :i)", {"tag": "named", "i": 7})
        except ValueError as e:
            # libsql 0.1.11 accepts only list/tuple parameters
            out["observations"]["named_params_supported"] = False
            return {"supported": False, "error": err_json(e)}
        out["observations"]["named_params_supported"] = True
        rows = a().execute(f"SELECT i FROM {T} WHERE tag = 'named'").fetchall()
        check("named_args_roundtrip", rows == [(7,)])
        return {"supported": True, "rows": rows_json(rows)}

    def s_execute_error() -> dict[str, Any]:
        errs: dict[str, dict[str, Any] | None] = {}
        for key, sql in (
            ("syntax", "SELEC 1"),
            ("no_such_table", "SELECT * FROM no_such_table_at_all"),
        ):
            try:
                a().execute(sql).fetchall()
                errs[key] = None
            except Exception as e:
                errs[key] = err_json(e)
        check("syntax_error_raised", errs["syntax"] is not None)
        check("no_such_table_error_raised", errs["no_such_table"] is not None)
        check("usable_after_error", a().execute("SELECT 1").fetchall() == [(1,)])
        return {"errors": errs}

    def s_integers() -> dict[str, Any]:
        # reading: full 64-bit range must come back exact
        row = (
            a()
            .execute("SELECT 9223372036854775807, -9223372036854775807 - 1, 9007199254740993")
            .fetchone()
        )
        check("int64_read_exact", tuple(row) == (2**63 - 1, -(2**63), 2**53 + 1))
        # writing: record what the client does with ints outside i32
        sent: dict[str, Any] = {}
        for v in (2**31 - 1, -(2**31), 2**31, 2**53 + 1, 2**63 - 1, -(2**63)):
            got, typ = a().execute("SELECT ?, typeof(?)", (v, v)).fetchone()
            sent[str(v)] = {"got": jv(got), "typeof": typ, "exact": got == v and type(got) is int}
        check("int32_params_exact", sent[str(2**31 - 1)]["exact"] and sent[str(-(2**31))]["exact"])
        # libsql 0.1.11 sends ints outside i32 as {"type":"float"}: an observation, not a failure
        out["observations"]["int_params_beyond_i32_exact"] = all(
            sent[k]["exact"] for k in (str(2**31), str(2**53 + 1), str(2**63 - 1), str(-(2**63)))
        )
        return {"read": [jv(x) for x in row], "params": sent}

    def s_floats() -> dict[str, Any]:
        vals = [0.1, -2.5e-300, 1.7976931348623157e308, 3.0, -0.0]
        for v in vals:
            a().execute(f"INSERT INTO {T} (tag, x) VALUES ('flt', ?)", (v,))
        rows = a().execute(f"SELECT x, typeof(x) FROM {T} WHERE tag = 'flt' ORDER BY id").fetchall()
        check(
            "floats_roundtrip", [r[0] for r in rows] == vals and all(r[1] == "real" for r in rows)
        )
        check("float_type_preserved", all(type(r[0]) is float for r in rows))
        return {"rows": rows_json(rows)}

    def s_executescript() -> dict[str, Any]:
        a().executescript(
            f"INSERT INTO {T} (tag, i) VALUES ('script', 1);"
            f"INSERT INTO {T} (tag, i) VALUES ('script', 2);"
            f"INSERT INTO {T} (tag, i) VALUES ('script', 3);"
        )
        n = count("tag = 'script'")
        check("executescript_applied", n == 3)
        return {"rows": n}

    def s_executescript_atomic_failure() -> dict[str, Any]:
        # BEGIN ... COMMIT inside one script: the failing statement must stop it,
        # and nothing may be committed.
        err = None
        try:
            a().executescript(
                "BEGIN;"
                f"INSERT INTO {T} (tag, i) VALUES ('atomic', 1);"
                f"INSERT INTO {T} (tag, i) VALUES ('atomic', 2);"
                f"INSERT INTO no_such_table_{T} VALUES (3);"
                f"INSERT INTO {T} (tag, i) VALUES ('atomic', 4);"
                "COMMIT;"
            )
        except Exception as e:
            err = err_json(e)
        left = count("tag = 'atomic'")
        check("script_failure_nothing_committed", left == 0)
        # libsql 0.1.11 does not raise for a failed step of executescript
        out["observations"]["executescript_raises_on_step_error"] = err is not None
        # the connection must still be usable and in autocommit afterwards
        with contextlib.suppress(Exception):
            a().rollback()
        a().execute(f"INSERT INTO {T} (tag) VALUES ('after_atomic')")
        check("autocommit_after_failed_script", count("tag = 'after_atomic'") == 1)
        return {"error": err, "rows_left": left}

    def s_executemany() -> dict[str, Any]:
        a().executemany(f"INSERT INTO {T} (tag, i) VALUES ('many', ?)", [(1,), (2,), (3,)])
        n = count("tag = 'many'")
        check("executemany_applied", n == 3)
        return {"rows": n}

    def s_transaction_commit() -> dict[str, Any]:
        # sqlite3-style implicit transaction: DML opens it, commit() ends it
        c = connect()
        try:
            c.execute(f"INSERT INTO {T} (tag, i) VALUES ('tx_commit', 1)")
            c.execute(f"INSERT INTO {T} (tag, i) VALUES ('tx_commit', 2)")
            in_tx = c.in_transaction
            inside = c.execute(f"SELECT sum(i) FROM {T} WHERE tag = 'tx_commit'").fetchone()[0]
            before = count("tag = 'tx_commit'")
            c.commit()
            after = count("tag = 'tx_commit'")
        finally:
            c.close()
        check("tx_in_transaction", in_tx)
        check("tx_sees_own_writes", inside == 3)
        check("tx_isolated_before_commit", before == 0)
        check("tx_commit_visible", after == 2)
        return {"in_transaction": in_tx, "inside_sum": inside, "before": before, "after": after}

    def s_transaction_rollback() -> dict[str, Any]:
        c = connect()
        try:
            c.execute(f"INSERT INTO {T} (tag, i) VALUES ('tx_rollback', 1)")
            inside = c.execute(f"SELECT count(*) FROM {T} WHERE tag = 'tx_rollback'").fetchone()[0]
            c.rollback()
            in_tx_after = c.in_transaction
            after = count("tag = 'tx_rollback'")
            # the connection goes on working after a rollback
            c.execute(f"INSERT INTO {T} (tag, i) VALUES ('tx_rollback_then', 1)")
            c.commit()
        finally:
            c.close()
        check("tx_rollback_saw_row_inside", inside == 1)
        check("tx_rollback_discarded", after == 0)
        check("tx_not_in_transaction_after_rollback", not in_tx_after)
        check("tx_commit_after_rollback", count("tag = 'tx_rollback_then'") == 1)
        return {"inside": inside, "after": after}

    def s_explicit_transaction() -> dict[str, Any]:
        # autocommit connection, explicit BEGIN / COMMIT / ROLLBACK statements
        c = connect(isolation_level=None)
        try:
            c.execute("BEGIN IMMEDIATE")
            c.execute(f"INSERT INTO {T} (tag) VALUES ('explicit_commit')")
            c.execute("COMMIT")
            c.execute("BEGIN")
            c.execute(f"INSERT INTO {T} (tag) VALUES ('explicit_rollback')")
            err = None
            try:
                c.execute("SELECT * FROM no_such_table_at_all").fetchall()
            except Exception as e:
                err = err_json(e)
            still = c.in_transaction
            c.execute("ROLLBACK")
        finally:
            c.close()
        check("explicit_commit_visible", count("tag = 'explicit_commit'") == 1)
        check("explicit_error_keeps_transaction", still)
        check("explicit_rollback_discarded", count("tag = 'explicit_rollback'") == 0)
        return {"error_inside": err}

    def s_cleanup() -> dict[str, Any]:
        a().execute(f"DROP TABLE IF EXISTS {T}")
        return {}

    for name in ALL_STEPS:
        step(name, locals()[f"s_{name}"])

    if auto is not None:
        with contextlib.suppress(Exception):
            auto.close()

    if proxy is not None:
        wire = proxy.stop()
        out["wire"] = wire
        types = []
        for w in wire:
            for r in w.get("requests") or []:
                if r["type"] not in types:
                    types.append(r["type"])
        out["summary"] = {
            "endpoints": sorted({f"{w['method']} {w['path']}" for w in wire}),
            "request_types": types,
            "http_requests": len(wire),
            "sends_close": "close" in types,
            "uses_batons": any(w.get("baton_field") == "string" for w in wire),
            "uses_cursor": any(w["path"].endswith("/cursor") for w in wire),
            "uses_describe": "describe" in types,
            "uses_get_autocommit": "get_autocommit" in types,
            "uses_store_sql": "store_sql" in types,
        }
    failed = [k for k, v in out["checks"].items() if not v]
    out["failed_checks"] = failed
    out["ok"] = not out["unexpected_errors"] and not failed
    sys.stdout.write(json.dumps(out) + "\n")
    sys.stdout.flush()
    return 0 if out["ok"] else 1


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--serve-proxy":
        RecordingProxy(sys.argv[2], sys.argv[3]).serve()
        sys.exit(0)
    sys.exit(main(sys.argv[1:]))
