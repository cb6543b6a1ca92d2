"""Typed stubs for the native module (checked by ``python -m mypy.stubtest servership._native``)."""

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final, TypeAlias, Union, final

__version__: Final[str]
MAX_DEPTH: Final[int]
MAX_SAFE_INTEGER: Final[int]

__all__ = [
    "BadJsonError",
    "ForbiddenError",
    "IncompatibleRoomVersionError",
    "InternalError",
    "InvalidParamError",
    "LimitExceededError",
    "MAX_DEPTH",
    "MAX_SAFE_INTEGER",
    "NotFoundError",
    "ServershipError",
    "SigningKey",
    "StorageError",
    "TooLargeError",
    "UnauthorizedError",
    "VerifyKey",
    "__version__",
    "canonical_json",
    "content_hash",
    "event_id",
    "is_server_pseudouser",
    "redact",
    "reference_hash",
    "room_id_from_create_event",
    "canonicalize",
    "parse_json",
    "sign_json",
    "verify_json",
]

_JsonValue: TypeAlias = Union[
    None, bool, int, str, Sequence["_JsonValue"], Mapping[str, "_JsonValue"]
]
_JsonText: TypeAlias = Union[bytes, bytearray, str]

class ServershipError(Exception):
    errcode: str
    http_status: int
    matrix_error: dict[str, Any] | None

class BadJsonError(ServershipError): ...
class InvalidParamError(ServershipError): ...
class TooLargeError(ServershipError): ...

class LimitExceededError(ServershipError):
    retry_after_ms: int | None

class ForbiddenError(ServershipError): ...
class UnauthorizedError(ServershipError): ...

class IncompatibleRoomVersionError(ServershipError):
    room_version: str | None

class NotFoundError(ServershipError): ...
class InternalError(ServershipError): ...
class StorageError(InternalError): ...

def canonical_json(value: _JsonValue) -> bytes: ...
def canonicalize(data: _JsonText) -> bytes: ...
def parse_json(data: _JsonText) -> Any: ...

@final
class SigningKey:
    @staticmethod
    def from_seed(key_id: str, seed: str) -> SigningKey: ...
    @staticmethod
    def from_synapse_key_line(line: str) -> SigningKey: ...
    @property
    def key_id(self) -> str: ...
    @property
    def public_key(self) -> str: ...
    def verify_key(self) -> VerifyKey: ...
    def sign(self, message: bytes) -> str: ...

@final
class VerifyKey:
    def __new__(cls, key_id: str, public_key: str) -> VerifyKey: ...
    @property
    def key_id(self) -> str: ...
    @property
    def public_key(self) -> str: ...
    def verify(self, message: bytes, signature: str) -> None: ...

def sign_json(
    obj: Mapping[str, _JsonValue] | _JsonText, server_name: str, signing_key: SigningKey
) -> dict[str, Any]: ...
def verify_json(
    obj: Mapping[str, _JsonValue] | _JsonText,
    server_name: str,
    verify_key: VerifyKey | Iterable[VerifyKey],
) -> None: ...

def event_id(event: Mapping[str, _JsonValue] | _JsonText, room_version: str) -> str: ...
def room_id_from_create_event(event: Mapping[str, _JsonValue] | _JsonText) -> str: ...
def redact(event: Mapping[str, _JsonValue] | _JsonText, room_version: str) -> dict[str, Any]: ...
def content_hash(event: Mapping[str, _JsonValue] | _JsonText) -> str: ...
def reference_hash(event: Mapping[str, _JsonValue] | _JsonText, room_version: str) -> str: ...
def is_server_pseudouser(user_id: str) -> bool: ...
