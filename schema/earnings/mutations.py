from __future__ import annotations

from typing import ClassVar, Self

import strawberry
from strawberry import Info

from earnings import ledger, payouts, programs, repository
from earnings.errors import EarningsErrorCode
from earnings.models import (
    EarningEntry,
    PayoutHold,
    PayoutPolicy,
    PayoutProfile,
    PayoutStatement,
    Program,
    ProgramVersion,
)
from earnings.policy import EARNINGS, EarningsOp
from infra.errors import DomainError
from schema.context import Context
from schema.earnings.inputs import (
    EarningAdjustmentCreateInput,
    EarningProgramCreateInput,
    EarningProgramVersionCreateInput,
    PayoutHoldInput,
    PayoutHoldReleaseInput,
    PayoutMarkPaidInput,
    PayoutPolicySetInput,
    PayoutProfileSetInput,
    PayoutStatementInput,
    PayoutStatementsGenerateInput,
)
from schema.earnings.types import (
    EarningEntryType,
    PayoutHoldType,
    PayoutStatementType,
    ProgramType,
    ProgramVersionType,
)
from schema.errors import UserError
from schema.mutations import Payload, Write, run
from schema.permissions import allowed


@strawberry.type
class EarningsError(UserError):
    code: EarningsErrorCode
    amount_code: ClassVar = EarningsErrorCode.INVALID_AMOUNT


@strawberry.type
class EarningProgramPayload(Payload[tuple[Program, ProgramVersion]], errors=EarningsError):
    program: ProgramType | None = None
    version: ProgramVersionType | None = None
    user_errors: list[EarningsError] = strawberry.field(default_factory=list)

    @classmethod
    def of(cls, result: tuple[Program, ProgramVersion], write: Write) -> Self:
        program, version = result
        return cls(
            program=ProgramType.of(program),
            version=ProgramVersionType.of(version, program.currency),
        )


@strawberry.type
class PayoutStatementsGeneratePayload(Payload[list[PayoutStatement]], errors=EarningsError):
    statements: list[PayoutStatementType] = strawberry.field(default_factory=list)
    user_errors: list[EarningsError] = strawberry.field(default_factory=list)

    @classmethod
    def of(cls, result: list[PayoutStatement], write: Write) -> Self:
        return cls(statements=[PayoutStatementType.from_model(st) for st in result])


@strawberry.type
class PayoutStatementPayload(
    Payload[PayoutStatement | tuple[PayoutStatement, PayoutHold]], errors=EarningsError
):
    statement: PayoutStatementType | None = None
    hold: PayoutHoldType | None = None
    user_errors: list[EarningsError] = strawberry.field(default_factory=list)

    @classmethod
    def of(cls, result: PayoutStatement | tuple[PayoutStatement, PayoutHold], write: Write) -> Self:
        """A statement, or a statement with the hold just placed on it."""
        statement, hold = result if isinstance(result, tuple) else (result, None)
        return cls(
            statement=PayoutStatementType.from_model(statement),
            hold=PayoutHoldType.from_model(hold, write.principal) if hold else None,
        )


@strawberry.type
class PayoutProfilePayload(Payload[PayoutProfile], errors=EarningsError):
    tax_form_on_file: bool | None = None
    bank_account_on_file: bool | None = None
    user_errors: list[EarningsError] = strawberry.field(default_factory=list)

    @classmethod
    def of(cls, result: PayoutProfile, write: Write) -> Self:
        return cls(
            tax_form_on_file=result.tax_form_on_file,
            bank_account_on_file=bool(result.bank_account_fingerprint),
        )


@strawberry.type
class PayoutPolicyPayload(Payload[PayoutPolicy], errors=EarningsError):
    above_average_factor_bp: int | None = None
    trailing_statements: int | None = None
    review_days: int | None = None
    user_errors: list[EarningsError] = strawberry.field(default_factory=list)

    @classmethod
    def of(cls, result: PayoutPolicy, write: Write) -> Self:
        return cls(
            above_average_factor_bp=result.above_average_factor_bp,
            trailing_statements=result.trailing_statements,
            review_days=result.review_days,
        )


@strawberry.type
class EarningAdjustmentPayload(Payload[EarningEntry], errors=EarningsError):
    entry: EarningEntryType | None = None
    user_errors: list[EarningsError] = strawberry.field(default_factory=list)

    @classmethod
    def of(cls, result: EarningEntry, write: Write) -> Self:
        return cls(entry=EarningEntryType.from_model(result))


async def _program(m: Write, version: ProgramVersion) -> tuple[Program, ProgramVersion]:
    program = await repository.readable_program(m.session, m.principal, version.program_id)
    assert program is not None  # just written by this transaction
    return program, version


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
        async def adjust(m: Write) -> EarningEntry:
            partner_id = m.id(input.partner_id, "Partner")
            amount = m.money(input.amount, "amount")
            return await ledger.adjust(
                m.session, m.principal, m.clock, partner_id=partner_id, amount_minor=amount.minor,
                currency=amount.currency, note=input.note, idempotency_key=input.idempotency_key,
                key_retention=m.key_retention,
            )  # fmt: skip

        return await run(info, EarningAdjustmentPayload, adjust)

    @strawberry.mutation(
        permission_classes=[allowed(EARNINGS, EarningsOp.CREATE_PROGRAM)],
        description="Create a rev-share program (version 1).",
    )
    async def earning_program_create(
        self, info: Info[Context, None], input: EarningProgramCreateInput
    ) -> EarningProgramPayload:
        async def create(m: Write) -> tuple[Program, ProgramVersion]:
            currency = input.currency.strip().upper()
            return await _program(m, await programs.create_program(
                m.session, m.principal, m.clock, name=input.name, currency=currency,
                rules=input.rules.to_rules(currency), effective_from=input.effective_from,
                kind=input.kind, target_group_ids=m.ids(input.target_group_ids, "PartnerGroup"),
            ))  # fmt: skip

        return await run(info, EarningProgramPayload, create)

    @strawberry.mutation(
        permission_classes=[allowed(EARNINGS, EarningsOp.CREATE_PROGRAM_VERSION)],
        description="Change a program: a new version effective from an instant. Entries "
        "already computed keep the version they were computed under.",
    )
    async def earning_program_version_create(
        self, info: Info[Context, None], input: EarningProgramVersionCreateInput
    ) -> EarningProgramPayload:
        async def create(m: Write) -> tuple[Program, ProgramVersion]:
            program_id = m.id(input.program_id, "EarningProgram")
            program = await repository.readable_program(m.session, m.principal, program_id)
            if program is None:  # before the rules, which are read in the program's currency
                raise DomainError(EarningsErrorCode.NOT_FOUND, "No such program.", "program_id")
            return await _program(m, await programs.create_version(
                m.session, m.principal, m.clock, program_id=program_id,
                rules=input.rules.to_rules(program.currency), effective_from=input.effective_from,
            ))  # fmt: skip

        return await run(info, EarningProgramPayload, create)

    @strawberry.mutation(
        permission_classes=[allowed(EARNINGS, EarningsOp.GENERATE_STATEMENTS)],
        description="Make the statements of an ended month (existing ones are left alone) "
        "and place automatic holds.",
    )
    async def payout_statements_generate(
        self, info: Info[Context, None], input: PayoutStatementsGenerateInput
    ) -> PayoutStatementsGeneratePayload:
        return await run(
            info,
            PayoutStatementsGeneratePayload,
            lambda m: payouts.generate_statements(
                m.session,
                m.principal,
                m.clock,
                month=input.month,
                signals=m.services.claim_signals,
                idempotency_key=input.idempotency_key,
                key_retention=m.key_retention,
            ),
        )

    @strawberry.mutation(
        permission_classes=[allowed(EARNINGS, EarningsOp.APPROVE_PAYOUT)],
        description="Approve a PENDING statement (a HELD one needs its holds released first).",
    )
    async def payout_approve(
        self, info: Info[Context, None], input: PayoutStatementInput
    ) -> PayoutStatementPayload:
        return await run(info, PayoutStatementPayload, lambda m: payouts.approve(
            m.session, m.principal, m.clock,
            statement_id=m.id(input.statement_id, "PayoutStatement"),
        ))  # fmt: skip

    @strawberry.mutation(
        permission_classes=[allowed(EARNINGS, EarningsOp.MARK_PAID)],
        description="Mark an APPROVED statement paid (once).",
    )
    async def payout_mark_paid(
        self, info: Info[Context, None], input: PayoutMarkPaidInput
    ) -> PayoutStatementPayload:
        return await run(info, PayoutStatementPayload, lambda m: payouts.mark_paid(
            m.session, m.principal, m.clock,
            statement_id=m.id(input.statement_id, "PayoutStatement"),
            reference=input.reference, idempotency_key=input.idempotency_key,
            key_retention=m.key_retention,
        ))  # fmt: skip

    @strawberry.mutation(
        permission_classes=[allowed(EARNINGS, EarningsOp.HOLD)],
        description="Hold a payout manually.",
    )
    async def payout_hold(
        self, info: Info[Context, None], input: PayoutHoldInput
    ) -> PayoutStatementPayload:
        async def hold(m: Write) -> tuple[PayoutStatement, PayoutHold]:
            placed = await payouts.hold(
                m.session, m.principal, m.clock,
                statement_id=m.id(input.statement_id, "PayoutStatement"),
                note=input.note, expected_release_at=input.expected_release_at,
            )  # fmt: skip
            return await payouts.statement_of(m.session, placed), placed

        return await run(info, PayoutStatementPayload, hold)

    @strawberry.mutation(
        permission_classes=[allowed(EARNINGS, EarningsOp.RELEASE_HOLD)],
        description="Release one hold; with none left the statement is PENDING again.",
    )
    async def payout_hold_release(
        self, info: Info[Context, None], input: PayoutHoldReleaseInput
    ) -> PayoutStatementPayload:
        return await run(info, PayoutStatementPayload, lambda m: payouts.release(
            m.session, m.principal, m.clock, hold_id=m.id(input.hold_id, "PayoutHold"),
            note=input.note,
        ))  # fmt: skip

    @strawberry.mutation(
        permission_classes=[allowed(EARNINGS, EarningsOp.SET_PROFILE)],
        description="Record a partner's tax form and bank account (finance, vendor admins).",
    )
    async def payout_profile_set(
        self, info: Info[Context, None], input: PayoutProfileSetInput
    ) -> PayoutProfilePayload:
        return await run(info, PayoutProfilePayload, lambda m: payouts.set_profile(
            m.session, m.principal, m.clock, partner_id=m.id(input.partner_id, "Partner"),
            tax_form_on_file=input.tax_form_on_file, bank_account=input.bank_account,
        ))  # fmt: skip

    @strawberry.mutation(
        permission_classes=[allowed(EARNINGS, EarningsOp.SET_POLICY)],
        description="Set when a statement is held for being far above the trailing average.",
    )
    async def payout_policy_set(
        self, info: Info[Context, None], input: PayoutPolicySetInput
    ) -> PayoutPolicyPayload:
        return await run(info, PayoutPolicyPayload, lambda m: payouts.set_policy(
            m.session, m.principal, m.clock, above_average_factor_bp=input.above_average_factor_bp,
            trailing_statements=input.trailing_statements, review_days=input.review_days,
        ))  # fmt: skip
