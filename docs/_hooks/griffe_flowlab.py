"""Griffe extension for the flowlab reference: docstrings as mkdocstrings expects them.

Loaded by mkdocstrings (``mkdocs.yml``: ``handlers.python.options.extensions``). Once the
``flowlab`` package is loaded it does three things, none of which touches the library:

1. **Sphinx roles to cross-references.** flowlab's docstrings write references the Sphinx
   way, ``:class:`~flowlab.Stats```, ``:meth:`sample```, ``:mod:`flowlab.metrics```. Each
   becomes an autorefs link, ``[`Stats`][flowlab.Stats]``, with the target resolved as Python
   would see it from the docstring's object (its members, its class, its module's names and
   imports, then the package). A target inside ``flowlab`` that resolves to nothing is
   logged as a warning, so ``mkdocs build --strict`` fails on a broken reference; targets
   outside ``flowlab`` (``scipy.stats.gaussian_kde``) are rendered as code.
2. **One home per object.** A name that a module re-exports from another *public* module
   (``flowlab.objectives.FlowMatching`` from ``flowlab.objectives.flow_matching``) is not
   rendered again on the re-exporting module's page: it is documented once, in its home
   module, and every public path to it is still registered (in autorefs and in
   ``objects.inv``) as an alias of that entry. Objects whose home is private
   (``flowlab._ode.SolverOptions``) stay public where they are exported, so ``::: flowlab.SolverOptions`` documents them under their public name.
3. **Public aliases only.** The aliases griffe records for an object (every module that
   imports it) are pruned to the exported ones, so ``objects.inv`` lists public paths
   (and the canonical one), not every internal import.
4. **Equinox constructors.** An ``eqx.Module`` without a hand-written ``__init__`` gets the
   dataclass ``__init__`` Equinox generates (its fields in order, defaults read from
   ``= value`` or ``eqx.field(default=...)``; ``AbstractVar`` and ``ClassVar`` excluded),
   as griffe does for ``@dataclass``: the reference then shows the real signature, and the
   docstring's ``Arguments:`` are checked against it.
5. **Display maths as blocks.** ``$$...$$`` written inside a paragraph (as the docstrings
   do) is set on its own, between blank lines, which is where pymdownx.arithmatex looks
   for display maths; inline ``$...$`` is left alone.
6. **Inherited docstrings.** A method or attribute that implements an abstract one without
   a docstring of its own (``CNF.field``, ``Diffusion.t_base``) shows the docstring of the
   base class member it implements, as Sphinx's ``autodoc_inherit_docstrings`` does.
7. **Field descriptions.** A dataclass field of an Equinox module (``Stats.nfe``,
   ``SolverOptions.rtol``) has no docstring of its own; it gets its description from the
   class docstring's ``Arguments:`` or ``Attributes:`` entry, so its reference entry says
   what it is.
8. **Functions made at run time.** A module-level function made by a factory (the dataset
   samplers: ``pinwheel = _sampler(...)``) is an attribute without a docstring to static
   analysis; it is documented as the function it is, with the signature and docstring of
   the imported object.
9. **One name per argument.** A Google-style entry for several names at once
   (``rtol, atol: tolerances``) becomes one entry per name with the shared description, as
   griffe's parser expects.
"""

from __future__ import annotations

import importlib
import inspect
import logging
import re
from typing import Any

import griffe
from griffe import Function, Parameter, ParameterKind, Parameters

_logger = logging.getLogger("mkdocs.plugins.flowlab_docs")

PACKAGE = "flowlab"

# :role:`target` or :role:`~target` / :role:`.target` (domain prefixes such as :py:class:
# included); the roles Sphinx's Python domain knows.
_ROLE = re.compile(
    r":(?:py:)?(?P<role>class|meth|func|data|mod|attr|obj|exc|const|property):"
    r"`(?P<target>[^`]+)`"
)


def _is_private_path(path: str) -> bool:
    return any(part.startswith("_") and not part.startswith("__") for part in path.split("."))


def _lookup(collection: Any, path: str) -> Any | None:
    try:
        return collection[path]
    except Exception:  # KeyError, AliasResolutionError, CyclicAliasError, ...
        return None


def _link_path(obj: Any, path: str) -> str:
    """The path autorefs knows the object by: an inherited member's declaring class."""
    if getattr(obj, "is_alias", False) and getattr(obj, "inherited", False):
        return obj.target_path
    return path


def _scopes(obj: Any):
    """The object itself (if it has members), then its parents up to the package."""
    scope = obj
    while scope is not None:
        if scope.is_class or scope.is_module:
            yield scope
        scope = scope.parent


def resolve(target: str, obj: Any, collection: Any) -> str | None:
    """The full path of ``target`` as written in ``obj``'s docstring, or ``None``."""
    target = target.lstrip(".~")
    if target.startswith(PACKAGE + ".") or target == PACKAGE:
        found = _lookup(collection, target)
        return None if found is None else _link_path(found, target)
    first, _, rest = target.partition(".")
    for scope in _scopes(obj):
        path = f"{scope.path}.{target}"
        found = _lookup(collection, path)
        if found is not None:
            return _link_path(found, path)
        try:
            base = scope.resolve(first)  # a name in scope: a member or an import
        except Exception:
            base = None
        if base:
            path = f"{base}.{rest}" if rest else base
            found = _lookup(collection, path)
            if found is not None:
                return _link_path(found, path)
    root = _lookup(collection, PACKAGE)
    if root is not None:
        found = _lookup(collection, f"{PACKAGE}.{target}")
        if found is not None:
            return _link_path(found, f"{PACKAGE}.{target}")
    return None


def convert_roles(text: str, obj: Any, collection: Any) -> str:
    """Replace every Sphinx role in ``text`` by an autorefs link (or code)."""

    def replace(match: re.Match) -> str:
        raw = match.group("target").strip()
        shown = raw.lstrip("~.")
        if raw.startswith("~"):
            shown = shown.rsplit(".", 1)[-1]
        path = resolve(raw, obj, collection)
        if path is not None and _is_private_path(path):
            target = _lookup(collection, path)
            if target is not None and target.is_module:
                return f"`{shown}`"  # a private module has no page: code, not a link
        if path is None:
            if _looks_internal(raw):
                _logger.warning(
                    "%s: cannot resolve the cross-reference %s (from the docstring of %s)",
                    _where(obj),
                    match.group(0),
                    obj.path,
                )
            return f"`{shown}`"
        return f"[`{shown}`][{path}]"

    return _ROLE.sub(replace, text)


_EXTERNAL = {
    "jax",
    "jnp",
    "numpy",
    "np",
    "scipy",
    "equinox",
    "eqx",
    "diffrax",
    "optax",
    "matplotlib",
}


def _looks_internal(raw: str) -> bool:
    """A target in flowlab, or a relative one: not one of the known external packages."""
    return raw.lstrip("~.").split(".", 1)[0] not in _EXTERNAL


def _where(obj: Any) -> str:
    try:
        return f"{obj.relative_filepath}:{obj.lineno}"
    except Exception:
        return obj.path


def _walk(obj: Any):
    """Every object defined in ``obj`` (aliases excluded), depth first."""
    yield obj
    for member in list(obj.members.values()):
        if member.is_alias:
            continue
        yield from _walk(member)


def _home_module(alias: Any) -> str | None:
    try:
        target = alias.final_target
    except Exception:
        return None
    module = target if target.is_module else target.module
    return module.path


# -- display maths --------------------------------------------------------------------------

_DISPLAY = re.compile(r"\$\$(?P<math>.+?)\$\$", re.DOTALL)


def display_math_blocks(text: str) -> str:
    """Put every ``$$...$$`` in a paragraph of its own, at the indentation of its line."""

    def replace(match: re.Match) -> str:
        line_start = text.rfind("\n", 0, match.start()) + 1
        line = text[line_start : match.start()]
        indent = line[: len(line) - len(line.lstrip())]
        before = "" if not line.strip() else "\n"
        return f"{before}\n{indent}$${match.group('math')}$$\n\n{indent}"

    out = _DISPLAY.sub(replace, text)
    # no trailing whitespace-only lines left by the substitution
    return re.sub(r"\n[ \t]+\n", "\n\n", out).rstrip() + ("\n" if text.endswith("\n") else "")


# -- one entry per argument ----------------------------------------------------------------

_SECTIONS = ("Arguments", "Args", "Parameters", "Params", "Attributes", "Other Parameters")
_MULTI = re.compile(
    r"^(?P<indent>\s*)(?P<names>[A-Za-z_]\w*(?:\s*,\s*[A-Za-z_]\w*)+)\s*:(?P<rest>.*)$"
)


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def split_multi_names(text: str) -> str:
    """``a, b: desc`` entries of argument-like sections, as ``a: desc`` and ``b: desc``."""
    lines = text.split("\n")
    out: list[str] = []
    i = 0
    section_indent: int | None = None
    while i < len(lines):
        line = lines[i]
        stripped = line.strip()
        if stripped.rstrip(":") in _SECTIONS and stripped.endswith(":"):
            section_indent = _indent(line)
            out.append(line)
            i += 1
            continue
        if section_indent is not None and stripped and _indent(line) <= section_indent:
            section_indent = None
        match = _MULTI.match(line) if section_indent is not None else None
        if match is None:
            out.append(line)
            i += 1
            continue
        body = [match.group("rest")]
        item_indent = _indent(line)
        i += 1
        while i < len(lines) and (not lines[i].strip() or _indent(lines[i]) > item_indent):
            if not lines[i].strip():
                # a blank line ends the entry unless the next line continues it
                nxt = lines[i + 1] if i + 1 < len(lines) else ""
                if not nxt.strip() or _indent(nxt) <= item_indent:
                    break
            body.append(lines[i])
            i += 1
        for name in (n.strip() for n in match.group("names").split(",")):
            out.append(f"{match.group('indent')}{name}:{body[0]}")
            out.extend(body[1:])
    return "\n".join(out)


# -- Equinox's dataclass __init__ ----------------------------------------------------------


def _canonical(expr: Any) -> str:
    try:
        return expr.canonical_path
    except AttributeError:
        return ""


def _is_equinox_module(cls: Any) -> bool:
    try:
        chain = [cls, *cls.mro()]
    except Exception:
        chain = [cls]
    return any(_canonical(base) == "equinox.Module" for c in chain for base in c.bases)


def _field_parameter(attribute: Any) -> Parameter | None:
    annotation = attribute.annotation
    if annotation is None or "property" in attribute.labels:
        return None
    if "class-attribute" in attribute.labels and "instance-attribute" not in attribute.labels:
        return None  # ClassVar
    head = _canonical(getattr(annotation, "left", None))
    if head in ("equinox.AbstractVar", "equinox.AbstractClassVar"):
        return None
    value = attribute.value
    default = value
    if _canonical(getattr(value, "function", None)) == "equinox.field":
        args = {a.name: a.value for a in value.arguments if hasattr(a, "name")}
        if args.get("init") == "False":
            return None
        default = args.get("default")
        if default is None and "default_factory" in args:
            default = f"{args['default_factory']}()"
    return Parameter(
        attribute.name,
        annotation=annotation,
        kind=ParameterKind.positional_or_keyword,
        default=default,
        docstring=attribute.docstring,
    )


def add_equinox_init(cls: Any) -> None:
    """Give an ``eqx.Module`` without a hand-written ``__init__`` its dataclass one."""
    if not _is_equinox_module(cls):
        return
    try:
        parents = cls.mro()
    except Exception:
        parents = []
    if any(_hand_written_init(c) for c in [cls, *parents]):
        return
    params: dict[str, Parameter] = {}
    for c in [*reversed(parents), cls]:
        for member in c.members.values():
            if member.is_attribute and not member.is_alias:
                param = _field_parameter(member)
                if param is not None:
                    params.pop(param.name, None)
                    params[param.name] = param
    if not params:
        return
    init = Function(
        "__init__",
        lineno=0,
        endlineno=0,
        parent=cls,
        parameters=Parameters(
            Parameter("self", kind=ParameterKind.positional_or_keyword), *params.values()
        ),
        returns="None",
    )
    init.labels.add(_GENERATED)
    cls.set_member("__init__", init)


_GENERATED = "equinox-dataclass-init"


def _hand_written_init(cls: Any) -> bool:
    init = cls.members.get("__init__")
    return init is not None and _GENERATED not in init.labels


def inherit_docstrings(cls: Any) -> None:
    """Members without a docstring take the one of the member they override."""
    try:
        parents = cls.mro()
    except Exception:
        return
    for name, member in cls.members.items():
        if member.is_alias or member.docstring is not None or name.startswith("_"):
            continue
        for parent in parents:
            base = parent.members.get(name)
            if base is not None and not base.is_alias and base.docstring is not None:
                member.docstring = griffe.Docstring(
                    base.docstring.value, lineno=base.docstring.lineno, parent=member
                )
                break


def _runtime_parameters(func: Any) -> Parameters:
    params = []
    for p in inspect.signature(func).parameters.values():
        annotation = None
        if p.annotation is not inspect.Parameter.empty:
            annotation = getattr(p.annotation, "__name__", None) or str(p.annotation)
        default = None if p.default is inspect.Parameter.empty else repr(p.default)
        params.append(
            Parameter(
                p.name,
                annotation=annotation,
                kind=ParameterKind[p.kind.name.lower()],
                default=default,
            )
        )
    return Parameters(*params)


def runtime_function(obj: Any) -> None:
    """A module-level attribute holding a function made at run time becomes that function."""
    if obj.docstring is not None or not obj.is_attribute or not obj.parent.is_module:
        return
    try:
        value = getattr(importlib.import_module(obj.parent.path), obj.name)
    except Exception:
        return
    if not inspect.isfunction(value) or not inspect.getdoc(value):
        return
    try:
        parameters = _runtime_parameters(value)
    except (TypeError, ValueError):
        return
    function = Function(
        obj.name,
        lineno=obj.lineno,
        endlineno=obj.endlineno,
        parent=obj.parent,
        parameters=parameters,
    )
    function.docstring = griffe.Docstring(inspect.getdoc(value), lineno=obj.lineno, parent=function)
    obj.parent.set_member(obj.name, function)


def field_docstrings(cls: Any) -> None:
    """Attributes without a docstring take their entry in the class docstring."""
    if cls.docstring is None:
        return
    try:
        sections = griffe.parse_google(
            cls.docstring, warn_unknown_params=False, warn_missing_types=False
        )
    except Exception:
        return
    described = {}
    for section in sections:
        if section.kind.value in ("parameters", "attributes"):
            for item in section.value:
                if item.description:
                    described.setdefault(item.name.lstrip("*"), item.description)
    for name, member in cls.members.items():
        if (
            member.is_attribute
            and not member.is_alias
            and member.docstring is None
            and name in described
        ):
            member.docstring = griffe.Docstring(
                described[name], lineno=member.lineno, parent=member
            )


class FlowlabDocstrings(griffe.Extension):
    """See the module docstring."""

    def on_package(self, *, pkg: Any, loader: Any, **kwargs: Any) -> None:
        if pkg.path != PACKAGE:
            return
        collection = loader.modules_collection
        objects = list(_walk(pkg))
        for obj in objects:
            if obj.is_class:
                add_equinox_init(obj)
            runtime_function(obj)
        for obj in objects:
            if obj.docstring is not None:
                text = convert_roles(obj.docstring.value, obj, collection)
                obj.docstring.value = display_math_blocks(split_multi_names(text))
        for obj in objects:
            if obj.is_class:
                field_docstrings(obj)
                inherit_docstrings(obj)
            if obj.is_module:
                self._one_home(obj)
            self._public_aliases(obj)

    @staticmethod
    def _one_home(module: Any) -> None:
        for name in module.exports or ():
            member = module.members.get(name) if isinstance(name, str) else None
            if member is None or not member.is_alias:
                continue
            home = _home_module(member)
            if home is None or home == module.path:
                continue
            if home.startswith(PACKAGE) and not _is_private_path(home):
                member.public = False  # documented on its home module's page

    @staticmethod
    def _public_aliases(obj: Any) -> None:
        aliases = getattr(obj, "aliases", None)
        if not aliases:
            return
        for path, alias in list(aliases.items()):
            parent = alias.parent
            exported = (
                parent is not None and parent.is_module and alias.name in (parent.exports or ())
            )
            if not exported:
                del aliases[path]
