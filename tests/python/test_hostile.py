"""Every public callable, driven with hostile arguments.

The rule (``docs/developing.md``): a wrong Python *type* is a ``TypeError`` (a bug in the calling
code); a value of the right type that the library cannot take (lone surrogate, NUL, 10 MB of text,
an integer out of range, nesting too deep, a cycle) is a ``ServershipError`` subclass carrying
``errcode``/``http_status``. Nothing else may escape (``UnicodeEncodeError``, ``OverflowError``,
``SystemError``, ``RecursionError``, ``pyo3_runtime.PanicException``), and nothing may crash.

The table of callables and parameters is generated from the installed stubs
(``servership/_native.pyi``, which ``mypy.stubtest`` keeps equal to the native module), so a new
binding is driven automatically; a class whose methods take arguments needs a factory in
``FACTORIES`` (a test fails until it has one).
"""

from __future__ import annotations

import ast
import base64
import importlib.resources
import os
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import servership
from servership import _native

LONE = "!a\udc80:x.org"
NUL = "!a\x00b:x.org"
HUGE = "x" * (10 * 1024 * 1024)


def _deep(n: int) -> Any:
    value: Any = {}
    for _ in range(n):
        value = {"a": value}
    return value


def _cyclic() -> Any:
    d: dict[str, Any] = {}
    d["self"] = [d]
    return d


HOSTILE: list[tuple[str, Any]] = [
    ("lone surrogate", LONE),
    ("NUL", NUL),
    ("10 MB str", HUGE),
    ("empty str", ""),
    ("2**200", 2**200),
    ("-2**200", -(2**200)),
    ("-1", -1),
    ("2**63", 2**63),
    ("u64 max", 2**64 - 1),
    ("i64 max", 2**63 - 1),
    ("i64 min", -(2**63)),
    ("None", None),
    ("float", 1.5),
    ("bytes not UTF-8", b"\xff\xfe{"),
    ("object", object()),
    ("deep dict", _deep(10_000)),
    ("cyclic", _cyclic()),
    ("list of lone surrogates", [LONE, LONE]),
    ("tuple of pairs with surrogates", [(LONE, 2**200)]),
    ("dict with surrogate", {"type": LONE, LONE: 1}),
]

SEED = base64.b64encode(bytes(range(32))).decode().rstrip("=")


def _stub_tree() -> ast.Module:
    text = importlib.resources.files("servership").joinpath("_native.pyi").read_text()
    return ast.parse(text)


def _annotation(arg: ast.arg) -> str:
    return ast.unparse(arg.annotation) if arg.annotation is not None else ""


class Param:
    def __init__(self, arg: ast.arg, has_default: bool, keyword_only: bool) -> None:
        self.name = arg.arg
        self.annotation = _annotation(arg)
        self.has_default = has_default
        self.keyword_only = keyword_only


def _params(fn: ast.FunctionDef) -> list[Param]:
    args = fn.args
    positional = args.posonlyargs + args.args
    first_default = len(positional) - len(args.defaults)
    out = [Param(a, i >= first_default, False) for i, a in enumerate(positional)]
    out += [Param(a, d is not None, True) for a, d in zip(args.kwonlyargs, args.kw_defaults)]
    return [p for p in out if p.name not in ("self", "cls")]


class Target:
    """One callable: a function, a constructor, a static method or an instance method."""

    def __init__(self, owner: str | None, fn: ast.FunctionDef, kind: str) -> None:
        self.owner = owner
        self.name = fn.name
        self.kind = kind
        self.params = _params(fn)

    def __repr__(self) -> str:
        return f"{self.owner}.{self.name}" if self.owner else self.name

    def resolve(self) -> Callable[..., Any]:
        if self.owner is None:
            return getattr(_native, self.name)
        cls = getattr(_native, self.owner)
        if self.kind == "new":
            return cls  # type: ignore[no-any-return]
        if self.kind == "static":
            return getattr(cls, self.name)  # type: ignore[no-any-return]
        return getattr(FACTORIES[self.owner](), self.name)  # type: ignore[no-any-return]


def _targets() -> list[Target]:
    public = set(servership.__all__)
    out: list[Target] = []
    for node in _stub_tree().body:
        if isinstance(node, ast.FunctionDef) and node.name in public:
            out.append(Target(None, node, "function"))
        elif isinstance(node, ast.ClassDef) and node.name in public:
            if any(isinstance(b, ast.Name) and b.id.endswith("Error") for b in node.bases):
                continue
            for item in node.body:
                if not isinstance(item, ast.FunctionDef):
                    continue
                decorators = {ast.unparse(d) for d in item.decorator_list}
                if "property" in decorators:
                    continue
                if item.name == "__new__":
                    out.append(Target(node.name, item, "new"))
                elif item.name.startswith("__"):
                    continue  # __eq__, __len__...: no hostile argument to give
                elif "staticmethod" in decorators:
                    out.append(Target(node.name, item, "static"))
                else:
                    out.append(Target(node.name, item, "method"))
    return [t for t in out if t.params]


# A plausible value per parameter, so the hostile value is the one the call trips over.
def _plausible(p: Param) -> Any:
    name, ann = p.name, p.annotation
    objects: dict[str, Callable[[], Any]] = {
        "VerifyKey": lambda: FACTORIES["VerifyKey"](),
        "SigningKey": lambda: FACTORIES["SigningKey"](),
        "TagStore": lambda: FACTORIES["TagStore"](),
        "RoomView": lambda: FACTORIES["RoomView"](),
        "NegotiationPolicy": lambda: FACTORIES["NegotiationPolicy"](),
        "OperatorPolicy": lambda: FACTORIES["OperatorPolicy"](),
    }
    for key, make in objects.items():
        if ann.startswith(key) or (ann.startswith("VerifyKey |") and key == "VerifyKey"):
            return make()
    if name in ("path",):
        return os.path.join(_TMP, f"{name}-{os.getpid()}-{threading.get_ident()}.db")
    if ann.startswith("bool"):
        return False
    if ann.startswith("int"):
        return 1000
    if ann.startswith("bytes") and "str" not in ann:
        return b"{}"
    if "Sequence[tuple[str, int]]" in ann:
        return [("10", 1)]
    if ann.startswith(("Sequence[str]", "Iterable[str]")):
        return ["!r:x.org"]
    if "_Research" in ann:
        return None
    if ann.startswith("str"):
        text = {
            "room_id": "!r:x.org",
            "room": "!r:x.org",
            "user_id": "@u:x.org",
            "pseudouser": "@:x.org",
            "room_version": "10",
            "key_id": "ed25519:a",
            "seed": SEED,
            "method": "GET",
            "uri": "/x",
            "membership": "join",
            "policy": "either",
            "mode": "moderator",
        }
        return text.get(name, "x.org")
    return {}


_TMP = ""


@pytest.fixture(scope="module", autouse=True)
def _in_tmp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    # Hostile paths (a lone surrogate is a legal POSIX file name byte) land here, not in the tree.
    global _TMP
    tmp = tmp_path_factory.mktemp("hostile")
    _TMP = str(tmp)
    old = os.getcwd()
    os.chdir(tmp)
    yield
    os.chdir(old)


FACTORIES: dict[str, Callable[[], Any]] = {
    "SigningKey": lambda: _native.SigningKey.from_seed("ed25519:a", SEED),
    "VerifyKey": lambda: _native.SigningKey.from_seed("ed25519:a", SEED).verify_key(),
    "KeyRing": lambda: _native.KeyRing(),
    "TagStore": lambda: _native.TagStore(os.path.join(_TMP, "tags.db"), "x.org"),
    "Responder": lambda: _native.Responder(FACTORIES["TagStore"]()),
    "Requester": lambda: _native.Requester("y.org", ["!r:x.org"]),
    "RoomView": lambda: _native.RoomView("!r:x.org", "x.org", [("@a:y.org", "join", "@a:y.org")]),
    "Audit": lambda: _native.Audit.plan(FACTORIES["RoomView"](), ["y.org"], 5),
    "RoomState": lambda: _native.RoomState.from_events([]),
    "OperatorPolicy": lambda: _native.OperatorPolicy(),
    "PeekTracker": lambda: _native.PeekTracker("x.org"),
    "NegotiationPolicy": lambda: _native.NegotiationPolicy([("10", 1)]),
    "Negotiation": lambda: _native.Negotiation.initiate(FACTORIES["NegotiationPolicy"](), "x.org", "y.org")[0],
    "JoinGate": lambda: _native.JoinGate(),
    "ServerAcl": lambda: _native.ServerAcl({"allow": ["*"]}),
    "KnockStore": lambda: _native.KnockStore(os.path.join(_TMP, "knocks.db"), 1000),
    "AuditQueue": lambda: _native.AuditQueue(os.path.join(_TMP, "audits.db")),
}

TARGETS = _targets()


def test_the_table_covers_every_public_callable() -> None:
    names = {repr(t) for t in TARGETS}
    # Spot checks that the stub walk found functions, constructors, static and instance methods.
    for expected in ("check_invite", "TagStore.__new__", "UserId.parse", "TagStore.record_join"):
        assert expected in names, expected
    missing = {t.owner for t in TARGETS if t.kind == "method" and t.owner not in FACTORIES}
    assert not missing, f"add a factory to FACTORIES for {sorted(x for x in missing if x)}"
    assert len(TARGETS) > 80


def _call(target: Target, index: int, value: Any) -> BaseException | None:
    fn = target.resolve()
    args: list[Any] = []
    kwargs: dict[str, Any] = {}
    for i, p in enumerate(target.params):
        v = value if i == index else _plausible(p)
        if p.keyword_only:
            kwargs[p.name] = v
        else:
            args.append(v)
    try:
        fn(*args, **kwargs)
    except BaseException as e:  # noqa: BLE001 - the point is to see everything
        return e
    return None


def _cases() -> list[Any]:
    cases = []
    for t in TARGETS:
        for i, p in enumerate(t.params):
            cases.append(pytest.param(t, i, id=f"{t!r}({p.name})"))
    return cases


@pytest.mark.parametrize(("target", "index"), _cases())
def test_hostile_argument(target: Target, index: int) -> None:
    param = target.params[index]
    for label, value in HOSTILE:
        error = _call(target, index, value)
        where = f"{target!r}({param.name}={label})"
        if error is None:
            continue
        assert isinstance(error, (servership.ServershipError, TypeError)), (
            f"{where} raised {type(error).__module__}.{type(error).__name__}: {error}"
        )
        if isinstance(error, servership.ServershipError):
            assert error.errcode.startswith("M_"), where
            assert 400 <= error.http_status <= 599, where
        ann = param.annotation
        # A value of the declared type is never a TypeError: lone surrogates in a `str`
        # parameter and out-of-range integers in an `int` parameter are Matrix errors.
        if ann in ("str", "str | None") and label == "lone surrogate":
            assert isinstance(error, servership.ServershipError), f"{where}: {error!r}"
        if ann in ("int", "int | None") and label in ("2**200", "-2**200"):
            assert isinstance(error, servership.ServershipError), f"{where}: {error!r}"


def test_lone_surrogate_names_the_argument() -> None:
    with pytest.raises(servership.InvalidParamError) as info:
        servership.participation_tag("x.org", LONE)
    assert info.value.errcode == "M_INVALID_PARAM"
    assert info.value.http_status == 400
    assert "lone surrogate" in str(info.value)
    assert any("room_id" in note for note in getattr(info.value, "__notes__", []))


def test_out_of_range_integer_names_the_range() -> None:
    store = FACTORIES["TagStore"]()
    with pytest.raises(servership.InvalidParamError, match="from -9223372036854775808"):
        store.record_join("!r:x.org", 2**64)
    with pytest.raises(servership.InvalidParamError, match="from 0 to"):
        _native.Requester("y.org", ["!r:x.org"], -1)
    # The type rule still holds: a float is a TypeError, not a Matrix error.
    with pytest.raises(TypeError):
        store.record_join("!r:x.org", 1.5)


def test_nested_elements_name_their_place() -> None:
    triple = ("@a:y.org", "join", "@a:y.org")
    with pytest.raises(servership.InvalidParamError, match=r"history\[1\]\[0\]"):
        _native.RoomView("!r:x.org", "x.org", [triple, (LONE, "join", "@a:y.org")])
    with pytest.raises(servership.InvalidParamError, match=r"history\[0\]\[2\]"):
        _native.RoomView("!r:x.org", "x.org", [("@a:y.org", "leave", LONE)])
    with pytest.raises(servership.InvalidParamError, match=r"candidates\[0\]\[0\]"):
        _native.Audit.choose(FACTORIES["RoomView"](), [(LONE, 1)], 5, 1)
    with pytest.raises(servership.InvalidParamError, match=r"candidates\[0\]\[1\]"):
        _native.Audit.choose(FACTORIES["RoomView"](), [("y.org", 2**64)], 5, 1)


# --- callbacks -------------------------------------------------------------------------------

# The research callback is consulted only when the room's state is known.
STATE = [
    {"type": "m.room.create", "state_key": "", "sender": "@m:x.org", "content": {"room_version": "11"}}
]


def test_research_callback_that_raises_propagates_unchanged() -> None:
    class Boom(Exception):
        pass

    def research(room: str, server: str) -> str:
        raise Boom(room)

    with pytest.raises(Boom):
        servership.decide_knock("!r:x.org", "y.org", STATE, research=research)


@pytest.mark.parametrize(
    "garbage", [42, b"accept", ("accept",), ("accept", 1), "maybe", "accept\udc80", object()]
)
def test_research_callback_returning_garbage_is_a_clear_error(garbage: Any) -> None:
    with pytest.raises((TypeError, ValueError)) as info:
        servership.decide_knock("!r:x.org", "y.org", STATE, research=lambda r, s: garbage)
    assert "research callback" in str(info.value)


def test_research_callback_may_reenter_the_library() -> None:
    calls = []

    def research(room: str, server: str) -> str:
        calls.append(servership.participation_tag(server, room))
        inner = servership.decide_knock(room, server, STATE, research=lambda r, s: "deny")
        assert inner.decision.reason == "research_denied"
        return "accept"

    decision = servership.decide_knock("!r:x.org", "y.org", STATE, research=research)
    assert len(calls) == 1
    assert decision.decision.reason == "research_accepted"


# --- threads ---------------------------------------------------------------------------------


def test_tag_store_shared_by_threads_while_len_is_read() -> None:
    store = _native.TagStore(os.path.join(_TMP, "threads.db"), "x.org")
    errors: list[BaseException] = []
    stop = threading.Event()

    def writer(n: int) -> None:
        try:
            for i in range(40):
                store.record_join(f"!r{n}-{i}:x.org", 1000 + i)
                store.contains_room(f"!r{n}-{i}:x.org")
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    def reader() -> None:
        try:
            while not stop.is_set():
                len(store)
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    watcher = threading.Thread(target=reader)
    watcher.start()
    writers = [threading.Thread(target=writer, args=(n,)) for n in range(8)]
    for t in writers:
        t.start()
    for t in writers:
        t.join(timeout=60)
    stop.set()
    watcher.join(timeout=60)
    assert not any(t.is_alive() for t in writers + [watcher]), "deadlock"
    assert not errors, errors
    assert len(store) == 8 * 40


def test_knock_store_and_tracker_shared_by_threads() -> None:
    knocks = _native.KnockStore(os.path.join(_TMP, "knock-threads.db"), 10_000)
    tracker = _native.PeekTracker("x.org")
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            for i in range(20):
                knocks.record(f"!r{i}:x.org", f"s{n}.org", 1000)
                tracker.request_peek(f"!r{i}:x.org", f"@u{n}:x.org", True)
                len(knocks)
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not any(t.is_alive() for t in threads), "deadlock"
    assert not errors, errors
    assert len(knocks) == 8 * 20
