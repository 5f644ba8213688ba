"""Deal registration mutations, one module per group (noun-first names:
dealRegistrationSubmit, dealRegistrationApprove, ...)."""

from __future__ import annotations

import strawberry

from schema.deal_registration.registrations.mutations.program_settings_update import (
    DealProgramSettingsMutation,
)
from schema.deal_registration.registrations.mutations.registration_extension import (
    DealRegistrationExtensionMutation,
)
from schema.deal_registration.registrations.mutations.registration_outcome import (
    DealRegistrationOutcomeMutation,
)
from schema.deal_registration.registrations.mutations.registration_proof import (
    DealRegistrationProofMutation,
)
from schema.deal_registration.registrations.mutations.registration_review import (
    DealRegistrationReviewMutation,
)
from schema.deal_registration.registrations.mutations.registration_submit import (
    DealRegistrationSubmitMutation,
)


@strawberry.type
class DealRegistrationMutation(
    DealRegistrationSubmitMutation,
    DealRegistrationReviewMutation,
    DealRegistrationOutcomeMutation,
    DealRegistrationExtensionMutation,
    DealRegistrationProofMutation,
    DealProgramSettingsMutation,
):
    pass
