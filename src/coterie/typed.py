"""Typed contracts: handlers and calls with msgspec Structs or pydantic v2 models.

Design: the wire does not change. A request is the same plain JSON object with
a ``type``, and a reply the same JSON value, whoever sends them: a Node cote
requester, an untyped Python one, or a typed call. Types live at the two ends:

- **Responder.** :meth:`Responder.on <coterie.Responder.on>` asks
  :func:`typed_handler` once, at registration, whether the handler's first
  parameter is annotated with a ``msgspec.Struct`` or a pydantic
  ``BaseModel`` (string annotations are resolved with
  :func:`typing.get_type_hints`). If so it registers a wrapper that converts
  the request dict into a validated instance, calls the handler, and turns the
  model it returns (or models inside a list or dict) back into plain JSON
  values. A request that does not convert never reaches the handler: its caller
  gets the ``invalid`` error of :func:`coterie.protocol.messages.invalid_refusal`,
  ``{"message": "$.cardno: expected str, got int", "name": "ValidationError",
  "code": "invalid"}``; a Python caller sees a :class:`~coterie.RemoteError`
  whose ``code`` is ``"invalid"``. A handler without a model is registered as
  it is: the untyped path per request is unchanged.
- **Requester.** A request model names its request type with a class variable
  ``type`` and its answer's type by subclassing :class:`Contract`::

      class Validate(msgspec.Struct, Contract[bool]):
          type: ClassVar[str] = "validate"
          cardno: str

      ok = await requester.call(Validate(cardno="4111"))  # mypy: bool

  :meth:`Requester.call <coterie.Requester.call>` sends
  ``{"type": "validate", "cardno": "4111"}`` and checks that the answer is a
  ``bool`` (converting it to a model when the answer type is one);
  ``returns=`` gives or overrides the answer type, for dict requests too.

Nothing here imports msgspec or pydantic: a class is recognised through the
modules already in :data:`sys.modules` (a model's library was imported to
define it), so unused, typed contracts load nothing and cost nothing. The
answer check for a plain type (``bool``, ``dict``, ...) is an ``isinstance``
test; a generic one (``list[int]``) needs msgspec or pydantic, whichever is
installed.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import logging
import sys
import types
import typing
from collections.abc import Awaitable, Callable
from typing import Any, ClassVar, Generic, TypeVar

from coterie.errors import RemoteError
from coterie.protocol.messages import field_path, invalid_refusal, json_kind

__all__ = ["Contract", "answer_checker", "request_body", "typed_handler"]

log = logging.getLogger("coterie.typed")

R_co = TypeVar("R_co", covariant=True)

Converter = Callable[[Any], Any]

#: Results sent as they are: no model can hide inside them.
_SCALARS = frozenset({str, int, float, bool, type(None)})
#: Answer types checked with ``isinstance`` (JSON gives an int for a float).
_PLAIN_ANSWERS: dict[Any, tuple[type, ...]] = {
    bool: (bool,),
    int: (int,),
    float: (float, int),
    str: (str,),
    dict: (dict,),
    list: (list,),
    type(None): (type(None),),
    None: (type(None),),
}


class Contract(Generic[R_co]):
    """Mixin for a request model whose answer is an ``R_co``.

    Subclass it next to ``msgspec.Struct`` or pydantic's ``BaseModel`` and
    name the request type in a class variable ``type``; then
    :meth:`Requester.call <coterie.Requester.call>` returns an ``R_co``, for
    mypy and at run time. It adds no field and no state.

    Attributes:
        type: The request type the model is sent as (the wire's ``type``).
    """

    __slots__ = ()
    type: ClassVar[str]


# -- which library a class belongs to -------------------------------------------------


def _library(cls: Any) -> str | None:
    """``"msgspec"`` or ``"pydantic"`` when ``cls`` is one of their model classes."""
    if not isinstance(cls, type):
        return None
    msgspec = sys.modules.get("msgspec")
    if msgspec is not None and issubclass(cls, msgspec.Struct):
        return "msgspec"
    pydantic = sys.modules.get("pydantic")
    if pydantic is not None and issubclass(cls, pydantic.BaseModel):
        return "pydantic"
    return None


def _libraries_in(hint: Any) -> set[str]:
    """The model libraries ``hint`` mentions, ``list[Card]`` and ``Card | None`` included."""
    found = set()
    library = _library(hint)
    if library is not None:
        found.add(library)
    for arg in typing.get_args(hint):
        found |= _libraries_in(arg)
    return found


# -- the responder side --------------------------------------------------------------


def _first_parameter(fn: Callable[..., Any]) -> tuple[str, Any] | None:
    """The name and raw annotation of ``fn``'s first parameter, if it has both."""
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):  # a builtin or C callable: nothing to read
        return None
    for parameter in signature.parameters.values():
        if parameter.kind in (parameter.VAR_KEYWORD, parameter.KEYWORD_ONLY):
            return None
        if parameter.annotation is parameter.empty:
            return None
        return parameter.name, parameter.annotation
    return None


def _hints(fn: Callable[..., Any]) -> dict[str, Any]:
    """``fn``'s resolved annotations (a callable object's ``__call__``'s)."""
    target = fn if inspect.isroutine(fn) else type(fn).__call__
    return typing.get_type_hints(inspect.unwrap(target))


def typed_handler(request_type: str, fn: Callable[..., Any]) -> Callable[[Any], Any]:
    """The handler to register for ``fn``: a validating wrapper, or ``fn`` itself.

    Decided once, here: ``fn`` is wrapped only when its first parameter is
    annotated with a msgspec ``Struct`` or a pydantic ``BaseModel``. A string
    annotation that cannot be resolved is logged at WARNING, and ``fn`` is
    registered as it is.
    """
    first = _first_parameter(fn)
    if first is None:
        return fn
    name, raw = first
    if isinstance(raw, str):  # from __future__ import annotations: resolve it
        try:
            hint = _hints(fn).get(name)
        except Exception as exc:  # noqa: BLE001 - any failure of the user's annotations
            log.warning(
                "handler %r for %r: the annotation %r of its first parameter cannot be "
                "resolved (%s: %s), so it gets the plain request dict; define the model "
                "at module level to receive a validated instance",
                getattr(fn, "__qualname__", fn),
                request_type,
                raw,
                type(exc).__name__,
                exc,
            )
            return fn
    else:
        hint = raw
    library = _library(hint)
    if library is None:
        return fn
    return _wrap(fn, _decoder(library, hint), _encoder(library))


def _decoder(library: str, model: Any) -> Converter:
    """A function from a request dict to a ``model`` instance, raising the ``invalid`` error."""
    if library == "msgspec":
        import msgspec

        config = model.__struct_config__
        fields = set(model.__struct_fields__)
        # Only a Struct that forbids unknown fields is shown the request without
        # "type" and the reserved fields (a copy per request); others ignore them.
        strip = config.forbid_unknown_fields
        error = msgspec.ValidationError
        convert = msgspec.convert

        def decode(request: Any) -> Any:
            if strip:
                request = {k: v for k, v in request.items() if k in fields}
            try:
                return convert(request, model)
            except error as exc:
                raise RemoteError(invalid_refusal([_msgspec_problem(str(exc))])) from None

        return decode

    import pydantic

    extra = model.model_config.get("extra")
    pydantic_fields = set(model.model_fields)
    validate = model.model_validate
    pydantic_error = pydantic.ValidationError

    def decode_pydantic(request: Any) -> Any:
        if extra == "forbid":
            request = {k: v for k, v in request.items() if k in pydantic_fields}
        try:
            return validate(request)
        except pydantic_error as exc:
            raise RemoteError(invalid_refusal(_pydantic_problems(exc))) from None

    return decode_pydantic


def _msgspec_problem(message: str) -> tuple[str, str]:
    """A msgspec message as ``(path, what)``.

    ``Expected `str`, got `int` - at `$.cardno``` is ``("$.cardno", "expected
    str, got int")``; a missing field is ``("$.cardno", "field required")``.
    """
    what, _, where = message.partition(" - at ")
    path = where.strip("`") or "$"
    what = what.replace("`", "")
    prefix = "Object missing required field "
    if what.startswith(prefix):  # "$.card: field required", as pydantic says it
        path = f"{path}.{what[len(prefix) :]}"
        what = "field required"
    return path, what[:1].lower() + what[1:]


def _pydantic_problems(exc: Any) -> list[tuple[str, str]]:
    """pydantic's errors as ``(path, what)`` pairs: ``($.cardno, input should be ..., got int)``."""
    problems = []
    for error in exc.errors(include_url=False):
        what = str(error["msg"])
        what = what[:1].lower() + what[1:]
        if error["type"] != "missing":
            what = f"{what}, got {json_kind(error.get('input'))}"
        problems.append((field_path(error["loc"]), what))
    return problems


def _encoder(library: str) -> Converter:
    """What turns a handler's result into plain JSON values: models converted.

    A list or dict is converted too, whatever the return annotation says: a
    model may hide inside it. Scalars come out as they are.

    Raises:
        TypeError: (from the converter) When a result holds a value JSON
            cannot carry.
    """
    if library == "msgspec":
        import msgspec

        to_builtins = msgspec.to_builtins

        def encode(result: Any) -> Any:
            try:
                return to_builtins(result)
            except TypeError as exc:
                if _library(result.__class__) == "pydantic":  # a pydantic model after all
                    return _pydantic_plain(result)
                raise TypeError(f"the handler's result cannot be sent as JSON: {exc}") from None

        return encode
    return _pydantic_plain


def _pydantic_plain(result: Any) -> Any:
    from pydantic_core import PydanticSerializationError, to_jsonable_python

    try:
        return to_jsonable_python(result)
    except PydanticSerializationError as exc:
        raise TypeError(f"the handler's result cannot be sent as JSON: {exc}") from None


@functools.lru_cache(maxsize=512)
def _awaitable_class(cls: type) -> bool:
    """Whether instances of ``cls`` may be awaitable (asked once per class)."""
    return issubclass(cls, Awaitable) or issubclass(cls, types.GeneratorType)


def _wrap(fn: Callable[..., Any], decode: Converter, encode: Converter) -> Converter:
    """``fn`` behind ``decode`` (and ``encode`` for its result): sync or async as ``fn`` is."""
    if inspect.iscoroutinefunction(fn):

        async def typed_async(request: Any) -> Any:
            return encode(await fn(decode(request)))

        handler: Converter = typed_async
    else:

        def typed(request: Any) -> Any:
            result = fn(decode(request))
            cls = result.__class__
            if cls in _SCALARS:
                return result
            # A class check, cached: inspect.isawaitable costs more than the encoding.
            if _awaitable_class(cls) and inspect.isawaitable(result):
                return _encoded_later(result, encode)
            return encode(result)

        handler = typed
    handler.__name__ = getattr(fn, "__name__", handler.__name__)
    handler.__qualname__ = getattr(fn, "__qualname__", handler.__qualname__)
    handler.__doc__ = fn.__doc__
    return handler


async def _encoded_later(pending: Awaitable[Any], encode: Converter) -> Any:
    return encode(await pending)


# -- the requester side --------------------------------------------------------------


def request_body(request: Any) -> dict[str, Any]:
    """The request dict to send for ``request``: a model's fields and its ``type``.

    A dict is sent as it is; a model as its fields in JSON form, with
    ``type`` first from the class variable (or a ``type`` field of its own).

    Raises:
        TypeError: When ``request`` is neither a dict nor a model, has no
            request type, or holds a value JSON cannot carry.
    """
    if request.__class__ is dict:
        return typing.cast(dict[str, Any], request)
    cls = request.__class__
    library = _library(cls)
    if library is None:
        raise TypeError(
            f"a request must be a dict or a msgspec.Struct / pydantic BaseModel, got {cls.__name__}"
        )
    try:
        if library == "msgspec":
            import msgspec

            fields = msgspec.to_builtins(request)
        else:
            fields = request.model_dump(mode="json")
    except Exception as exc:  # noqa: BLE001 - each library's own encoding errors
        raise TypeError(f"cannot send {cls.__name__} as JSON: {exc}") from None
    request_type = fields.get("type", getattr(cls, "type", None))
    if not isinstance(request_type, str) or not request_type:
        raise TypeError(
            f"{cls.__name__} has no request type: add `type: ClassVar[str] = "
            f"'<request type>'` to the class"
        )
    return {"type": request_type, **fields}


def _contract_answer(cls: type) -> Any:
    """The ``R`` of the first ``Contract[R]`` among ``cls``'s bases, else ``None``."""
    for klass in cls.__mro__:
        for base in getattr(klass, "__orig_bases__", ()):
            if typing.get_origin(base) is Contract:
                (answer,) = typing.get_args(base)
                if isinstance(answer, typing.ForwardRef):  # Contract["Receipt"]
                    module = sys.modules[klass.__module__]
                    answer = eval(answer.__forward_arg__, vars(module))
                return None if isinstance(answer, TypeVar) else answer
    return None


def answer_checker(request: Any, returns: Any) -> Converter | None:
    """What checks (and converts) the answer to ``request``; ``None`` checks nothing.

    The answer type is ``returns``, else the ``R`` of the request model's
    ``Contract[R]``. ``Any`` and ``object`` accept every answer.

    Raises:
        TypeError: When the answer type needs msgspec or pydantic and neither
            is installed.
    """
    if returns is None:
        cls = request.__class__
        if cls is dict:
            return None
        returns = _contract_answer(cls)
        if returns is None:
            return None
    return _checker(returns)


@functools.lru_cache(maxsize=256)
def _checker(returns: Any) -> Converter | None:
    if returns is Any or returns is object:
        return None
    name = returns.__name__ if isinstance(returns, type) else repr(returns)
    plain = _PLAIN_ANSWERS.get(returns)
    if plain is not None:

        def check_plain(answer: Any) -> Any:
            if isinstance(answer, plain) and not (plain != (bool,) and answer.__class__ is bool):
                return answer
            raise TypeError(
                f"the answer is not a {name}: $: expected {name}, got {json_kind(answer)}"
            )

        return check_plain
    libraries = _libraries_in(returns)
    library = "pydantic" if libraries == {"pydantic"} else "msgspec" if libraries else None
    for candidate in (library,) if library else ("msgspec", "pydantic"):
        try:
            importlib.import_module(candidate)
        except ImportError:
            continue
        return _library_checker(candidate, returns, name)
    raise TypeError(
        f"checking an answer against {name} needs coterie[msgspec] or coterie[pydantic]"
    )


def _library_checker(library: str, returns: Any, name: str) -> Converter:
    if library == "msgspec":
        import msgspec

        def check_msgspec(answer: Any) -> Any:
            try:
                return msgspec.convert(answer, returns)
            except msgspec.ValidationError as exc:
                path, what = _msgspec_problem(str(exc))
                raise TypeError(f"the answer is not a {name}: {path}: {what}") from None

        return check_msgspec

    import pydantic

    adapter = pydantic.TypeAdapter(returns)

    def check_pydantic(answer: Any) -> Any:
        try:
            return adapter.validate_python(answer)
        except pydantic.ValidationError as exc:
            listed = "; ".join(f"{p}: {w}" for p, w in _pydantic_problems(exc))
            raise TypeError(f"the answer is not a {name}: {listed}") from None

    return check_pydantic
