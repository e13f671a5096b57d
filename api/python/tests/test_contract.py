"""The Python client held to api/openapi.yaml, the one written contract.

SCHEMAS says, for every schema of ``components.schemas``, what models it in
Python; OPERATIONS says, for every operation, which Client method calls it.
A schema or an operation the document gains without an entry here fails
the test: add the entry (and the code), or map the operation to None with
the reason the Python client leaves it out. Then, field by field and code by
code:

- each response schema has exactly the properties its dataclass reads
  (``wire_fields``), with matching types, and a required property is never
  Optional on the Python side (except timestamps, which Go's zero time
  leaves empty);
- each request body the client sends uses exactly the schema's properties,
  each operation's method and path are the document's, and the query
  parameters the client sends are the operation's;
- the error codes of ``sandboxd.errors`` are exactly the ``Error.code`` enum,
  each with the HTTP status of the document's code table.

Needs PyYAML (Debian: python3-yaml); skipped without it. No daemon needed.
"""

from __future__ import annotations

import datetime
import os
import re
import typing
import unittest
from typing import Any, Callable, Dict, List, NamedTuple, Optional, Set, Tuple

import _fixture

import sandboxd
from sandboxd import errors, observe, types

try:
    import yaml
except ImportError:  # pragma: no cover - depends on the machine
    yaml = None

OPENAPI = os.path.join(_fixture.REPO, "api", "openapi.yaml")


class Model(NamedTuple):
    """A response schema read by ``cls.from_dict``."""

    cls: type


class Listing(NamedTuple):
    """A response schema wrapping one array, which the client unwraps."""

    key: str
    item_schema: str


class Request(NamedTuple):
    """A request body the client builds (its operations are checked in
    OPERATIONS)."""


class Envelope(NamedTuple):
    """The error envelope, read by ``errors.error_from_response``."""


#: Every schema of the document and what models it in Python.
SCHEMAS: Dict[str, Any] = {
    "Error": Envelope(),
    "Limits": Model(types.Limits),
    "Info": Model(types.Info),
    "CreateSessionRequest": Request(),
    "Session": Model(types.Session),
    "SessionList": Listing("sessions", "Session"),
    "ExecRequest": Request(),
    "ExecResult": Model(types.ExecResult),
    "DeleteSessionResult": Model(types.DeleteSessionResult),
    "NotKept": Model(types.NotKept),
    "FileInfo": Model(types.FileInfo),
    "FileList": Model(types.FileList),
    "TextLine": Model(types.TextLine),
    "TextFile": Model(types.TextFile),
    "WriteResult": Model(types.WriteResult),
    "EditRequest": Request(),
    "EditResult": Model(types.EditResult),
    "MkdirRequest": Request(),
    "MoveRequest": Request(),
    "ExecEvent": Model(types.ExecEvent),
    "StartProcessRequest": Request(),
    "Process": Model(types.Process),
    "ProcessList": Listing("processes", "Process"),
    "ProcessOutput": Model(types.ProcessOutput),
    # Statistics and events (sandboxd.observe).
    "SessionStats": Model(observe.SessionStats),
    "Event": Model(observe.Event),
    "Outcome": Model(observe.Outcome),
    "InstallPackagesRequest": Request(),
    "InstallPackagesResult": Model(types.InstallPackagesResult),
    "InstalledPackage": Model(types.InstalledPackage),
    "SatisfiedPackage": Model(types.SatisfiedPackage),
    "PackageEvent": Model(types.PackageEvent),
    "Package": Model(types.Package),
    "SessionPackages": Model(types.SessionPackages),
    "Env": Model(types.Env),
    "MissingPackage": Model(types.MissingPackage),
    "EnvList": Listing("envs", "Env"),
    "User": Model(types.User),
    "UserLimits": Model(types.UserLimits),
    "UserUsage": Model(types.UserUsage),
    "DiskUsage": Model(types.DiskUsage),
    "SessionDisk": Model(types.SessionDisk),
}

#: Properties whose Python type is not the one the schema's type maps to,
#: and why.
TYPE_EXCEPTIONS: Dict[Tuple[str, str], Any] = {
    # Both carry one chunk of output; the client hands over the bytes.
    ("ExecEvent", "data"): bytes,
    ("ExecEvent", "data_b64"): bytes,
    ("PackageEvent", "data"): bytes,
    ("PackageEvent", "data_b64"): bytes,
}

S, P, U, N = "sess-1", "proc-1", "user-1", "out.pdf"

#: Every operation of the document: the calls that exercise its Client
#: method with every optional argument (None: not in the Python client).
OPERATIONS: Dict[str, Optional[List[Callable[[sandboxd.Client], Any]]]] = {
    "getInfo": [lambda c: c.info()],
    "createSession": [lambda c: c.create_session(U, S, limits={"cpus": 1, "memory_mb": 64, "pids": 9, "tmp_mb": 8})],
    "listSessions": [lambda c: c.list_sessions(U)],
    "getSession": [lambda c: c.get_session(S)],
    "deleteSession": [lambda c: c.delete_session(S, keep_files=True)],
    "exec": [
        lambda c: c.exec(S, command="true", cwd="/w", env={"A": "1"}, stdin="in", timeout=5),
        lambda c: c.exec(S, argv=["true"]),
    ],
    "listFiles": [lambda c: c.list_files(S, "d", root="shared", recursive=True)],
    "removeFile": [lambda c: c.remove(S, "f", recursive=True, root="shared")],
    "statFile": [lambda c: c.stat(S, "f", root="shared")],
    "readFile": [lambda c: c.read_bytes(S, "f", root="shared", offset=1, length=2)],
    "writeFile": [lambda c: c.write_file(S, "f", b"x", root="shared", mkdirs=True)],
    "readText": [lambda c: c.read_text(S, "f", line=2, limit=3, root="shared")],
    "editFile": [lambda c: c.edit_file(S, "f", "a", "b", count=2, root="shared")],
    "mkdir": [lambda c: c.mkdir(S, "d", parents=True, root="shared")],
    "moveFile": [lambda c: c.move(S, "a", "b", overwrite=True, root="shared")],
    "downloadOutput": [lambda c: c.download_output(U, N)],
    "startProcess": [
        lambda c: c.start_process(S, command="sleep 1", cwd="/w", env={"A": "1"}),
        lambda c: c.start_process(S, argv=["sleep", "1"]),
    ],
    "listProcesses": [lambda c: c.list_processes(S)],
    "processOutput": [lambda c: c.process_output(S, P, filter="x")],
    "killProcess": [lambda c: c.kill_process(S, P, grace=2)],
    "getSessionStats": [lambda c: c.stats(S)],
    "streamEvents": [lambda c: c.events(U, S, timeout=5)],
    # Prometheus scrapes it; a chat backend has no use for it.
    "getMetrics": None,
    "installPackages": [lambda c: c.install_packages(S, ["pandas>=2", "requests"], timeout=60)],
    "listPackages": [lambda c: c.list_packages(S)],
    "listEnvs": [lambda c: c.list_envs()],
    "getUser": [lambda c: c.user(U)],
}


class Call(NamedTuple):
    method: str
    path: str
    query: Dict[str, Any]
    json_body: Any


class RecordingClient(sandboxd.Client):
    """A Client whose requests are recorded and answered with a document
    that fills the listing keys."""

    def __init__(self) -> None:
        super().__init__("/nonexistent")
        self.calls: List[Call] = []

    def _call(self, method, path, query=None, json_body=None, body=None, headers=None, raw=False, **kw):
        q = {k: v for k, v in (query or {}).items() if v is not None}
        self.calls.append(Call(method, "/" + sandboxd.API_VERSION + path, q, json_body))
        if raw:
            return b""
        return {spec.key: [{}] for spec in SCHEMAS.values() if isinstance(spec, Listing)}

    def _open(self, method, path, query=None, json_body=None, body=None, headers=None, **kw):
        """A streamed request: recorded, answered with an empty stream."""
        q = {k: v for k, v in (query or {}).items() if v is not None}
        self.calls.append(Call(method, "/" + sandboxd.API_VERSION + path, q, json_body))
        return _NoConnection(), _EmptyStream((headers or {}).get("Accept", "application/json"))


class _NoConnection:
    def shutdown(self) -> None:
        pass


class _EmptyStream:
    """An answer of the content type asked for, with an empty body."""

    status = 200

    def __init__(self, content_type: str) -> None:
        self.content_type = content_type

    def getheader(self, name: str, default: Any = None) -> Any:
        return self.content_type if name.lower() == "content-type" else default

    def read1(self, n: int = -1) -> bytes:
        return b""

    def read(self, n: int = -1) -> bytes:
        return b""

    def close(self) -> None:
        pass


def _unoptional(t: Any) -> Tuple[Any, bool]:
    """(the type inside Optional, whether it was Optional)."""
    args = typing.get_args(t)
    if typing.get_origin(t) is typing.Union and type(None) in args:
        rest = [a for a in args if a is not type(None)]
        return (rest[0] if len(rest) == 1 else typing.Union[tuple(rest)]), True
    return t, False


@unittest.skipIf(yaml is None, "PyYAML is not installed (Debian: python3-yaml): the contract test reads api/openapi.yaml")
class ContractTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        with open(OPENAPI, encoding="utf-8") as f:
            cls.doc = yaml.safe_load(f)
        cls.schemas = cls.doc["components"]["schemas"]

    # -- helpers ----------------------------------------------------------

    def resolve(self, node: Dict[str, Any]) -> Dict[str, Any]:
        """A schema with its $ref followed."""
        ref = node.get("$ref")
        if ref:
            return self.schemas[self.ref_name(ref)]
        return node

    @staticmethod
    def ref_name(ref: str) -> str:
        return ref.rsplit("/", 1)[-1]

    def flat(self, name: str) -> Tuple[Dict[str, Any], Set[str]]:
        """A schema's properties and required names, allOf merged."""
        schema = self.schemas[name]
        props: Dict[str, Any] = dict(schema.get("properties") or {})
        required = set(schema.get("required") or [])
        for part in schema.get("allOf") or []:
            if "$ref" in part:
                p, r = self.flat(self.ref_name(part["$ref"]))
            else:
                p, r = dict(part.get("properties") or {}), set(part.get("required") or [])
            props.update(p)
            required |= r
        return props, required

    def expected_type(self, schema: str, name: str, prop: Dict[str, Any]) -> Any:
        """The Python type a property maps to."""
        if (schema, name) in TYPE_EXCEPTIONS:
            return TYPE_EXCEPTIONS[(schema, name)]
        if "$ref" in prop:
            target = SCHEMAS[self.ref_name(prop["$ref"])]
            self.assertIsInstance(target, Model, "%s.%s refers to %s, which no dataclass models" % (schema, name, prop["$ref"]))
            return target.cls
        kind = prop.get("type")
        if kind == "string":
            return datetime.datetime if prop.get("format") == "date-time" else str
        if kind == "array":
            item = self.expected_type(schema, name + "[]", prop["items"])
            return typing.List[item]
        scalar = {"integer": int, "number": float, "boolean": bool}
        self.assertIn(kind, scalar, "%s.%s: type %r is not mapped; extend expected_type" % (schema, name, kind))
        return scalar[kind]

    # -- schemas ----------------------------------------------------------

    def test_every_schema_is_in_the_table(self):
        self.assertEqual(
            sorted(set(self.schemas) - set(SCHEMAS)), [],
            "schemas of api/openapi.yaml without an entry in SCHEMAS: add one (and the Python type)",
        )
        self.assertEqual(sorted(set(SCHEMAS) - set(self.schemas)), [], "SCHEMAS names schemas the document lacks")

    def test_response_schemas_field_by_field(self):
        for name, spec in SCHEMAS.items():
            if not isinstance(spec, Model):
                continue
            with self.subTest(schema=name, cls=spec.cls.__name__):
                props, required = self.flat(name)
                wire = spec.cls.wire_fields()
                self.assertEqual(sorted(wire), sorted(props), "JSON keys %s reads vs %s's properties" % (spec.cls.__name__, name))
                hints = typing.get_type_hints(spec.cls)
                for key, attr in wire.items():
                    if key not in props:
                        continue
                    got, optional = _unoptional(hints[attr])
                    want = self.expected_type(name, key, props[key])
                    self.assertEqual(got, want, "%s.%s (JSON %r) is %s; the schema says %s" % (spec.cls.__name__, attr, key, hints[attr], want))
                    if key in required and want is not datetime.datetime:
                        self.assertFalse(optional, "%s.%s is Optional but %s requires %r" % (spec.cls.__name__, attr, name, key))
                    if key not in required and "$ref" in props[key]:
                        self.assertTrue(optional, "%s.%s may be absent (%s) but is not Optional" % (spec.cls.__name__, attr, name))

    def test_listings(self):
        for name, spec in SCHEMAS.items():
            if not isinstance(spec, Listing):
                continue
            with self.subTest(schema=name):
                props, required = self.flat(name)
                self.assertEqual(list(props), [spec.key])
                self.assertEqual(required, {spec.key})
                self.assertEqual(props[spec.key]["type"], "array")
                self.assertEqual(self.ref_name(props[spec.key]["items"]["$ref"]), spec.item_schema)

    # -- operations -------------------------------------------------------

    def operations(self) -> Dict[str, Tuple[str, str, Dict[str, Any], Dict[str, Any]]]:
        """operationId → (METHOD, path, path item, operation)."""
        ops = {}
        for path, item in self.doc["paths"].items():
            for method, op in item.items():
                if method in ("get", "put", "post", "delete", "patch", "head", "options"):
                    ops[op["operationId"]] = (method.upper(), path, item, op)
        return ops

    def parameters(self, item: Dict[str, Any], op: Dict[str, Any], where: str) -> Set[str]:
        names = set()
        for p in (item.get("parameters") or []) + (op.get("parameters") or []):
            p = self.doc["components"]["parameters"][self.ref_name(p["$ref"])] if "$ref" in p else p
            if p["in"] == where:
                names.add(p["name"])
        return names

    def test_every_operation_is_in_the_table(self):
        ops = self.operations()
        self.assertEqual(
            sorted(set(ops) - set(OPERATIONS)), [],
            "operations of api/openapi.yaml without an entry in OPERATIONS: add the Client method, or None with a reason",
        )
        self.assertEqual(sorted(set(OPERATIONS) - set(ops)), [], "OPERATIONS names operations the document lacks")

    def test_operations_route_query_body_and_answer(self):
        for op_id, (method, path, item, op) in self.operations().items():
            calls = OPERATIONS.get(op_id)
            if calls is None:
                continue
            with self.subTest(operation=op_id):
                client = RecordingClient()
                results = [call(client) for call in calls]
                route = re.compile("^" + re.sub(r"\{[^}]+\}", "[^/]+", path) + "$")
                sent_query: Set[str] = set()
                sent_body: Set[str] = set()
                for rec in client.calls:
                    self.assertEqual((rec.method, bool(route.match(rec.path))), (method, True), "%s sent %s %s" % (op_id, rec.method, rec.path))
                    sent_query |= set(rec.query)
                    if isinstance(rec.json_body, dict):
                        sent_body |= set(rec.json_body)
                self.assertEqual(sorted(sent_query), sorted(self.parameters(item, op, "query")), "query parameters of " + op_id)

                body = ((op.get("requestBody") or {}).get("content") or {}).get("application/json")
                if body is None:
                    self.assertEqual(sent_body, set(), "%s takes no JSON body" % op_id)
                else:
                    schema = self.ref_name(body["schema"]["$ref"])
                    self.assertIsInstance(SCHEMAS[schema], Request, "%s's body %s" % (op_id, schema))
                    props, required = self.flat(schema)
                    self.assertEqual(sorted(sent_body), sorted(props), "JSON body of %s vs %s" % (op_id, schema))
                    for rec in client.calls:
                        self.assertTrue(required <= set(rec.json_body), "%s omits a required field of %s" % (op_id, schema))
                        if "limits" in rec.json_body:
                            self.assertEqual(sorted(rec.json_body["limits"]), sorted(self.flat("Limits")[0]))

                ok = [r for code, r in op["responses"].items() if str(code).startswith("2")]
                answer = ((ok[0].get("content") or {}).get("application/json") or {}) if ok else {}
                if "schema" in answer:
                    spec = SCHEMAS[self.ref_name(answer["schema"]["$ref"])]
                    for r in results:
                        if isinstance(spec, Listing):
                            self.assertIsInstance(r, list)
                            self.assertIsInstance(r[0], SCHEMAS[spec.item_schema].cls)
                        else:
                            self.assertIsInstance(r, spec.cls, op_id)

    # -- error codes ------------------------------------------------------

    def code_statuses(self) -> Dict[str, int]:
        """The document's code table (info.description, "| code | status |")."""
        rows = re.findall(r"^\s*\|\s*([a-z_]+)\s*\|\s*(\d{3})\s*\|\s*$", self.doc["info"]["description"], re.M)
        table: Dict[str, int] = {}
        for code, status in rows:
            self.assertNotIn(code, table, "code %s twice in the code table" % code)
            table[code] = int(status)
        return table

    def test_error_codes_code_by_code(self):
        enum = self.schemas["Error"]["properties"]["code"]["enum"]
        self.assertEqual(len(enum), len(set(enum)))
        self.assertEqual(sorted(errors._BY_CODE), sorted(enum), "sandboxd.errors codes vs Error.code's enum")
        statuses = self.code_statuses()
        self.assertEqual(sorted(statuses), sorted(enum), "the code table vs Error.code's enum")
        for code, cls in errors._BY_CODE.items():
            with self.subTest(code=code):
                self.assertEqual(cls.STATUS, statuses[code], "%s.STATUS" % cls.__name__)
                self.assertIn(cls.__name__, errors.__all__)
                self.assertIs(getattr(sandboxd, cls.__name__), cls)

    def test_envelope(self):
        props, required = self.flat("Error")
        self.assertEqual((sorted(props), sorted(required)), (["code", "error"], ["code", "error"]))
        e = errors.error_from_response(404, b'{"error": "session \\"x\\": not found", "code": "not_found"}')
        self.assertEqual((type(e), e.message, e.code), (sandboxd.NotFound, 'session "x": not found', "not_found"))


if __name__ == "__main__":
    unittest.main()
