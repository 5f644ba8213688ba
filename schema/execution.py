"""graphql-core's executor with a shorter path for plain attribute fields.

Most fields of a response are strawberry "basic" fields: no resolver, no permission
classes, no field extensions; strawberry resolves them with ``getattr(source, name)`` and
never looks at the resolve info. graphql-core still builds that info (a 15-item tuple and
a list of the field's nodes) for every one of them and walks the generic completion
(non-null, list, leaf, abstract, object checks) for each value: most of the cost of an
executed `leaderboard(first: 10)` was the 50 such fields of its rows.

For a basic field whose type is a scalar, an enum or an object type without an
``is_type_of`` check (possibly non-null), this executor reads the attribute and completes
the value directly. Anything unusual (an exception, null for a non-null field, a value the
scalar refuses, an awaitable, middleware) goes the ordinary way, by calling graphql-core's
own ``execute_field``, so errors, their paths and null propagation are exactly graphql-core's.

A whole sub-selection made only of such fields (and lists of them) is compiled once per
parsed document, when it has no fragments and no directives (its fields are then the same
whatever the variables), and completed without a ``Path``, a resolve info or a field
collection per object: the rows of a page. When anything in it is unusual, the object is
completed again graphql-core's way, which reports it (the fields read are plain
attributes: reading them twice changes nothing).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from graphql import (
    FieldNode,
    GraphQLEnumType,
    GraphQLField,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLScalarType,
    GraphQLSchema,
)
from graphql.pyutils import Path, Undefined
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext
from strawberry.types.field import StrawberryField

Leaf = GraphQLScalarType | GraphQLEnumType
# (attribute name, leaf type or None, object type or None, non-null)
Plan = tuple[str, Leaf | None, GraphQLObjectType | None, bool]
# A list of leaves or objects: (attribute name, item plan, non-null); the item plan's
# attribute name is unused, its non-null is the items'.
ListPlan = tuple[str, Plan, bool]
# One field of a compiled sub-selection: (response key, attribute name, leaf type, the
# sub-selection of an object, non-null, the item non-null of a list or None).
Entry = tuple[str, str, Leaf | None, "Selection | None", bool, bool | None]
Selection = tuple[Entry, ...]

_FAILED: Any = object()  # something unusual: complete the object graphql-core's way
_MAX_SELECTIONS = 2048  # compiled sub-selections kept (parsed documents are cached too)


def plan_basic_fields(schema: Any) -> tuple[dict[int, Plan], dict[int, ListPlan]]:
    """The plain attribute fields of a strawberry schema (of leaf or object type; of list
    type), by ``id`` of their GraphQLField (the schema keeps every field alive, so the ids
    stay theirs)."""
    core: GraphQLSchema = schema._schema
    plans: dict[int, Plan] = {}
    lists: dict[int, ListPlan] = {}
    for type_name, graphql_type in core.type_map.items():
        if not isinstance(graphql_type, GraphQLObjectType) or type_name.startswith("__"):
            continue
        for field_name, field_def in graphql_type.fields.items():
            name = _attribute(schema, type_name, field_name, field_def)
            if name is None:
                continue
            plan = _plan(name, field_def.type)
            if plan is not None:
                plans[id(field_def)] = plan
                continue
            declared = field_def.type
            of_type = declared.of_type if isinstance(declared, GraphQLNonNull) else declared
            if isinstance(of_type, GraphQLList):
                item = _plan(name, of_type.of_type)
                if item is not None:
                    lists[id(field_def)] = (name, item, isinstance(declared, GraphQLNonNull))
    return plans, lists


def _attribute(schema: Any, type_name: str, field_name: str, field_def: GraphQLField) -> str | None:
    """The attribute strawberry reads for a basic field, or None for any other field."""
    if field_def.args or not getattr(field_def.resolve, "_is_default", False):
        return None
    field = schema.get_field_for_type(field_name, type_name)
    if (
        not isinstance(field, StrawberryField)
        or not field.is_basic_field
        # what strawberry's basic resolver does: getattr(source, python_name)
        or type(field).get_result is not StrawberryField.get_result
        or field.default_resolver is not getattr
    ):
        return None
    return field.python_name


def _plan(name: str, declared: Any) -> Plan | None:
    non_null = isinstance(declared, GraphQLNonNull)
    of_type = declared.of_type if isinstance(declared, GraphQLNonNull) else declared
    if isinstance(of_type, GraphQLScalarType | GraphQLEnumType):
        return (name, of_type, None, non_null)
    if isinstance(of_type, GraphQLObjectType) and of_type.is_type_of is None:
        return (name, None, of_type, non_null)
    return None  # lists (of lists), interfaces, unions: the ordinary path


class FastFieldsExecutor(StrawberryGraphQLCoreExecutionContext):
    """Set ``plans``, ``lists`` (``plan_basic_fields``) and an empty ``selections`` on a
    subclass made for one schema."""

    plans: dict[int, Plan] = {}
    lists: dict[int, ListPlan] = {}
    # (object type, ids of the field nodes) -> (those nodes, kept so that their ids stay
    # theirs; the compiled sub-selection or None when it cannot be compiled)
    selections: dict[tuple[Any, ...], tuple[tuple[FieldNode, ...], Selection | None]] = {}

    def execute_field(
        self,
        parent_type: GraphQLObjectType,
        source: Any,
        field_details_list: Any,
        path: Path,
        position_context: Any,
    ) -> Any:
        field_def = self.schema.get_field(parent_type, field_details_list[0].node.name.value)
        plan = self.plans.get(id(field_def)) if field_def is not None else None
        middleware = self.middleware_manager  # strawberry always passes one, often empty
        if plan is None or (middleware is not None and middleware.middlewares):
            return super().execute_field(
                parent_type, source, field_details_list, path, position_context
            )
        name, leaf, object_type, non_null = plan
        try:
            result = getattr(source, name)
        except Exception:  # the ordinary path raises it again, and reports it
            result = Undefined
        if result is None and not non_null:
            return None
        if result is None or result is Undefined or isinstance(result, Exception):
            pass  # an error to report: the ordinary path
        elif leaf is not None:
            try:
                coerced = leaf.coerce_output_value(result)
            except Exception:
                coerced = None
            if coerced is not None and coerced is not Undefined:
                return coerced
        elif object_type is not None and field_def is not None and not self.is_awaitable(result):
            return self._complete_object(
                field_def, object_type, field_details_list, path, result, position_context
            )
        return super().execute_field(
            parent_type, source, field_details_list, path, position_context
        )

    def collect_and_execute_subfields(
        self,
        return_type: GraphQLObjectType,
        field_details_list: Any,
        path: Path,
        result: Any,
        position_context: Any,
    ) -> Any:
        """A compiled sub-selection's values, or graphql-core's completion when there is
        none (deferred or fragment-scoped fields, middleware) or the value is unusual."""
        if position_context is None and not (
            self.middleware_manager is not None and self.middleware_manager.middlewares
        ):
            selection = self._selection(return_type, field_details_list)
            if selection is not None:
                completed = _complete(selection, result, self.is_awaitable)
                if completed is not _FAILED:
                    return completed
        return super().collect_and_execute_subfields(
            return_type, field_details_list, path, result, position_context
        )

    def _selection(self, object_type: GraphQLObjectType, details: Any) -> Selection | None:
        nodes = []
        for detail in details:
            if detail.defer_usage is not None or detail.fragment_variable_values is not None:
                return None
            nodes.append(detail.node)
        key = (object_type, *map(id, nodes))
        cached = self.selections.get(key)
        if cached is not None:
            return cached[1]
        selection = self._compile(object_type, nodes)
        if len(self.selections) >= _MAX_SELECTIONS:
            self.selections.clear()
        self.selections[key] = (tuple(nodes), selection)
        return selection

    def _compile(self, object_type: GraphQLObjectType, nodes: list[FieldNode]) -> Selection | None:
        """What graphql-core's field collection gives for these nodes' sub-selections
        (the fields by response key, in order), when it depends on nothing but the nodes:
        only fields, no fragments and no directives; None otherwise, or when a field is
        not a plain attribute."""
        grouped: dict[str, list[FieldNode]] = {}
        for node in nodes:
            if node.selection_set is None:
                return None
            for selection in node.selection_set.selections:
                if type(selection) is not FieldNode or selection.directives:
                    return None
                grouped.setdefault((selection.alias or selection.name).value, []).append(selection)
        entries: list[Entry] = []
        for response_key, children in grouped.items():
            field_def = object_type.fields.get(children[0].name.value)
            if field_def is None:
                return None  # __typename and the like: the ordinary path
            item_non_null: bool | None = None
            plan = self.plans.get(id(field_def))
            if plan is None:
                list_plan = self.lists.get(id(field_def))
                if list_plan is None:
                    return None
                name, (_, leaf, sub_type, item_non_null), non_null = list_plan
            else:
                name, leaf, sub_type, non_null = plan
            sub: Selection | None = None
            if sub_type is not None:
                sub = self._compile(sub_type, children)
                if sub is None:
                    return None
            entries.append((response_key, name, leaf, sub, non_null, item_non_null))
        return tuple(entries)

    def complete_value(
        self,
        return_type: Any,
        field_details_list: Any,
        info: Any,
        path: Path,
        result: Any,
        position_context: Any,
    ) -> Any:
        """graphql-core's, going straight to the sub-selection for a value of an object type
        without ``is_type_of`` (possibly non-null): what its non-null, null, list, leaf and
        abstract checks come to for such a value (a list item, a resolver's object)."""
        object_type = return_type.of_type if type(return_type) is GraphQLNonNull else return_type
        if (
            type(object_type) is GraphQLObjectType
            and object_type.is_type_of is None
            and result is not None
            and result is not Undefined
            and not isinstance(result, Exception)
        ):
            return self.collect_and_execute_subfields(
                object_type, field_details_list, path, result, position_context
            )
        return super().complete_value(
            return_type, field_details_list, info, path, result, position_context
        )

    def _complete_object(
        self,
        field_def: GraphQLField,
        object_type: GraphQLObjectType,
        field_details_list: Any,
        path: Path,
        result: Any,
        position_context: Any,
    ) -> Any:
        """graphql-core's complete_object_value (without is_type_of, which the plan
        excludes) under execute_field's error handling."""
        try:
            completed = self.collect_and_execute_subfields(
                object_type, field_details_list, path, result, position_context
            )
        except Exception as raw_error:
            self.handle_field_error(raw_error, field_def.type, field_details_list, path)
            return None
        if not self.is_awaitable(completed):
            return completed

        async def await_completed() -> Any:
            try:
                return await completed
            except Exception as raw_error:
                self.handle_field_error(raw_error, field_def.type, field_details_list, path)
                return None

        return await_completed()


def _complete(selection: Selection, source: Any, is_awaitable: Callable[[Any], bool]) -> Any:
    """The compiled sub-selection's values of ``source``, or ``_FAILED`` where graphql-core
    would report an error (or might: an awaitable, an exception as a value)."""
    completed: dict[str, Any] = {}
    for response_key, name, leaf, sub, non_null, item_non_null in selection:
        try:
            value = getattr(source, name)
        except Exception:
            return _FAILED
        if value is None:
            if non_null:
                return _FAILED
        elif item_non_null is None:
            value = _complete_one(leaf, sub, value, is_awaitable)
            if value is _FAILED:
                return _FAILED
        else:
            if type(value) is not list and type(value) is not tuple:
                return _FAILED  # other iterables, async ones: the ordinary path
            items = []
            for item in value:
                if item is None:
                    if item_non_null:
                        return _FAILED
                else:
                    item = _complete_one(leaf, sub, item, is_awaitable)
                    if item is _FAILED:
                        return _FAILED
                items.append(item)
            value = items
        completed[response_key] = value
    return completed


def _complete_one(
    leaf: Leaf | None, sub: Selection | None, value: Any, is_awaitable: Callable[[Any], bool]
) -> Any:
    """A value that is not None, of a leaf type or of an object type without is_type_of."""
    if isinstance(value, Exception):
        return _FAILED
    if leaf is not None:
        try:
            coerced = leaf.coerce_output_value(value)
        except Exception:
            return _FAILED
        return _FAILED if coerced is None or coerced is Undefined else coerced
    if sub is None or is_awaitable(value):
        return _FAILED
    return _complete(sub, value, is_awaitable)


def executor_for(schema: Any) -> type[FastFieldsExecutor]:
    """An executor class knowing ``schema``'s plain attribute fields."""
    plans, lists = plan_basic_fields(schema)
    return type(
        "SchemaExecutor",
        (FastFieldsExecutor,),
        {"plans": plans, "lists": lists, "selections": {}},
    )
