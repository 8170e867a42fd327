"""Signatures and work-flows: chain, group, chord, chunks, xmap, xstarmap (Celery's canvas).

A :class:`Signature` is a dict (task name, args, kwargs, options, ``subtask_type``), so it
travels inside messages and comes back as the right type (:meth:`Signature.from_dict`).
Composition follows Celery's upgrade rules: ``task | task`` and ``task | group`` make a
chain, ``group | task`` a chord, a chain ending in a group followed by a task ends in a
chord, a chord followed by a task gets it appended to its body.

How they run: every id is frozen before anything is sent. A chain sends its first step
with the rest in the ``chain`` option (reversed, next last, as Celery's ``request.chain``);
the worker that finishes a step sends the next one with the value. A group sends its members
in one pipelined round trip. A chord encodes its body's messages at once, keeps them with
the header's size in Redis (:mod:`multiq.chordstate`), and sends the header; the header task
that completes it sends the body in the same write as its result.
"""
from __future__ import annotations

import copy
import operator
from functools import reduce
from typing import TYPE_CHECKING, Any, Callable, Dict, Iterable, List, Optional, Sequence

from multiq import _state

if TYPE_CHECKING:
    from multiq.app import MultiQ
    from multiq.result import AsyncResult


_uuid = _state.new_id
_current_app = _state.current_app


def _is_list(value: Any) -> bool:
    return isinstance(value, (list, tuple)) or (
        not isinstance(value, (dict, str, bytes)) and hasattr(value, "__iter__"))


class Signature(dict):
    """One task call, kept for later: ``add.s(2, 2)``, ``signature("tasks.add", (2, 2))``."""

    TYPES: Dict[str, Any] = {}  # subtask_type -> class, for from_dict

    def __init__(
        self, task: Any = None, args: Optional[Sequence[Any]] = None,
        kwargs: Optional[Dict[str, Any]] = None, options: Optional[Dict[str, Any]] = None,
        type: Any = None, subtask_type: Optional[str] = None, immutable: bool = False,  # noqa: A002
        app: Optional[MultiQ] = None, **extra: Any,
    ) -> None:
        self._app = app
        if isinstance(task, dict):  # rebuilt from a received dict
            super().__init__(task)
            self["args"] = list(self.get("args") or ())
            self["kwargs"] = dict(self.get("kwargs") or {})
            self["options"] = dict(self.get("options") or {})
            self.setdefault("subtask_type", None)
            self["immutable"] = bool(self.get("immutable", False))
            return
        opts = dict(options or {})
        opts.update(extra)
        immutable = bool(opts.pop("immutable", immutable))
        if task is None and type is not None:
            task = type
        if app is None:
            self._app = getattr(task, "app", None)
        super().__init__(
            task=getattr(task, "name", task), args=list(args or ()), kwargs=dict(kwargs or {}),
            options=opts, subtask_type=subtask_type, immutable=immutable,
        )

    @classmethod
    def register_type(cls, name: Optional[str] = None) -> Callable[[type], type]:
        def register(klass: type) -> type:
            cls.TYPES[name or klass.__name__] = klass
            return klass
        return register

    @classmethod
    def from_dict(cls, d: Dict[str, Any], app: Optional[MultiQ] = None) -> Signature:
        """The signature a dict describes, as the type its ``subtask_type`` names."""
        kind = d.get("subtask_type")
        if kind:
            target = Signature.TYPES.get(kind)
            if target is None:
                raise ValueError(f"Unknown signature type {kind!r}")
            return target.from_dict(d, app=app)  # type: ignore[no-any-return,unused-ignore]
        return Signature(d, app=app)

    # -- fields ------------------------------------------------------------------------

    task = property(lambda self: self["task"])
    name = task
    args = property(lambda self: self["args"])
    kwargs = property(lambda self: self["kwargs"])
    options = property(lambda self: self["options"])
    subtask_type = property(lambda self: self.get("subtask_type"))

    @property
    def immutable(self) -> bool:
        return bool(self.get("immutable", False))

    @property
    def id(self) -> Optional[str]:
        task_id: Optional[str] = self["options"].get("task_id")
        return task_id

    @property
    def app(self) -> MultiQ:
        return self._app or _current_app()

    @app.setter
    def app(self, app: MultiQ) -> None:
        self._app = app

    @property
    def type(self) -> Any:
        """The task this signature calls (from the app's registry)."""
        return self.app.tasks[self["task"]]

    # -- making new ones ---------------------------------------------------------------

    def _merge(self, args: Optional[Sequence[Any]] = None,
               kwargs: Optional[Dict[str, Any]] = None,
               options: Optional[Dict[str, Any]] = None) -> tuple:
        """(args, kwargs, options) with partial ``args`` first, unless immutable."""
        opts = {**self["options"], **options} if options else self["options"]
        if self.immutable:
            return self["args"], self["kwargs"], opts
        call_args = [*args, *self["args"]] if args else self["args"]
        call_kwargs = {**self["kwargs"], **kwargs} if kwargs else self["kwargs"]
        return call_args, call_kwargs, opts

    def clone(self, args: Optional[Sequence[Any]] = None,
              kwargs: Optional[Dict[str, Any]] = None, **options: Any) -> Signature:
        """A deep copy, with partial ``args`` first, ``kwargs`` and options merged in."""
        sig = copy.deepcopy(self)
        if args or kwargs or options:
            immutable = options.pop("immutable", None)
            sig["args"], sig["kwargs"], sig["options"] = (
                list(v) if isinstance(v, (list, tuple)) else dict(v)
                for v in sig._merge(args, kwargs, options))
            if immutable is not None:
                sig["immutable"] = bool(immutable)
        return sig

    partial = clone

    def _fresh(self) -> Signature:
        """A copy to freeze and send, so sending this signature again gets new ids (ids
        frozen before are kept, as in Celery). Cheaper than :meth:`clone`."""
        if type(self) is Signature:
            return Signature(dict(self), app=self._app)
        return type(self).from_dict(dict(self), app=self._app)

    def __deepcopy__(self, memo: Dict[int, Any]) -> Signature:
        return type(self).from_dict(copy.deepcopy(dict(self), memo), app=self._app)

    def __reduce__(self) -> Any:
        return (_rebuild, (dict(self),))

    def set(self, immutable: Optional[bool] = None, **options: Any) -> Signature:
        """Set options (``queue``, ``countdown``...) in place; returns the signature."""
        if immutable is not None:
            self["immutable"] = bool(immutable)
        self["options"].update(options)
        return self

    def set_immutable(self, immutable: bool) -> None:
        self["immutable"] = bool(immutable)

    def replace(self, args: Optional[Sequence[Any]] = None,
                kwargs: Optional[Dict[str, Any]] = None,
                options: Optional[Dict[str, Any]] = None) -> Signature:
        """A copy with ``args``, ``kwargs`` or ``options`` replaced (not merged)."""
        sig = self.clone()
        if args is not None:
            sig["args"] = list(args)
        if kwargs is not None:
            sig["kwargs"] = dict(kwargs)
        if options is not None:
            sig["options"] = dict(options)
        return sig

    def freeze(self, _id: Optional[str] = None, group_id: Optional[str] = None,
               chord: Any = None, root_id: Optional[str] = None,
               parent_id: Optional[str] = None, group_index: Optional[int] = None,
               ) -> AsyncResult:
        """Fix the task id (kept if it has one) and return the result it will have."""
        opts = self["options"]
        task_id = opts.get("task_id")
        if task_id is None:
            task_id = opts["task_id"] = _id or _uuid()
        if root_id:
            opts["root_id"] = root_id
        if parent_id:
            opts["parent_id"] = parent_id
        if group_id:
            opts["group_id"] = group_id
        if group_index is not None:
            opts["group_index"] = group_index
        if chord is not None:
            opts["chord"] = chord
        return self.AsyncResult(task_id)

    def AsyncResult(self, task_id: str) -> AsyncResult:  # noqa: N802 - Celery's name
        from multiq.result import AsyncResult
        return AsyncResult(task_id, app=self.app, task_name=self.get("task"))

    # -- links -------------------------------------------------------------------------

    def link(self, callback: Any) -> Any:
        """Apply ``callback`` with this task's value when it succeeds."""
        self["options"].setdefault("link", []).append(callback)
        return callback

    def link_error(self, errback: Any) -> Any:
        """Apply ``errback`` when this task fails: called in the worker with
        ``(request, exc, traceback)`` when it takes more than one argument, else sent with
        the failed task's id (Celery's rule)."""
        self["options"].setdefault("link_error", []).append(errback)
        return errback

    def on_error(self, errback: Any) -> Signature:
        self.link_error(errback)
        return self

    def flatten_links(self) -> List[Signature]:
        """This signature and, depth first, every ``link`` callback below it."""
        out: List[Signature] = [self]
        for link in self["options"].get("link") or ():
            out += maybe_signature(link, self._app).flatten_links()
        return out

    # -- composing ---------------------------------------------------------------------

    def __or__(self, other: Any) -> Any:
        if isinstance(other, _chain):
            return _chain(self, *other.unchain_tasks(), app=self._app)
        if isinstance(other, group):
            return _chain(self, _maybe_unroll(other), app=self._app)
        if isinstance(other, Signature):
            return _chain(self, other, app=self._app)
        return NotImplemented

    def __invert__(self) -> Any:
        return self.apply_async().get()

    # -- the chord machinery: what completes this signature ----------------------------

    def _tails(self) -> List[Signature]:
        """The task signatures whose completion is this one's (for chord membership)."""
        return [self]

    def _ids(self) -> List[str]:
        """Every frozen task id in this signature (for failing what will not run)."""
        return [self.id] if self.id else []

    # -- running -----------------------------------------------------------------------

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Run the task's function here, with partial arguments merged in."""
        call_args, call_kwargs, _ = self._merge(args, kwargs)
        return self.type(*call_args, **call_kwargs)

    def delay(self, *args: Any, **kwargs: Any) -> Any:
        return self.apply_async(args, kwargs)

    def apply_async(self, args: Optional[Sequence[Any]] = None,
                    kwargs: Optional[Dict[str, Any]] = None, app: Optional[MultiQ] = None,
                    **options: Any) -> Any:
        """Send the call; extra ``args`` go before the signature's own unless immutable."""
        application = app or self.app
        call_args, call_kwargs, opts = self._merge(args, kwargs, options)
        top = _capture_top(application)
        if top is not None and not self.immutable:
            opts = {**opts, "chord_of": top.chord_id}
        task = application.tasks.get(self["task"])
        if task is not None:  # (** copies opts: the signature's own dict is never changed)
            return task.apply_async(call_args, call_kwargs, **opts)
        return application.send_task(self["task"], call_args, call_kwargs, **opts)

    def apply(self, args: Optional[Sequence[Any]] = None,
              kwargs: Optional[Dict[str, Any]] = None, **options: Any) -> Any:
        """Run the task here and now (``Task.apply``)."""
        call_args, call_kwargs, opts = self._merge(args, kwargs, options)
        return self.type.apply(call_args, call_kwargs, **_eager_options(opts))

    def __repr__(self) -> str:
        args = [repr(a) for a in self["args"]]
        args += [f"{k}={v!r}" for k, v in self["kwargs"].items()]
        return f"{'%' if self.immutable else ''}{self['task']}({', '.join(args)})"

    def __json__(self) -> Dict[str, Any]:
        return dict(self)


def _rebuild(d: Dict[str, Any]) -> Signature:
    return Signature.from_dict(d)


def _eager_options(options: Dict[str, Any]) -> Dict[str, Any]:
    """The options ``Task.apply`` reads (the rest only matter to a message)."""
    keep = ("task_id", "link", "link_error", "headers", "throw")
    return {k: v for k, v in options.items() if k in keep}


def signature(varies: Any, *args: Any, **kwargs: Any) -> Signature:
    """A signature from a task name, a task, a signature or its dict (of any type)."""
    app = kwargs.pop("app", None)
    if isinstance(varies, dict):
        if isinstance(varies, Signature):
            return varies.clone() if kwargs.pop("clone", False) else varies
        return Signature.from_dict(varies, app=app)
    kwargs["app"] = app
    return Signature(varies, *args, **kwargs)


subtask = signature


def maybe_signature(value: Any, app: Optional[MultiQ] = None) -> Any:
    """``value`` as a Signature of the right type when it is a dict, else as it is."""
    if isinstance(value, Signature):
        if app is not None and value._app is None:
            value._app = app
        return value
    if isinstance(value, dict):
        return Signature.from_dict(value, app=app)
    return value


def _maybe_unroll(g: group) -> Any:
    """A group of one is that one task."""
    return g.tasks[0] if len(g.tasks) == 1 else g


def _first_app(sigs: Iterable[Any]) -> Optional[MultiQ]:
    for sig in sigs:
        app = getattr(sig, "_app", None)
        if app is not None:
            return app
    return None


# -- chain ------------------------------------------------------------------------------

@Signature.register_type("chain")
class _chain(Signature):  # noqa: N801 - Celery's name
    """Tasks run one after the other, each given the value of the one before."""

    def __init__(self, *tasks: Any, **options: Any) -> None:
        app = options.pop("app", None)
        if len(tasks) == 1 and _is_list(tasks[0]):
            tasks = tuple(tasks[0])
        steps = [maybe_signature(t, app) for t in tasks]
        Signature.__init__(self, "multiq.chain", (), {"tasks": steps}, options,
                           subtask_type="chain", app=app or _first_app(steps))

    @classmethod
    def from_dict(cls, d: Dict[str, Any], app: Optional[MultiQ] = None) -> Signature:
        tasks = (d.get("kwargs") or {}).get("tasks") or ()
        sig = _chain(*[maybe_signature(t, app) for t in tasks], app=app,
                     **dict(d.get("options") or {}))
        sig["immutable"] = bool(d.get("immutable", False))
        return sig

    tasks = property(lambda self: self["kwargs"]["tasks"])

    def _fresh(self) -> Any:
        sig = _chain(*[maybe_signature(t, self._app)._fresh() for t in self.tasks],
                     app=self._app, **dict(self["options"]))
        sig["immutable"] = self.immutable
        return sig

    def unchain_tasks(self) -> List[Signature]:
        return [t.clone() for t in self.tasks]

    def __or__(self, other: Any) -> Any:
        if isinstance(other, group):
            other = _maybe_unroll(other)
            if not isinstance(other, group):
                return self | other
            tasks = self.unchain_tasks()
            if not tasks:
                return other
            if isinstance(tasks[-1], chord):
                tasks[-1].body = tasks[-1].body | other
                return _chain(*tasks, app=self._app)
            return _chain(*tasks, other, app=self._app)
        if isinstance(other, _chain):
            return reduce(operator.or_, other.unchain_tasks(), self)
        if isinstance(other, Signature):
            tasks = self.unchain_tasks()
            if tasks and isinstance(tasks[-1], group):
                tasks[-1] = chord(tasks[-1], other, app=self._app)
                if len(tasks) > 1 and isinstance(tasks[-2], chord):
                    tasks[-2].body = tasks[-2].body | tasks[-1]
                    tasks.pop()
                return _chain(*tasks, app=self._app)
            if tasks and isinstance(tasks[-1], chord):
                tasks[-1].body = tasks[-1].body | other
                return _chain(*tasks, app=self._app)
            return _chain(*tasks, other, app=self._app)
        return NotImplemented

    def _steps(self) -> List[Signature]:
        """The steps to run: nested chains unrolled, a group followed by anything upgraded
        to a chord whose body is what follows. Kept, so frozen ids stay."""
        flat: List[Signature] = []
        for step in self.tasks:
            step = maybe_signature(step, self._app)
            if isinstance(step, _chain):
                flat += step._steps()
            else:
                flat.append(step)
        out: List[Signature] = []
        for step in flat:
            if out and type(out[-1]) is group:
                out[-1] = chord(out[-1], step, app=self._app)
            else:
                out.append(step)
        self["kwargs"]["tasks"] = out
        return out

    def freeze(self, _id: Optional[str] = None, group_id: Optional[str] = None,
               chord: Any = None, root_id: Optional[str] = None,
               parent_id: Optional[str] = None, group_index: Optional[int] = None) -> Any:
        steps = self._steps()
        if not steps:
            raise ValueError("Cannot freeze an empty chain")
        results: List[Any] = []
        for i, step in enumerate(steps):
            last = i == len(steps) - 1
            res = step.freeze(_id if last else None, group_id=group_id if last else None,
                              chord=chord if last else None, root_id=root_id,
                              group_index=group_index if last else None)
            if results:
                _root(res).parent = results[-1]
            if root_id is None:
                root_id = _first_id(res)
            results.append(res)
        return results[-1]

    def link(self, callback: Any) -> Any:
        if self.tasks:
            return maybe_signature(self.tasks[-1], self._app).link(callback)
        return Signature.link(self, callback)

    def link_error(self, errback: Any) -> Any:
        for task in self.tasks:
            maybe_signature(task, self._app).link_error(errback)
        return errback

    def _tails(self) -> List[Signature]:
        steps = self._steps()
        return steps[-1]._tails() if steps else []

    def _ids(self) -> List[str]:
        return [i for t in self.tasks for i in maybe_signature(t, self._app)._ids()]

    def apply_async(self, args: Optional[Sequence[Any]] = None,
                    kwargs: Optional[Dict[str, Any]] = None, app: Optional[MultiQ] = None,
                    **options: Any) -> Any:
        application = app or self.app
        if dict.get(application.conf, "task_always_eager"):
            return self.apply(args, kwargs, **options)
        task_id = options.pop("task_id", None)
        rest = options.pop("chain", None)
        if rest:  # sent as a step of another chain: what follows goes on after this one
            steps = [*self.tasks, *(maybe_signature(s, application) for s in reversed(rest))]
            sig = _chain(*steps, app=application, **self["options"])
            return sig.apply_async(args, kwargs, app=application, task_id=task_id, **options)
        if not self.tasks:
            return None
        sig = self._fresh()
        _attach_links(sig, options)
        result = sig.freeze(task_id, root_id=options.get("root_id"),
                            parent_id=options.get("parent_id"))
        steps = sig._steps()
        first, later = steps[0], steps[1:]
        if later:
            options["chain"] = [dict(s) for s in reversed(later)]
        first.apply_async(args, kwargs, app=application, **options)
        return result

    def apply(self, args: Optional[Sequence[Any]] = None,
              kwargs: Optional[Dict[str, Any]] = None, **options: Any) -> Any:
        """Run each step here, in order; the last step's result (``.parent`` walks back)."""
        last: Any = None
        results: List[Any] = []
        steps = self._steps()
        for step in steps:
            if last is None:
                res = step.apply(args, kwargs, **options)
            else:
                value = last.get(propagate=True)
                res = step.apply((value,), **{k: v for k, v in options.items()
                                             if k != "task_id"})
            if results:
                _root(res).parent = results[-1]
            results.append(res)
            last = res
        return last

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.apply_async(args, kwargs)

    def __repr__(self) -> str:
        return " | ".join(repr(t) for t in self.tasks) if self.tasks else "<empty chain>"


class chain(_chain):  # noqa: N801 - Celery's name
    """``chain(a, b, c)`` is ``a | b | c``, upgrades included (it may make a chord)."""

    def __new__(cls, *tasks: Any, **kwargs: Any) -> Any:
        if not kwargs and tasks and (len(tasks) != 1 or _is_list(tasks[0])):
            items = tasks[0] if len(tasks) == 1 else tasks
            return reduce(operator.or_, [maybe_signature(t) for t in items], _chain())
        return super().__new__(cls)


# -- group ------------------------------------------------------------------------------

@Signature.register_type("group")
class group(Signature):  # noqa: N801 - Celery's name
    """Tasks run in parallel; sent in one pipelined round trip (per thousand):
    ``group(add.s(i, i) for i in range(100)).apply_async().get()``."""

    def __init__(self, *tasks: Any, **options: Any) -> None:
        app = options.pop("app", None)
        if len(tasks) == 1:
            only = tasks[0]
            if isinstance(only, group):
                tasks = tuple(only.tasks)
            elif not isinstance(only, dict):
                tasks = tuple(only)
        members = [maybe_signature(t, app) for t in tasks]
        Signature.__init__(self, "multiq.group", (), {"tasks": members}, options,
                           subtask_type="group", app=app or _first_app(members))

    @classmethod
    def from_dict(cls, d: Dict[str, Any], app: Optional[MultiQ] = None) -> Signature:
        tasks = (d.get("kwargs") or {}).get("tasks") or ()
        sig = group([maybe_signature(t, app) for t in tasks], app=app,
                    **dict(d.get("options") or {}))
        sig["immutable"] = bool(d.get("immutable", False))
        return sig

    tasks = property(lambda self: self["kwargs"]["tasks"])

    def _fresh(self) -> Any:
        sig = group([maybe_signature(t, self._app)._fresh() for t in self.tasks],
                    app=self._app, **dict(self["options"]))
        sig["immutable"] = self.immutable
        return sig

    def _members(self) -> List[Signature]:
        """The members, nested groups unrolled (kept, so frozen ids stay)."""
        out: List[Signature] = []
        for t in self.tasks:
            t = maybe_signature(t, self._app)
            if type(t) is group:
                out += t._members()
            else:
                out.append(t)
        self["kwargs"]["tasks"] = out
        return out

    def __or__(self, other: Any) -> Any:
        if isinstance(other, Signature):
            return chord(self, body=other, app=self._app)
        return NotImplemented

    def freeze(self, _id: Optional[str] = None, group_id: Optional[str] = None,
               chord: Any = None, root_id: Optional[str] = None,
               parent_id: Optional[str] = None, group_index: Optional[int] = None) -> Any:
        from multiq.result import GroupResult

        opts = self["options"]
        gid = opts.get("task_id")
        if gid is None:
            gid = opts["task_id"] = _id or group_id or _uuid()
        results = [m.freeze(group_id=gid, group_index=i, root_id=root_id,
                            parent_id=parent_id)
                   for i, m in enumerate(self._members())]
        return GroupResult(gid, results, app=self.app)

    def link(self, callback: Any) -> Any:
        """Linked to the first member, made immutable (it runs when that one succeeds)."""
        sig = maybe_signature(callback, self._app).clone(immutable=True)
        members = self._members()
        return members[0].link(sig) if members else sig

    def link_error(self, errback: Any) -> Any:
        """On every member (so it may be called more than once)."""
        sig = maybe_signature(errback, self._app)
        return tuple(m.link_error(sig.clone(immutable=True)) for m in self._members())

    def skew(self, start: float = 1.0, stop: Optional[float] = None,
             step: float = 1.0) -> group:
        """Spread the members' start: countdowns ``start``, ``start + step``... (at most
        ``stop``, which the rest keep)."""
        countdown = start
        for member in self._members():
            member.set(countdown=countdown)
            countdown += step
            if stop is not None and countdown > stop:
                countdown = stop
        return self

    def _tails(self) -> List[Signature]:
        return [t for m in self._members() for t in m._tails()]

    def _ids(self) -> List[str]:
        return [i for m in self._members() for i in m._ids()]

    def apply_async(self, args: Optional[Sequence[Any]] = None,
                    kwargs: Optional[Dict[str, Any]] = None, app: Optional[MultiQ] = None,
                    **options: Any) -> Any:
        application = app or self.app
        if dict.get(application.conf, "task_always_eager"):
            return self.apply(args, kwargs, **options)
        rest = options.pop("chain", None)
        if rest:  # a chain step with more to come: the rest waits for every member
            body = _chain(*(maybe_signature(s, application) for s in reversed(rest)),
                          app=application)
            return chord(self, body, app=application).apply_async(
                args, kwargs, app=application, **options)
        from multiq.result import GroupResult

        given_id = options.pop("task_id", None)
        gid = self["options"].get("task_id") or given_id or _uuid()
        options.pop("group_id", None)
        options.pop("group_index", None)
        results = []
        with application.publish_batch():
            for i, member in enumerate(self._members()):
                if type(member) is Signature:  # a task: sent as it is, with its place
                    results.append(member.apply_async(
                        args, kwargs, app=application, task_id=member.id or _uuid(),
                        group_id=gid, group_index=i, **options))
                    continue
                member = member._fresh()  # a work-flow: frozen ids, then sent
                results.append(member.freeze(group_id=gid, group_index=i,
                                             root_id=options.get("root_id"),
                                             parent_id=options.get("parent_id")))
                member.apply_async(args, kwargs, app=application, **options)
        return GroupResult(gid, results, app=application)

    def apply(self, args: Optional[Sequence[Any]] = None,
              kwargs: Optional[Dict[str, Any]] = None, **options: Any) -> Any:
        from multiq.result import GroupResult

        options.pop("chain", None)
        gid = self.options.get("task_id") or options.pop("task_id", None) or _uuid()
        return GroupResult(gid, [m.apply(args, kwargs, **options) for m in self._members()],
                           app=self.app)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.apply_async(args, kwargs)

    def __len__(self) -> int:
        return len(self.tasks)

    def __iter__(self) -> Any:
        return iter(self.tasks)

    def __repr__(self) -> str:
        return f"group([{', '.join(repr(t) for t in self.tasks)}])"


# -- chord ------------------------------------------------------------------------------

@Signature.register_type("chord")
class chord(Signature):  # noqa: N801 - Celery's name
    """A group (the header) whose results, as a list, go to one more task (the body):
    ``chord(add.s(i, i) for i in range(100))(tsum.s()).get()``."""

    def __init__(self, header: Any = None, body: Any = None, task: str = "multiq.chord",
                 args: Optional[Sequence[Any]] = None,
                 kwargs: Optional[Dict[str, Any]] = None, app: Optional[MultiQ] = None,
                 **options: Any) -> None:
        if isinstance(header, dict) and not isinstance(header, Signature) \
                and header.get("subtask_type") == "chord":  # chord(dict) as Celery allows
            return self.__init__(**_chord_fields(header), app=app)  # type: ignore[misc]
        hdr = maybe_signature(header, app)
        if not isinstance(hdr, group):
            hdr = group(hdr if hdr is not None else [], app=app)
        body = maybe_signature(body, app) if body is not None else None
        Signature.__init__(
            self, task, args or (), {"header": hdr, "body": body, "kwargs": dict(kwargs or {})},
            options, subtask_type="chord", app=app or hdr._app or getattr(body, "_app", None))

    @classmethod
    def from_dict(cls, d: Dict[str, Any], app: Optional[MultiQ] = None) -> Signature:
        sig = chord(**_chord_fields(d), app=app)
        sig["immutable"] = bool(d.get("immutable", False))
        return sig

    @property
    def header(self) -> group:
        header: group = self["kwargs"]["header"]
        return header

    @property
    def body(self) -> Any:
        return self["kwargs"]["body"]

    @body.setter
    def body(self, value: Any) -> None:
        self["kwargs"]["body"] = maybe_signature(value, self._app)

    tasks = property(lambda self: self.header.tasks)

    def _fresh(self) -> Any:
        body = self.body
        sig = chord(self.header._fresh(), body._fresh() if body is not None else None,
                    args=self["args"], kwargs=self["kwargs"].get("kwargs"), app=self._app,
                    **dict(self["options"]))
        sig["immutable"] = self.immutable
        return sig

    def __or__(self, other: Any) -> Any:
        if isinstance(other, Signature) and not isinstance(other, (group, _chain)):
            sig: Any = self.clone()
            sig.body = sig.body | other if sig.body is not None else other
            return sig
        if isinstance(other, group) and len(other.tasks) == 1:
            sig = self.clone()  # (a chord: clone keeps the type)
            sig.body = sig.body | _maybe_unroll(other)
            return sig
        return Signature.__or__(self, other)

    def freeze(self, _id: Optional[str] = None, group_id: Optional[str] = None,
               chord: Any = None, root_id: Optional[str] = None,
               parent_id: Optional[str] = None, group_index: Optional[int] = None) -> Any:
        header = self.header.freeze(root_id=root_id, parent_id=parent_id)
        for index, tail in enumerate(self.header._tails()):
            tail["options"]["chord"] = {"id": header.id, "i": index}
        body = self.body
        if body is None:
            return header
        result = body.freeze(_id, group_id=group_id, chord=chord, root_id=root_id,
                             group_index=group_index)
        _root(result).parent = header
        return result

    def link(self, callback: Any) -> Any:
        return self.body.link(callback)

    def link_error(self, errback: Any) -> Any:
        return self.body.link_error(errback)

    def _tails(self) -> List[Signature]:
        return self.body._tails() if self.body is not None else []

    def _ids(self) -> List[str]:
        return self.body._ids() if self.body is not None else []

    def __call__(self, body: Any = None, **options: Any) -> Any:
        return self.apply_async((), {"body": body} if body else {}, **options)

    def _prepared(self, kwargs: Optional[Dict[str, Any]], rest: Any,
                  app: MultiQ) -> chord:
        """This chord with the body given to the call and what a chain adds after it."""
        body = (kwargs or {}).get("body") or self.body
        if body is None:
            raise ValueError("A chord needs a body: chord(header)(body) or chord(header, body)")
        body = maybe_signature(body, app)
        if rest:
            body = _chain(body, *(maybe_signature(s, app) for s in reversed(rest)), app=app)
        sig = chord(self.header._fresh(), body._fresh(), args=self["args"],
                    kwargs=self["kwargs"].get("kwargs"), app=app, **dict(self["options"]))
        sig["immutable"] = self.immutable
        return sig

    def apply_async(self, args: Optional[Sequence[Any]] = None,
                    kwargs: Optional[Dict[str, Any]] = None, app: Optional[MultiQ] = None,
                    **options: Any) -> Any:
        application = app or self.app
        sig = self._prepared(kwargs, options.pop("chain", None), application)
        if dict.get(application.conf, "task_always_eager"):
            return sig.apply(args, **options)
        result = sig.freeze(options.pop("task_id", None), root_id=options.get("root_id"),
                            parent_id=options.get("parent_id"))
        _attach_links(sig.body, options)
        header_args = [*(args or ()), *self["args"]] if not self.immutable else self["args"]
        members = sig.header._members()
        size = len(sig.header._tails())
        if not size:  # nothing to wait for: the body runs at once, with no values
            sig.body.apply_async(([],), app=application, **options)
            return result
        group_id = sig.header.id
        assert group_id is not None
        with application.publish_batch():
            with capture(application, group_id) as body_messages:
                sig.body.apply_async((), app=application, **options)
            application._chord_state(group_id, size, body_messages)
            for member in members:
                member.apply_async(header_args, app=application, **options)
        return result

    def apply(self, args: Optional[Sequence[Any]] = None,
              kwargs: Optional[Dict[str, Any]] = None, **options: Any) -> Any:
        application = self.app
        sig = self._prepared(kwargs, options.pop("chain", None), application)
        task_id = options.pop("task_id", None)
        header = sig.header.apply(args, **options)
        values = header.get(propagate=True)
        result = sig.body.apply((values,), **({"task_id": task_id} if task_id else {}))
        result.parent = header
        return result

    def __repr__(self) -> str:
        return f"chord({self.header!r}, {self.body!r})"


def _attach_links(sig: Signature, options: Dict[str, Any]) -> None:
    """``link`` / ``link_error`` given to a chain's or chord's send: the callback follows
    the last task, the errback goes on every task (as in Celery)."""
    for name, attach in (("link", sig.link), ("link_error", sig.link_error)):
        given = options.pop(name, None)
        for item in given if isinstance(given, (list, tuple)) else [given] if given else ():
            attach(maybe_signature(item, sig._app))


def _chord_fields(d: Dict[str, Any]) -> Dict[str, Any]:
    kw = d.get("kwargs") or {}
    return {"header": kw.get("header"), "body": kw.get("body"),
            "kwargs": kw.get("kwargs"), "args": d.get("args"),
            **dict(d.get("options") or {})}


def _root(result: Any) -> Any:
    """The first result of a chain of results (where a chord's header is its parent)."""
    while getattr(result, "parent", None) is not None:
        result = result.parent
    return result


def _first_id(result: Any) -> Optional[str]:
    return getattr(_root(result), "id", None)


# -- map, starmap, chunks ---------------------------------------------------------------

@Signature.register_type("xmap")
class xmap(Signature):  # noqa: N801 - Celery's name
    """One task that calls ``task`` for every item of ``it``: ``[task(x) for x in it]``."""

    builtin = "multiq.map"

    def __init__(self, task: Any, it: Iterable[Any], **options: Any) -> None:
        app = options.pop("app", None)
        sig = maybe_signature(task, app)
        if not isinstance(sig, Signature):
            sig = Signature(sig, app=app)
        items = [list(x) for x in it] if self.builtin == "multiq.starmap" else list(it)
        Signature.__init__(self, self.builtin, (), {"task": sig, "it": items}, options,
                           subtask_type=self.kind(), immutable=True, app=app or sig._app)

    @classmethod
    def kind(cls) -> str:
        return "xmap"

    @classmethod
    def from_dict(cls, d: Dict[str, Any], app: Optional[MultiQ] = None) -> Signature:
        kw = d.get("kwargs") or {}
        return cls(kw.get("task"), kw.get("it") or (), app=app,
                   **dict(d.get("options") or {}))

    def apply_async(self, args: Optional[Sequence[Any]] = None,
                    kwargs: Optional[Dict[str, Any]] = None, app: Optional[MultiQ] = None,
                    **options: Any) -> Any:
        kw = {"task": dict(self["kwargs"]["task"]), "it": self["kwargs"]["it"]}
        sig = Signature(self.builtin, (), kw, self["options"], immutable=True,
                        app=app or self._app)
        return sig.apply_async((), app=app, **options)

    def apply(self, args: Optional[Sequence[Any]] = None,
              kwargs: Optional[Dict[str, Any]] = None, **options: Any) -> Any:
        kw = {"task": dict(self["kwargs"]["task"]), "it": self["kwargs"]["it"]}
        return Signature(self.builtin, (), kw, self["options"], immutable=True,
                         app=self._app).apply(**options)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.apply_async(args, kwargs)

    def __repr__(self) -> str:
        task = self["kwargs"]["task"]
        return f"[{task.get('task')}(x) for x in {self['kwargs']['it']!r}]"


@Signature.register_type("xstarmap")
class xstarmap(xmap):  # noqa: N801 - Celery's name
    """One task that calls ``task(*args)`` for every tuple of ``it``."""

    builtin = "multiq.starmap"

    @classmethod
    def kind(cls) -> str:
        return "xstarmap"

    def __repr__(self) -> str:
        task = self["kwargs"]["task"]
        return f"[{task.get('task')}(*x) for x in {self['kwargs']['it']!r}]"


@Signature.register_type("chunks")
class chunks(Signature):  # noqa: N801 - Celery's name
    """``it`` split into parts of ``n`` argument tuples, each part one starmap task."""

    def __init__(self, task: Any, it: Iterable[Any], n: int, **options: Any) -> None:
        app = options.pop("app", None)
        sig = maybe_signature(task, app)
        if not isinstance(sig, Signature):
            sig = Signature(sig, app=app)
        if int(n) < 1:
            raise ValueError("chunks needs n >= 1")
        Signature.__init__(self, "multiq.chunks", (),
                           {"task": sig, "it": [list(x) for x in it], "n": int(n)}, options,
                           subtask_type="chunks", immutable=True, app=app or sig._app)

    @classmethod
    def from_dict(cls, d: Dict[str, Any], app: Optional[MultiQ] = None) -> Signature:
        kw = d.get("kwargs") or {}
        return chunks(kw.get("task"), kw.get("it") or (), kw.get("n") or 1, app=app,
                      **dict(d.get("options") or {}))

    def group(self) -> group:
        """The group of starmap tasks, one per part."""
        task = maybe_signature(self["kwargs"]["task"], self._app)
        items, n = self["kwargs"]["it"], self["kwargs"]["n"]
        parts = [items[i:i + n] for i in range(0, len(items), n)]
        return group([xstarmap(task, part, app=self._app) for part in parts], app=self._app,
                     **self["options"])

    def apply_async(self, args: Optional[Sequence[Any]] = None,
                    kwargs: Optional[Dict[str, Any]] = None, app: Optional[MultiQ] = None,
                    **options: Any) -> Any:
        return self.group().apply_async(args, kwargs, app=app, **options)

    def apply(self, args: Optional[Sequence[Any]] = None,
              kwargs: Optional[Dict[str, Any]] = None, **options: Any) -> Any:
        return self.group().apply(args, kwargs, **options)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.apply_async(args, kwargs)

    def _tails(self) -> List[Signature]:
        return self.group()._tails()


# -- capturing a chord body's messages --------------------------------------------------

class _Capture:
    """Messages encoded while a chord body is "sent": kept in Redis, not published."""

    def __init__(self, chord_id: str) -> None:
        self.chord_id = chord_id
        self.messages: List[tuple] = []  # (queue, data, priority)


def _capture_top(app: MultiQ) -> Optional[_Capture]:
    stack = getattr(_state.local, "capture", None)
    return stack[-1] if stack else None


class capture:  # noqa: N801 - a context manager
    """``with capture(app, chord_id) as messages:`` what is sent inside is kept in
    ``messages`` as (stream key, envelope, queue) for the chord's state."""

    def __init__(self, app: MultiQ, chord_id: str) -> None:
        self.app, self.top = app, _Capture(chord_id)
        self.messages: List[tuple] = []

    def __enter__(self) -> List[tuple]:
        stack = getattr(_state.local, "capture", None)
        if stack is None:
            stack = _state.local.capture = []
        stack.append(self.top)
        return self.messages

    def __exit__(self, *exc: Any) -> None:
        from multiq.keys import band_of
        _state.local.capture.pop()
        keys = self.app.broker.keys
        self.messages[:] = [(keys.stream(queue, band_of(priority)), data, queue)
                            for queue, data, priority in self.top.messages]


def tails_of(sig: Any, app: Optional[MultiQ] = None) -> List[Signature]:
    """The tasks of a received signature dict whose completion is its completion."""
    tails: List[Signature] = maybe_signature(sig, app)._tails()
    return tails


def ids_of(sig: Any, app: Optional[MultiQ] = None) -> List[str]:
    """Every frozen task id in a received signature dict."""
    ids: List[str] = maybe_signature(sig, app)._ids()
    return ids


__all__ = ["Signature", "signature", "subtask", "maybe_signature", "chain", "group", "chord",
           "chunks", "xmap", "xstarmap"]
