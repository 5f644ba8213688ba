from __future__ import annotations

import uuid
from datetime import datetime

import strawberry
from sqlmodel.ext.asyncio.session import AsyncSession
from strawberry import Info

from earnings import ledger, payouts, programs
from earnings.errors import EarningsErrorCode
from earnings.models import PayoutStatement, Program, ProgramVersion
from earnings.policy import EARNINGS, EarningsOp
from earnings.repository import readable_programs
from infra.errors import DomainError
from schema.context import Context
from schema.earnings.inputs import ProgramRulesInput
from schema.earnings.types import (
    EarningEntryType,
    PayoutHoldType,
    PayoutStatementType,
    ProgramType,
    ProgramVersionType,
)
from schema.errors import UserError, user_errors
from schema.money import MoneyInput
from schema.mutations import Outcome, mutate
from schema.permissions import allowed
from schema.relay import parse_global_id


@strawberry.type
class EarningsError(UserError):
    code: EarningsErrorCode


def _errors(errors: list[DomainError]) -> list[EarningsError]:
    return user_errors(errors, EarningsError, EarningsErrorCode)


def _require_id(value: strawberry.ID, type_name: str, field: str) -> uuid.UUID:
    found = parse_global_id(value, type_name)
    if found is None:
        raise DomainError(EarningsErrorCode.NOT_FOUND, "Not found.", field)
    return found


# ---------------------------------------------------------------------------- programs


@strawberry.input
class EarningProgramCreateInput:
    name: str
    currency: str
    rules: ProgramRulesInput
    effective_from: datetime | None = strawberry.field(default=None, description="Now if null.")


@strawberry.input
class EarningProgramVersionCreateInput:
    program_id: strawberry.ID
    rules: ProgramRulesInput
    effective_from: datetime | None = strawberry.field(
        default=None,
        description="Now if null. Not before the current version, nor inside a period "
        "already approved or paid.",
    )


@strawberry.type
class EarningProgramPayload:
    program: ProgramType | None = None
    version: ProgramVersionType | None = None
    user_errors: list[EarningsError] = strawberry.field(default_factory=list)


# ---------------------------------------------------------------------------- payouts


@strawberry.input
class PayoutStatementsGenerateInput:
    month: datetime = strawberry.field(description="Any instant in the (ended) month.")


@strawberry.type
class PayoutStatementsGeneratePayload:
    statements: list[PayoutStatementType] = strawberry.field(default_factory=list)
    user_errors: list[EarningsError] = strawberry.field(default_factory=list)


@strawberry.input
class PayoutStatementInput:
    statement_id: strawberry.ID


@strawberry.input
class PayoutMarkPaidInput:
    statement_id: strawberry.ID
    reference: str = strawberry.field(default="", description="The bank transfer reference.")


@strawberry.input
class PayoutHoldInput:
    statement_id: strawberry.ID
    note: str = strawberry.field(description="Internal: partners never see it.")
    expected_release_at: datetime | None = None


@strawberry.input
class PayoutHoldReleaseInput:
    hold_id: strawberry.ID
    note: str = ""


@strawberry.type
class PayoutStatementPayload:
    statement: PayoutStatementType | None = None
    hold: PayoutHoldType | None = None
    user_errors: list[EarningsError] = strawberry.field(default_factory=list)


@strawberry.input
class PayoutProfileSetInput:
    partner_id: strawberry.ID
    tax_form_on_file: bool | None = None
    bank_account: str | None = strawberry.field(
        default=None, description="IBAN or account number; only a fingerprint is stored."
    )


@strawberry.type
class PayoutProfilePayload:
    tax_form_on_file: bool | None = None
    bank_account_on_file: bool | None = None
    user_errors: list[EarningsError] = strawberry.field(default_factory=list)


@strawberry.input
class PayoutPolicySetInput:
    above_average_factor_bp: int = strawberry.field(
        description="Hold a statement above this multiple of the trailing average (30000 = 3x)."
    )
    trailing_statements: int = 3
    review_days: int = 14


@strawberry.type
class PayoutPolicyPayload:
    above_average_factor_bp: int | None = None
    trailing_statements: int | None = None
    review_days: int | None = None
    user_errors: list[EarningsError] = strawberry.field(default_factory=list)


@strawberry.input
class EarningAdjustmentCreateInput:
    partner_id: strawberry.ID
    amount: MoneyInput = strawberry.field(description="Negative to take money back.")
    note: str = strawberry.field(description="Why; shown to the partner in the entry's rule.")
    idempotency_key: str = strawberry.field(
        description="A retry with the same key returns the first entry and changes nothing."
    )


@strawberry.type
class EarningAdjustmentPayload:
    entry: EarningEntryType | None = None
    user_errors: list[EarningsError] = strawberry.field(default_factory=list)


def _program_payload(outcome: Outcome[tuple[Program, ProgramVersion]]) -> EarningProgramPayload:
    if outcome.result is None:
        return EarningProgramPayload(user_errors=_errors(outcome.errors))
    program, version = outcome.result
    return EarningProgramPayload(
        program=ProgramType.of(program),
        version=ProgramVersionType.of(version, program.currency),
    )


@strawberry.type
class EarningsMutation:
    @strawberry.mutation(
        permission_classes=[allowed(EARNINGS, EarningsOp.ADJUST)],
        description="Correct a partner's earnings with a new ADJUSTMENT entry (entries are "
        "never edited).",
    )
    async def earning_adjustment_create(
        self, info: Info[Context, None], input: EarningAdjustmentCreateInput
    ) -> EarningAdjustmentPayload:
        ctx = info.context
        principal = ctx.principal
        assert principal is not None
        currency = input.amount.currency.strip().upper()

        async def action(s: AsyncSession) -> EarningEntryType:
            partner_id = _require_id(input.partner_id, "Partner", "partner_id")
            try:
                amount = input.amount.to_minor()
            except ValueError as exc:
                raise DomainError(
                    EarningsErrorCode.INVALID_AMOUNT, f"Not a valid amount: {exc}.", "amount"
                ) from exc
            entry = await ledger.adjust(
                s, principal, ctx.services.clock, partner_id=partner_id, amount_minor=amount,
                currency=currency, note=input.note, idempotency_key=input.idempotency_key,
            )  # fmt: skip
            return EarningEntryType.from_model(entry)

        outcome = await mutate(ctx, action)
        return EarningAdjustmentPayload(entry=outcome.result, user_errors=_errors(outcome.errors))

    @strawberry.mutation(
        permission_classes=[allowed(EARNINGS, EarningsOp.CREATE_PROGRAM)],
        description="Create a rev-share program (version 1).",
    )
    async def earning_program_create(
        self, info: Info[Context, None], input: EarningProgramCreateInput
    ) -> EarningProgramPayload:
        ctx = info.context
        principal = ctx.principal
        assert principal is not None
        currency = input.currency.strip().upper()

        async def action(s: AsyncSession) -> tuple[Program, ProgramVersion]:
            version = await programs.create_program(
                s, principal, ctx.services.clock, name=input.name, currency=currency,
                rules=input.rules.to_rules(currency), effective_from=input.effective_from,
            )  # fmt: skip
            program = await s.get(Program, version.program_id)
            assert program is not None
            return program, version

        return _program_payload(await mutate(ctx, action))

    @strawberry.mutation(
        permission_classes=[allowed(EARNINGS, EarningsOp.CREATE_PROGRAM_VERSION)],
        description="Change a program: a new version effective from an instant. Entries "
        "already computed keep the version they were computed under.",
    )
    async def earning_program_version_create(
        self, info: Info[Context, None], input: EarningProgramVersionCreateInput
    ) -> EarningProgramPayload:
        ctx = info.context
        principal = ctx.principal
        assert principal is not None

        async def action(s: AsyncSession) -> tuple[Program, ProgramVersion]:
            program_id = _require_id(input.program_id, "EarningProgram", "program_id")
            program = (
                await s.exec(readable_programs(principal).where(Program.id == program_id))
            ).first()
            if program is None:
                raise DomainError(EarningsErrorCode.NOT_FOUND, "No such program.", "program_id")
            version = await programs.create_version(
                s, principal, ctx.services.clock, program_id=program.id,
                rules=input.rules.to_rules(program.currency), effective_from=input.effective_from,
            )  # fmt: skip
            return program, version

        return _program_payload(await mutate(ctx, action))

    @strawberry.mutation(
        permission_classes=[allowed(EARNINGS, EarningsOp.GENERATE_STATEMENTS)],
        description="Make the statements of an ended month (existing ones are left alone) "
        "and place automatic holds.",
    )
    async def payout_statements_generate(
        self, info: Info[Context, None], input: PayoutStatementsGenerateInput
    ) -> PayoutStatementsGeneratePayload:
        ctx = info.context
        principal = ctx.principal
        assert principal is not None
        outcome = await mutate(
            ctx,
            lambda s: payouts.generate_statements(
                s,
                principal,
                ctx.services.clock,
                month=input.month,
                signals=ctx.services.claim_signals,
            ),
        )
        if outcome.result is None:
            return PayoutStatementsGeneratePayload(user_errors=_errors(outcome.errors))
        return PayoutStatementsGeneratePayload(
            statements=[PayoutStatementType.from_model(st) for st in outcome.result]
        )

    @strawberry.mutation(
        permission_classes=[allowed(EARNINGS, EarningsOp.APPROVE_PAYOUT)],
        description="Approve a PENDING statement (a HELD one needs its holds released first).",
    )
    async def payout_approve(
        self, info: Info[Context, None], input: PayoutStatementInput
    ) -> PayoutStatementPayload:
        ctx = info.context
        principal = ctx.principal
        assert principal is not None

        async def action(s: AsyncSession) -> PayoutStatementType:
            statement_id = _require_id(input.statement_id, "PayoutStatement", "statement_id")
            done = await payouts.approve(
                s, principal, ctx.services.clock, statement_id=statement_id
            )
            return PayoutStatementType.from_model(done)

        outcome = await mutate(ctx, action)
        return PayoutStatementPayload(statement=outcome.result, user_errors=_errors(outcome.errors))

    @strawberry.mutation(
        permission_classes=[allowed(EARNINGS, EarningsOp.MARK_PAID)],
        description="Mark an APPROVED statement paid (once).",
    )
    async def payout_mark_paid(
        self, info: Info[Context, None], input: PayoutMarkPaidInput
    ) -> PayoutStatementPayload:
        ctx = info.context
        principal = ctx.principal
        assert principal is not None

        async def action(s: AsyncSession) -> PayoutStatementType:
            statement_id = _require_id(input.statement_id, "PayoutStatement", "statement_id")
            done = await payouts.mark_paid(
                s, principal, ctx.services.clock, statement_id=statement_id,
                reference=input.reference,
            )  # fmt: skip
            return PayoutStatementType.from_model(done)

        outcome = await mutate(ctx, action)
        return PayoutStatementPayload(statement=outcome.result, user_errors=_errors(outcome.errors))

    @strawberry.mutation(
        permission_classes=[allowed(EARNINGS, EarningsOp.HOLD)],
        description="Hold a payout manually.",
    )
    async def payout_hold(
        self, info: Info[Context, None], input: PayoutHoldInput
    ) -> PayoutStatementPayload:
        ctx = info.context
        principal = ctx.principal
        assert principal is not None

        async def action(s: AsyncSession) -> PayoutStatementPayload:
            statement_id = _require_id(input.statement_id, "PayoutStatement", "statement_id")
            placed = await payouts.hold(
                s, principal, ctx.services.clock, statement_id=statement_id, note=input.note,
                expected_release_at=input.expected_release_at,
            )  # fmt: skip
            statement = await s.get(PayoutStatement, placed.statement_id)
            assert statement is not None
            return PayoutStatementPayload(
                statement=PayoutStatementType.from_model(statement),
                hold=PayoutHoldType.from_model(placed, principal),
            )

        outcome = await mutate(ctx, action)
        return outcome.result or PayoutStatementPayload(user_errors=_errors(outcome.errors))

    @strawberry.mutation(
        permission_classes=[allowed(EARNINGS, EarningsOp.RELEASE_HOLD)],
        description="Release one hold; with none left the statement is PENDING again.",
    )
    async def payout_hold_release(
        self, info: Info[Context, None], input: PayoutHoldReleaseInput
    ) -> PayoutStatementPayload:
        ctx = info.context
        principal = ctx.principal
        assert principal is not None

        async def action(s: AsyncSession) -> PayoutStatementType:
            hold_id = _require_id(input.hold_id, "PayoutHold", "hold_id")
            done = await payouts.release(
                s, principal, ctx.services.clock, hold_id=hold_id, note=input.note
            )
            return PayoutStatementType.from_model(done)

        outcome = await mutate(ctx, action)
        return PayoutStatementPayload(statement=outcome.result, user_errors=_errors(outcome.errors))

    @strawberry.mutation(
        permission_classes=[allowed(EARNINGS, EarningsOp.SET_PROFILE)],
        description="Record a partner's tax form and bank account (finance, vendor admins).",
    )
    async def payout_profile_set(
        self, info: Info[Context, None], input: PayoutProfileSetInput
    ) -> PayoutProfilePayload:
        ctx = info.context
        principal = ctx.principal
        assert principal is not None

        async def action(s: AsyncSession) -> PayoutProfilePayload:
            partner_id = _require_id(input.partner_id, "Partner", "partner_id")
            profile = await payouts.set_profile(
                s, principal, ctx.services.clock, partner_id=partner_id,
                tax_form_on_file=input.tax_form_on_file, bank_account=input.bank_account,
            )  # fmt: skip
            return PayoutProfilePayload(
                tax_form_on_file=profile.tax_form_on_file,
                bank_account_on_file=bool(profile.bank_account_fingerprint),
            )

        outcome = await mutate(ctx, action)
        return outcome.result or PayoutProfilePayload(user_errors=_errors(outcome.errors))

    @strawberry.mutation(
        permission_classes=[allowed(EARNINGS, EarningsOp.SET_POLICY)],
        description="Set when a statement is held for being far above the trailing average.",
    )
    async def payout_policy_set(
        self, info: Info[Context, None], input: PayoutPolicySetInput
    ) -> PayoutPolicyPayload:
        ctx = info.context
        principal = ctx.principal
        assert principal is not None
        outcome = await mutate(
            ctx,
            lambda s: payouts.set_policy(
                s, principal, ctx.services.clock,
                above_average_factor_bp=input.above_average_factor_bp,
                trailing_statements=input.trailing_statements, review_days=input.review_days,
            ),
        )  # fmt: skip
        if outcome.result is None:
            return PayoutPolicyPayload(user_errors=_errors(outcome.errors))
        p = outcome.result
        return PayoutPolicyPayload(
            above_average_factor_bp=p.above_average_factor_bp,
            trailing_statements=p.trailing_statements,
            review_days=p.review_days,
        )
