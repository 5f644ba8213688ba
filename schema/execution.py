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
"""

from __future__ import annotations

from typing import Any

from graphql import (
    GraphQLEnumType,
    GraphQLField,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLScalarType,
    GraphQLSchema,
)
from graphql.pyutils import Path, Undefined
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext
from strawberry.types.field import StrawberryField

# (attribute name, leaf type or None, object type or None, non-null)
Plan = tuple[str, GraphQLScalarType | GraphQLEnumType | None, GraphQLObjectType | None, bool]


def plan_basic_fields(schema: Any) -> dict[int, Plan]:
    """The plain attribute fields of a strawberry schema, by ``id`` of their GraphQLField
    (the schema keeps every field alive, so the ids stay theirs)."""
    core: GraphQLSchema = schema._schema
    plans: dict[int, Plan] = {}
    for type_name, graphql_type in core.type_map.items():
        if not isinstance(graphql_type, GraphQLObjectType) or type_name.startswith("__"):
            continue
        for field_name, field_def in graphql_type.fields.items():
            plan = _plan(schema, type_name, field_name, field_def)
            if plan is not None:
                plans[id(field_def)] = plan
    return plans


def _plan(schema: Any, type_name: str, field_name: str, field_def: GraphQLField) -> Plan | None:
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
    declared = field_def.type
    non_null = isinstance(declared, GraphQLNonNull)
    of_type = declared.of_type if isinstance(declared, GraphQLNonNull) else declared
    if isinstance(of_type, GraphQLScalarType | GraphQLEnumType):
        return (field.python_name, of_type, None, non_null)
    if isinstance(of_type, GraphQLObjectType) and of_type.is_type_of is None:
        return (field.python_name, None, of_type, non_null)
    return None  # lists, interfaces, unions: the ordinary path


class FastFieldsExecutor(StrawberryGraphQLCoreExecutionContext):
    """Set ``plans`` (``plan_basic_fields``) on a subclass made for one schema."""

    plans: dict[int, Plan] = {}

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


def executor_for(schema: Any) -> type[FastFieldsExecutor]:
    """An executor class knowing ``schema``'s plain attribute fields."""
    return type("SchemaExecutor", (FastFieldsExecutor,), {"plans": plan_basic_fields(schema)})
